"""Training-step time of TCMP (hard, relaxed) against magnitude pruning at 99 %,
mask update every step, on the compact and the 10-block ST-GCN; plus the time
of one connectivity analysis of the 10-block model. Side by side in one run.

    python benchmarks/bench_pruning_overhead.py [--threads 2] [--steps 10]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn import build_model
from tcmp_pyg.pruning import connectivity, make_pruner


def make_batch(layout, B, T, num_classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Batch.from_data_list([
        Data(x=torch.randn(layout.num_nodes, T, 3, generator=gen),
             edge_index=layout.edge_index(), y=torch.tensor([b % num_classes]))
        for b in range(B)])


def stepper(model_name, method, mode, batch, layout, num_classes):
    """One training step of a fresh model at the end of a long schedule: the
    budget is at 99 % but masks are still re-selected at every step."""
    torch.manual_seed(0)
    model = build_model(model_name, 3, num_classes, layout)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pruner = make_pruner(method, model, 0.99, tcmp_mode=mode, start=0.0, end=1.0,
                         update_every=1)
    horizon = 10 ** 6
    pruner.setup(horizon)
    step = [horizon - 10 ** 4]

    def one():
        step[0] += 1
        pruner.step(step[0])
        loss = F.cross_entropy(model(batch), batch.y)
        extra = pruner.penalty()
        if extra is not None:
            loss = loss + extra
        opt.zero_grad()
        loss.backward()
        opt.step()

    one()  # warm-up
    return one


def step_times(runners, steps):
    """Median step time of each runner, the runners taking turns step by step
    so that a slower moment of the machine hits all of them alike."""
    times = {label: [] for label in runners}
    for _ in range(steps):
        for label, one in runners.items():
            start = time.perf_counter()
            one()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--steps', type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = {}
    setups = [('stgcn-compact', get_layout('sbu'), 8, 32, 32),
              ('stgcn', get_layout('ntu'), 60, 8, 64)]
    for model_name, layout, classes, B, T in setups:
        batch = make_batch(layout, B, T, classes)
        runners = {}
        for method, mode in (('mp', 'hard'), ('tcmp', 'hard'), ('tcmp', 'relaxed')):
            label = method if method == 'mp' else f'tcmp-{mode}'
            runners[label] = stepper(model_name, method, mode, batch, layout, classes)
        times = step_times(runners, args.steps)
        print(f'{model_name} (batch {B}, T={T}), training step with a mask '
              f'update every step at 99 % (median of '
              f'{args.steps} interleaved steps):')
        for label, t in times.items():
            print(f'  {label:13s} {t * 1e3:8.1f} ms   ratio to mp '
                  f'{t / times["mp"]:.2f}')
        key = model_name.replace('-', '_')
        results[f'{key}_hard_vs_mp'] = times['tcmp-hard'] / times['mp']
        results[f'{key}_relaxed_vs_mp'] = times['tcmp-relaxed'] / times['mp']

    model = build_model('stgcn', 3, 60, get_layout('ntu'))
    connectivity(model)
    start = time.perf_counter()
    for _ in range(5):
        connectivity(model)
    analysis = (time.perf_counter() - start) / 5
    print(f'connectivity analysis of the 10-block STGCN: {analysis * 1e3:.1f} ms')
    results['analysis_ms_stgcn'] = analysis * 1e3
    print('RESULT ' + ' '.join(f'{k}={v:.3f}' for k, v in results.items()))


if __name__ == '__main__':
    main()
