"""CPU inference time of compacted models built from TRAINED TCMP masks.

A one-shot mask at random initialisation routes around whole blocks at 99 %
and flatters compaction; here the masks are the ones training produced. For
each rate (99 % and 99.9 %) the benchmark trains the model with TCMP (hard
mode) on SBU, fold 1, with the preset's recipe (augmentation, SGD, lr 0.1,
cosine) but only ``--epochs`` epochs (default 30), the budget reached by
``--prune-end`` of training (default 0.5: masks frozen for the second half,
so they have settled), seed 0; ``--channel-focus A`` trains with TCMP's
``channel_focus=A`` instead (default 0: plain TCMP), the same budget on fewer,
fuller channels. Each run is written once under
``--cache`` (default ``benchmarks/.cache``, git-ignored) and reused by later
calls (an interrupted run resumes); a nonzero focus is part of the run's
name, so runs of different focus values are cached apart.

Then, at batch 1 and 64 (test sequences), eval mode, autograd off: the masked
model against its compacted model's folded inference path (see
:class:`~tcmp_pyg.nn.compact.CompactSTGCN`), the median of interleaved rounds.
Beside the times: the compacted model's parameters, its multiply-accumulates
(MACs, dense layers) and the MACs of its live weights, the physical limit
(``count_macs(..., live=True)``). The same compacted model with its sparse
folded path (``sparse_below``: channel maps below that density multiplied as
sparse matrices) is timed beside it, with the MACs each folded path computes
(``folded_macs``: dense, sparse).

Without ``--sbu-root`` (a root whose ``raw/`` holds the SBU Kinect
Interaction files), or when it has no ``raw/``, it falls back to the
synthetic dataset on the SBU layout, with a warning.

    python benchmarks/bench_compact.py --sbu-root datasets/sbu [--epochs 30] \
        [--channel-focus 2]

Ends with ``RESULT speedup_trained_b1_0.99=... params_0.99=... macs_0.99=...
live_macs_0.99=...`` (the same keys whatever the focus: run the benchmark
once per value).
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import time

import torch
from torch_geometric.data import Batch

from tcmp_pyg.checkpoint import load_model
from tcmp_pyg.datasets.splits import dataset_splits
from tcmp_pyg.nn import build_model
from tcmp_pyg.pruning import (TCMP, compact, connectivity, count_macs,
                              count_parameters)
from tcmp_pyg.recipes import recipe_for
from tcmp_pyg.train import TrainConfig, train

HERE = osp.dirname(osp.abspath(__file__))


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


def splits(args):
    """(dataset name, train split, test split); SBU if its root has raw/."""
    if args.sbu_root and osp.isdir(osp.join(args.sbu_root, 'raw')):
        train_ds, test_ds = dataset_splits('sbu', args.sbu_root, fold=args.fold,
                                           num_frames=args.frames,
                                           **recipe_for(args.model).data_options())
        return f'sbu fold {args.fold}', train_ds, test_ds
    print(f'WARNING: no SBU data (--sbu-root {args.sbu_root!r} has no raw/): '
          f'training on the synthetic dataset (SBU layout) instead; these are '
          f'NOT the figures of benchmarks/RESULTS.md')
    train_ds, test_ds = dataset_splits(
        'synthetic', osp.join(args.cache, 'synthetic'), num_frames=args.frames,
        num_samples=450, num_classes=8, layout='sbu')
    return 'synthetic', train_ds, test_ds


def trained(args, dataset, train_ds, test_ds, amount):
    """The TCMP-trained model at ``amount`` (from the cache when there) and
    its last-epoch test accuracy."""
    name = (f"{dataset.replace(' ', '')}-{args.model}-tcmp{amount:g}-e{args.epochs}"
            f"-p{args.prune_start:g}-{args.prune_end:g}"
            f"{f'-focus{args.channel_focus:g}' if args.channel_focus else ''}"
            f"-seed{args.seed}")
    out = osp.join(args.cache, 'bench_compact', name)
    sample = train_ds[0]
    torch.manual_seed(args.seed)
    model = build_model(args.model, sample.x.size(-1), len(train_ds.class_names),
                        train_ds.layout, num_frames=sample.x.size(1))
    pruner = TCMP(model, amount, start=args.prune_start, end=args.prune_end,
                  channel_focus=args.channel_focus)
    recipe = recipe_for(args.model)
    config = (recipe.train_config(epochs=args.epochs, seed=args.seed, progress=False)
              if dataset != 'synthetic' else
              TrainConfig(epochs=args.epochs, seed=args.seed, progress=False,
                          lr=0.05, warmup=1.0))
    start = time.perf_counter()
    result = train(model, train_ds, test_ds, config, pruner=pruner, out_dir=out,
                   meta=dict(benchmark='bench_compact', dataset=dataset,
                             amount=amount))
    how = ('cached' if result.resumed_from == result.epochs else
           f'trained in {time.perf_counter() - start:.0f} s')
    return load_model(osp.join(out, 'model.pt')).eval(), result.test_accuracy, how


def test_batch(test_ds, size):
    return Batch.from_data_list([test_ds[i % len(test_ds)] for i in range(size)])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sbu-root', default=None,
                        help='SBU dataset root holding raw/ (default: none, '
                             'the synthetic fallback)')
    parser.add_argument('--model', default='stgcn-compact')
    parser.add_argument('--fold', type=int, default=1)
    parser.add_argument('--frames', type=int, default=32)
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--prune-start', type=float, default=0.1)
    parser.add_argument('--prune-end', type=float, default=0.5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--channel-focus', type=float, default=0.0,
                        help="TCMP's channel_focus (default: 0, plain TCMP)")
    parser.add_argument('--amounts', type=float, nargs='+', default=[0.99, 0.999])
    parser.add_argument('--cache', default=osp.join(HERE, '.cache'))
    parser.add_argument('--sparse-below', type=float, default=0.3,
                        help='density threshold of the sparse folded path')
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    dataset, train_ds, test_ds = splits(args)
    batches = {b: test_batch(test_ds, b) for b in (1, 64)}

    focus = (f', channel_focus {args.channel_focus:g}' if args.channel_focus
             else '')
    print(f'{args.model} on {dataset}, T={args.frames}, {args.threads} threads; '
          f'masks from TCMP (hard{focus}) training: {args.epochs} epochs, budget '
          f'reached at {args.prune_end:g} of training (frozen after), seed '
          f'{args.seed}')
    results, rows = {}, []
    for amount in args.amounts:
        model, accuracy, how = trained(args, dataset, train_ds, test_ds, amount)
        small = compact(model, example=batches[64])
        if small.gating_change:  # TCMP trains gated: nothing should change
            raise RuntimeError(f'gating changed the outputs by {small.gating_change}')
        report = connectivity(model)
        with torch.no_grad():
            diff = float((small(batches[64]) - model(batches[64])).abs().max())
        sparse = copy.deepcopy(small)
        sparse.sparse_below = args.sparse_below
        with torch.no_grad():
            diff = max(diff, float((sparse(batches[64]) - model(batches[64])).abs().max()))
        counts = dict(params=count_parameters(small),
                      macs=count_macs(small, batches[1]),
                      live_macs=count_macs(small, batches[1], live=True),
                      folded_macs=small.folded_macs(1, args.frames),
                      sparse_macs=sparse.folded_macs(1, args.frames))
        times = {}
        for b, batch in batches.items():
            t_masked, t_small, t_sparse = interleaved((model, small, sparse), batch,
                                                      args.rounds)
            times[b] = (t_masked, t_small, t_sparse)
            results[f'speedup_trained_b{b}_{amount:g}'] = t_masked / t_small
        for b in batches:
            results[f'speedup_sparse_b{b}_{amount:g}'] = times[b][0] / times[b][2]
        rows.append((amount, accuracy, how, report.live, count_parameters(model),
                     count_macs(model, batches[1]), counts, times, diff))
        for k, v in counts.items():
            results[f'{k}_{amount:g}'] = v

    print(f'{"amount":>7} {"test acc":>8} {"live w":>6} {"params":>16} '
          f'{"MACs/sample":>21} {"live MACs":>9} {"folded/sparse MACs":>19} '
          f'{"b1 masked/compact/sparse ms":>27} {"b64 masked/compact/sparse ms":>30} '
          f'speedups b1, b64 (sparse)')
    for amount, acc, how, live, p_dense, m_dense, c, t, diff in rows:
        print(f'{amount:7.3f} {acc:8.3f} {live:6d} {p_dense:>7d} -> {c["params"]:<7d} '
              f'{m_dense:>9d} -> {c["macs"]:<9d} {c["live_macs"]:9d} '
              f'{c["folded_macs"]:>9d} / {c["sparse_macs"]:<7d} '
              f'{t[1][0] * 1e3:7.2f} / {t[1][1] * 1e3:5.2f} / {t[1][2] * 1e3:<6.2f} '
              f'{t[64][0] * 1e3:8.2f} / {t[64][1] * 1e3:6.2f} / {t[64][2] * 1e3:<7.2f} '
              f'x{t[1][0] / t[1][1]:.1f} x{t[64][0] / t[64][1]:.1f} '
              f'(x{t[1][0] / t[1][2]:.1f} x{t[64][0] / t[64][2]:.1f})')
        print(f'{"":7} masks {how}; largest output difference to the masked '
              f'model {diff:.1e}')
    print('RESULT ' + ' '.join(
        f'{k}={v:.2f}' if isinstance(v, float) else f'{k}={v}'
        for k, v in results.items()))


if __name__ == '__main__':
    main()
