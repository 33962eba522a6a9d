"""CPU inference time of the compacted model against the masked dense model
(TCMP masks at 95, 99 and 99.5 %), batch 1 and 64, with parameter and
multiply-accumulate counts; measured side by side in one run.

The compacted model runs inference on folded matrices (its default); its
layer-by-layer path (``fused = False``) is timed beside it, so the share of
the speed-up that comes from removing channels and from folding shows
(``speedup_layers_*``).

    python benchmarks/bench_compact.py [--model stgcn-compact] [--threads 2]
"""
import argparse
import copy
import statistics
import time

import torch
from torch_geometric.data import Batch, Data

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn import build_model
from tcmp_pyg.pruning import TCMP, compact, count_macs, count_parameters


def make_batch(layout, B, T):
    return Batch.from_data_list([
        Data(x=torch.randn(layout.num_nodes, T, 3), edge_index=layout.edge_index())
        for _ in range(B)])


@torch.no_grad()
def timed(model, batch, min_time=0.1):
    model(batch)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time or runs < 3:
        model(batch)
        runs += 1
    return (time.perf_counter() - start) / runs


def interleaved(models, batch, rounds=7):
    """Median time per model over rounds that take each model in turn, so a
    slow spell of the machine hits all of them alike."""
    times = [[] for _ in models]
    for _ in range(rounds):
        for t, model in zip(times, models):
            t.append(timed(model, batch))
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', default='stgcn-compact')
    parser.add_argument('--dataset-layout', default='sbu')
    parser.add_argument('--frames', type=int, default=32)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layout = get_layout(args.dataset_layout)
    batches = {b: make_batch(layout, b, args.frames) for b in (1, 64)}

    results = {}
    print(f'{args.model} on {layout.name}, T={args.frames}, {args.threads} threads')
    print(f'{"amount":>7} {"params":>16} {"MACs/sample":>22} '
          f'{"b1 masked/compact (layers) ms":>29} '
          f'{"b64 masked/compact (layers) ms":>31} speedups')
    for amount in (0.95, 0.99, 0.995):
        torch.manual_seed(0)
        model = build_model(args.model, 3, 8, layout, num_frames=args.frames)
        pruner = TCMP(model, amount)
        pruner.update(pruner.budget, final=True)  # one-shot consistent mask
        model.eval()
        small = compact(model)
        p_dense, p_small = count_parameters(model), count_parameters(small)
        m_dense = count_macs(model, batches[1])
        m_small = count_macs(small, batches[1])
        row = []
        for b, batch in batches.items():
            layers = copy.deepcopy(small)
            layers.fused = False
            t_masked, t_small, t_layers = interleaved((model, small, layers), batch)
            results[f'speedup_b{b}_{amount}'] = t_masked / t_small
            results[f'speedup_layers_b{b}_{amount}'] = t_masked / t_layers
            row.append((t_masked, t_small, t_layers))
        print(f'{amount:7.3f} {p_dense:>7d} -> {p_small:<7d} {m_dense:>10d} -> '
              f'{m_small:<9d} {row[0][0] * 1e3:9.2f} / {row[0][1] * 1e3:<5.2f} '
              f'({row[0][2] * 1e3:.2f}) {row[1][0] * 1e3:10.2f} / '
              f'{row[1][1] * 1e3:<6.2f} ({row[1][2] * 1e3:.2f}) '
              f'x{results[f"speedup_b1_{amount}"]:.1f} '
              f'x{results[f"speedup_b64_{amount}"]:.1f}')
        results[f'params_{amount}'] = p_small
        results[f'macs_{amount}'] = m_small
    print('RESULT ' + ' '.join(
        f'{k}={v:.2f}' if isinstance(v, float) else f'{k}={v}'
        for k, v in results.items()))


if __name__ == '__main__':
    main()
