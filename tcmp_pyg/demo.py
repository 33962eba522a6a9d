"""The main job: the whole story on one dataset, in one command.

Train the compact ST-GCN dense, then with magnitude pruning (MP) and TCMP at
99 % and 99.9 %; analyse each pruned network's connectivity, compact it and
time its inference; print a table and write a report folder with the plots
and a ``report.md`` that links them.
"""
from __future__ import annotations

import csv
import os
import os.path as osp
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets.splits import dataset_splits
from tcmp_pyg.nn import build_model
from tcmp_pyg.pruning import (compact, connectivity, count_parameters,
                              make_pruner)
from tcmp_pyg.train import TrainConfig, train

# Small enough for the whole demo to take minutes on 2 CPU cores.
SYNTHETIC_OPTIONS = dict(num_samples=450, num_frames=32)
SYNTHETIC_EPOCHS = 12
# Real data (SBU): the settings of benchmarks/RESULTS.md's sweep.
REAL_OPTIONS = dict(num_frames=32)
REAL_EPOCHS = 50


@torch.no_grad()
def inference_ms(model: torch.nn.Module, batch: Any, min_time: float = 0.3) -> float:
    """Median milliseconds of one eval-mode forward pass on ``batch`` (the
    median resists the odd slow pass on a busy machine)."""
    model.eval()
    model(batch)
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        model(batch)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def run_demo(out: str = 'report', *, dataset: str = 'synthetic',
             root: Optional[str] = None, fold: Optional[int] = None,
             model_name: str = 'stgcn-compact', epochs: Optional[int] = None,
             amounts: Sequence[float] = (0.99, 0.999), seed: int = 0,
             progress: bool = True, **options: Any) -> List[Dict[str, Any]]:
    r"""Runs the demo and writes the report folder ``out``.

    Args:
        out (str): Report folder (runs go to ``out/runs``).
        dataset (str): Dataset name. (default: :obj:`'synthetic'`)
        root (str, optional): Dataset root. (default: ``datasets/<name>``)
        fold (int, optional): Fold, for datasets with folds.
        model_name (str): Model preset. (default: :obj:`'stgcn-compact'`)
        epochs (int, optional): Epochs of every run. (default: 12 on the
            synthetic dataset, 50 on real data)
        amounts (Sequence[float]): Pruning rates. (default: 99 % and 99.9 %)
        seed (int): Seed of every run. (default: :obj:`0`)
        progress (bool): Progress bars. (default: :obj:`True`)
        **options: Dataset options (e.g. ``num_frames``).

    Returns:
        One row per run (also in ``out/results.csv``).
    """
    from tcmp_pyg import visualization as vis

    synthetic = dataset == 'synthetic'
    options = {**(SYNTHETIC_OPTIONS if synthetic else REAL_OPTIONS), **options}
    if epochs is None:
        epochs = SYNTHETIC_EPOCHS if synthetic else REAL_EPOCHS
    os.makedirs(out, exist_ok=True)
    train_ds, test_ds = dataset_splits(dataset, root, fold=fold, **options)
    num_frames = train_ds[0].x.size(1)
    example = next(iter(DataLoader(test_ds, batch_size=64)))
    # The synthetic set is learnt in few epochs, so a short warm-up and a
    # gentler peak rate; real data uses the training defaults.
    config = (TrainConfig(epochs=epochs, seed=seed, progress=progress,
                          batch_size=16, lr=0.05, warmup=1.0) if synthetic else
              TrainConfig(epochs=epochs, seed=seed, progress=progress))

    runs = [('dense', 0.0)] + [(m, a) for a in amounts for m in ('mp', 'tcmp')]
    rows, models = [], {}
    for method, amount in runs:
        name = 'dense' if method == 'dense' else f'{method}_{amount:g}'
        print(f'[demo] training {model_name} on {dataset}: {name}')
        torch.manual_seed(seed)
        model = build_model(model_name, train_ds[0].x.size(-1),
                            len(train_ds.class_names),
                            train_ds.layout, num_frames=num_frames)
        pruner = None if method == 'dense' else make_pruner(method, model, amount)
        result = train(model, train_ds, test_ds, config, pruner=pruner,
                       out_dir=osp.join(out, 'runs', name),
                       meta=dict(dataset=dataset, model=model_name, method=method,
                                 amount=amount))
        model.eval()
        report = connectivity(model)
        row = dict(method=method, amount=amount, test_accuracy=result.test_accuracy,
                   nominal_sparsity=report.nominal_sparsity,
                   effective_sparsity=report.effective_sparsity,
                   kept=report.kept, live=report.live, dead=report.dead,
                   params=count_parameters(model),
                   masked_ms=inference_ms(model, example))
        if method == 'dense' or report.disconnected:
            row.update(compact_params=row['params'] if method == 'dense' else 0,
                       compact_ms=row['masked_ms'] if method == 'dense' else float('nan'),
                       gating_change=0.0)
        else:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # reported in the table instead
                small = compact(model, example=example)
            row.update(compact_params=count_parameters(small),
                       compact_ms=inference_ms(small, example),
                       gating_change=small.gating_change or 0.0)
        rows.append(row)
        models[name] = model

    _write_csv(osp.join(out, 'results.csv'), rows, model_name)
    table = markdown_table(rows)
    print(table)

    figures = {}
    for amount in amounts:
        key = f'{amount:g}'
        figures[f'subnetworks_{key}.png'] = vis.plot_mp_vs_tcmp(
            models[f'mp_{key}'], models[f'tcmp_{key}'],
            path=osp.join(out, f'subnetworks_{key}.png'))
        figures[f'density_tcmp_{key}.png'] = vis.plot_layer_density(
            models[f'tcmp_{key}'], path=osp.join(out, f'density_tcmp_{key}.png'))
        figures[f'density_mp_{key}.png'] = vis.plot_layer_density(
            models[f'mp_{key}'], path=osp.join(out, f'density_mp_{key}.png'))
    figures['accuracy_vs_rate.png'] = vis.plot_accuracy_vs_rate(
        osp.join(out, 'results.csv'), path=osp.join(out, 'accuracy_vs_rate.png'))
    # The first three channels are the joint coordinates (motion follows).
    figures['skeleton.png'] = vis.plot_skeleton(
        test_ds[0].x[..., :3], layout=test_ds.layout,
        path=osp.join(out, 'skeleton.png'))

    with open(osp.join(out, 'report.md'), 'w') as f:
        f.write(f'# tcmp_pyg demo: {model_name} on {dataset}\n\n'
                f'{epochs} epochs per run, seed {seed}, last-epoch test accuracy.\n\n')
        f.write(table + '\n')
        f.write('Inference times: eval mode, a test batch of 64, CPU. '
                '"gating" is the largest output change caused by switching off '
                'dead channels before compaction (0 for TCMP, which trains gated).\n\n')
        for name in figures:
            f.write(f'## {name[:-4].replace("_", " ")}\n\n![{name}]({name})\n\n')
    print(f'[demo] report written to {osp.join(out, "report.md")}')
    return rows


def _write_csv(path: str, rows: List[Dict[str, Any]], model_name: str) -> None:
    fields = ['model', 'fold', 'seed'] + list(rows[0])
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(dict(model=model_name, fold='', seed=0, **r))


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The demo's table (one row per run)."""
    lines = ['| method | pruning | test acc. | nominal sparsity | effective sparsity '
             '| dead weights | params (masked -> compact) | inference ms (masked -> '
             'compact) | gating |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in rows:
        rate = '—' if r['method'] == 'dense' else f"{100 * r['amount']:g} %"
        gone = r['compact_params'] == 0  # disconnected: nothing to compact
        small = 'disconnected' if gone else f"{r['compact_params']:,}"
        small_ms = '—' if gone else f"{r['compact_ms']:.1f}"
        lines.append(
            f"| {r['method']} | {rate} | {100 * r['test_accuracy']:.1f} % | "
            f"{100 * r['nominal_sparsity']:.2f} % | {100 * r['effective_sparsity']:.2f} % | "
            f"{r['dead']} | {r['params']:,} -> {small} | "
            f"{r['masked_ms']:.1f} -> {small_ms} | "
            f"{r['gating_change']:.2g} |")
    return '\n'.join(lines) + '\n'
