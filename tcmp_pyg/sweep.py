"""Sweeps: every (method, amount, fold, seed) combination as one training run,
resumable and run in parallel processes, then a results table and a plot.

Each run is the command ``tcmp-pyg train ... --out RUN`` in its own process, so
a run killed halfway resumes from its last checkpoint and a finished run (its
``metrics.json`` exists) is never trained again.
"""
from __future__ import annotations

import csv
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from tcmp_pyg.cli import train_args_for

CSV_COLUMNS = ('model', 'method', 'amount', 'fold', 'seed', 'test_accuracy',
               'nominal_sparsity', 'effective_sparsity', 'weights', 'kept', 'live',
               'dead', 'epochs', 'train_time_s')


@dataclass(frozen=True)
class Combination:
    """One run of a sweep (``amount`` is 0 for the dense baseline)."""
    model: str
    method: str
    amount: float
    fold: Optional[int]
    seed: int

    @property
    def name(self) -> str:
        fold = '' if self.fold is None else f'_fold{self.fold}'
        amount = '' if self.method == 'dense' else f'_{self.amount:g}'
        return f'{self.model}_{self.method}{amount}{fold}_seed{self.seed}'


def combinations(models: Sequence[str], methods: Sequence[str],
                 amounts: Sequence[float], folds: Sequence[Optional[int]],
                 seeds: Sequence[int]) -> List[Combination]:
    """The grid; ``dense`` runs once per (model, fold, seed), not per amount."""
    out = []
    for model in models:
        for method in methods:
            for amount in ([0.0] if method == 'dense' else amounts):
                for fold in folds:
                    for seed in seeds:
                        out.append(Combination(model, method, float(amount), fold, seed))
    return out


def train_command(combo: Combination, out_dir: str, dataset: str,
                  root: Optional[str], train_args: Sequence[str]) -> List[str]:
    cmd = [sys.executable, '-m', 'tcmp_pyg.cli', 'train', '--dataset', dataset,
           '--model', combo.model, '--seed', str(combo.seed), '--out', out_dir,
           '--quiet']
    if root is not None:
        cmd += ['--root', root]
    if combo.fold is not None:
        cmd += ['--fold', str(combo.fold)]
    method = None if combo.method == 'dense' else combo.method
    if method is not None:
        cmd += ['--prune', method, '--amount', repr(combo.amount)]
    # `train` refuses pruning options that do not apply to the run's method.
    return cmd + train_args_for(method, train_args)


class _RunLines:
    """Sweep progress outside a terminal: one line per finished run."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.start = time.time()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            print(f'sweep: {self.done}/{self.total} runs done '
                  f'({time.time() - self.start:.0f} s)', file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        pass


def _progress(total: int, done: int, enabled: bool):
    # A bar redrawn in place only makes sense on a terminal; in a log, CI or
    # `| tee` its carriage-return frames pile up, so lines are written instead.
    if enabled and sys.stderr.isatty():
        return tqdm(total=total, initial=done, desc='sweep', unit='run')
    return _RunLines(total, done, enabled)


def run_sweep(dataset: str, root: Optional[str], out: str, *,
              models: Sequence[str], methods: Sequence[str],
              amounts: Sequence[float], folds: Sequence[Optional[int]],
              seeds: Sequence[int] = (0,), jobs: int = 1,
              threads_per_job: int = 1, train_args: Sequence[str] = (),
              progress: bool = True) -> List[Dict[str, object]]:
    r"""Runs the grid (skipping finished runs) and writes ``results.csv``,
    ``results.md`` and ``accuracy_vs_rate.png`` into ``out``.

    Args:
        dataset (str): Dataset name (as for ``tcmp-pyg train``).
        root (str, optional): Dataset root.
        out (str): Sweep folder; runs go to ``out/runs/<combination>``.
        models, methods, amounts, folds, seeds: The grid (method ``'dense'``
            trains without pruning).
        jobs (int, optional): Runs in parallel. (default: :obj:`1`)
        threads_per_job (int, optional): torch threads per run.
            (default: :obj:`1`)
        train_args (Sequence[str], optional): Extra ``tcmp-pyg train``
            arguments (e.g. ``['--epochs', '60']``).

    Returns:
        One row per run (the CSV rows).
    """
    grid = combinations(models, methods, amounts, folds, seeds)
    os.makedirs(osp.join(out, 'runs'), exist_ok=True)
    todo = [c for c in grid if not osp.exists(_metrics_path(out, c))]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads_per_job),
               TCMP_PYG_THREADS=str(threads_per_job))
    running: List[tuple] = []
    failed = []
    bar = _progress(len(grid), len(grid) - len(todo), progress)
    start = time.time()
    while todo or running:
        while todo and len(running) < max(1, jobs):
            combo = todo.pop(0)
            run_dir = osp.join(out, 'runs', combo.name)
            os.makedirs(run_dir, exist_ok=True)
            log = open(osp.join(run_dir, 'train.log'), 'a')
            proc = subprocess.Popen(train_command(combo, run_dir, dataset, root,
                                                  train_args),
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((combo, proc, log))
        time.sleep(0.5)
        for item in list(running):
            combo, proc, log = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode != 0:
                failed.append(combo.name)
            bar.update(1)
    bar.close()
    if failed:
        raise RuntimeError(f"{len(failed)} sweep runs failed (see their train.log "
                           f"under {osp.join(out, 'runs')}): {', '.join(failed)}")
    rows = collect(out, grid)
    write_results(out, rows, elapsed=time.time() - start)
    return rows


def _metrics_path(out: str, combo: Combination) -> str:
    return osp.join(out, 'runs', combo.name, 'metrics.json')


def collect(out: str, grid: Sequence[Combination]) -> List[Dict[str, object]]:
    """Reads every finished run's ``metrics.json`` into CSV rows."""
    rows = []
    for combo in grid:
        path = _metrics_path(out, combo)
        if not osp.exists(path):
            continue
        with open(path) as f:
            m = json.load(f)
        conn = m.get('connectivity') or {}
        rows.append(dict(model=combo.model, method=combo.method, amount=combo.amount,
                         fold='' if combo.fold is None else combo.fold,
                         seed=combo.seed, test_accuracy=m['test_accuracy'],
                         nominal_sparsity=conn.get('nominal_sparsity', 0.0),
                         effective_sparsity=conn.get('effective_sparsity', 0.0),
                         weights=conn.get('weights', ''), kept=conn.get('kept', ''),
                         live=conn.get('live', ''), dead=conn.get('dead', 0),
                         epochs=m.get('epochs', ''),
                         train_time_s=m.get('train_time_s', '')))
    return rows


