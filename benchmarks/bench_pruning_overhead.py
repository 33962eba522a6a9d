"""Training-step time of TCMP (hard, relaxed) against magnitude pruning at 99 %,
mask update every step, on the compact and the 10-block ST-GCN; plus the time
of one connectivity analysis of the 10-block model. Side by side in one run.

    python benchmarks/bench_pruning_overhead.py [--threads 2] [--steps 6]
"""
import argparse
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


def step_time(model_name, method, mode, batch, layout, num_classes, steps):
    torch.manual_seed(0)
    model = build_model(model_name, 3, num_classes, layout)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pruner = make_pruner(method, model, 0.99, tcmp_mode=mode, start=0.0, end=1.0,
                         update_every=1)
    # A long schedule observed at its very end: the budget is at 99 % but the
    # masks are still re-selected at every step.
    horizon = 10 ** 6
    pruner.setup(horizon)

    def one(step):
        pruner.step(step)
        loss = F.cross_entropy(model(batch), batch.y)
        extra = pruner.penalty()
        if extra is not None:
            loss = loss + extra
        opt.zero_grad()
        loss.backward()
        opt.step()

    first = horizon - steps - 10
    one(first)  # warm-up
    start = time.perf_counter()
    for s in range(1, steps + 1):
        one(first + s)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--steps', type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = {}
    setups = [('stgcn-compact', get_layout('sbu'), 8, 32, 32),
              ('stgcn', get_layout('ntu'), 60, 8, 64)]
    for model_name, layout, classes, B, T in setups:
        batch = make_batch(layout, B, T, classes)
        times = {}
        for method, mode in (('mp', 'hard'), ('tcmp', 'hard'), ('tcmp', 'relaxed')):
            label = method if method == 'mp' else f'tcmp-{mode}'
            times[label] = step_time(model_name, method, mode, batch, layout,
                                     classes, args.steps)
        print(f'{model_name} (batch {B}, T={T}), training step with a mask '
              f'update every step at 99 %:')
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