def _mean_std(values: Sequence[float]) -> tuple:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """Mean and standard deviation over folds and seeds per (model, method,
    amount)."""
    groups: Dict[tuple, List[Dict[str, object]]] = {}
    for r in rows:
        groups.setdefault((r['model'], r['method'], float(r['amount'])), []).append(r)
    out = []
    for (model, method, amount), rs in sorted(groups.items(),
                                               key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        acc = _mean_std([float(r['test_accuracy']) for r in rs])
        out.append(dict(model=model, method=method, amount=amount, runs=len(rs),
                        acc_mean=acc[0], acc_std=acc[1],
                        nominal=_mean_std([float(r['nominal_sparsity']) for r in rs])[0],
                        effective=_mean_std([float(r['effective_sparsity']) for r in rs])[0],
                        dead=_mean_std([float(r['dead'] or 0) for r in rs])[0]))
    return out


def markdown_table(summary: Sequence[Dict[str, object]]) -> str:
    lines = ['| model | method | pruning | runs | test accuracy (%) | nominal sparsity | '
             'effective sparsity | dead weights |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for s in summary:
        rate = '—' if s['method'] == 'dense' else f"{100 * s['amount']:g} %"
        lines.append(f"| {s['model']} | {s['method']} | {rate} | {s['runs']} | "
                     f"{100 * s['acc_mean']:.1f} ± {100 * s['acc_std']:.1f} | "
                     f"{100 * s['nominal']:.2f} % | {100 * s['effective']:.2f} % | "
                     f"{s['dead']:.0f} |")
    return '\n'.join(lines) + '\n'


def write_results(out: str, rows: Sequence[Dict[str, object]],
                  elapsed: Optional[float] = None) -> None:
    """``results.csv`` (one row per run), ``results.md`` (mean ± std) and
    ``accuracy_vs_rate.png``."""
    tmp = osp.join(out, 'results.csv.tmp')
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, osp.join(out, 'results.csv'))
    text = markdown_table(summarize(rows))
    if elapsed is not None:
        text += f'\n{len(rows)} runs; this invocation took {elapsed / 60:.1f} min.\n'
    with open(osp.join(out, 'results.md.tmp'), 'w') as f:
        f.write(text)
    os.replace(osp.join(out, 'results.md.tmp'), osp.join(out, 'results.md'))
    if rows:
        from tcmp_pyg.visualization import plot_accuracy_vs_rate
        plot_accuracy_vs_rate(osp.join(out, 'results.csv'),
                              path=osp.join(out, 'accuracy_vs_rate.png'))
