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
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from tqdm import tqdm

# status: 'ok', or 'failed' with the error (and no accuracy).
CSV_COLUMNS = ('model', 'method', 'amount', 'fold', 'seed', 'status', 'test_accuracy',
               'nominal_sparsity', 'effective_sparsity', 'weights', 'kept', 'live',
               'dead', 'epochs', 'train_time_s', 'error')


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
    if combo.method != 'dense':
        cmd += ['--prune', combo.method, '--amount', repr(combo.amount)]
    return cmd + list(train_args)


def run_sweep(dataset: str, root: Optional[str], out: str, *,
              models: Sequence[str], methods: Sequence[str],
              amounts: Sequence[float], folds: Sequence[Optional[int]],
              seeds: Sequence[int] = (0,), jobs: int = 1,
              threads_per_job: int = 1, train_args: Sequence[str] = (),
              progress: bool = True) -> List[Dict[str, object]]:
    r"""Runs the grid (skipping finished runs) and writes ``results.csv``,
    ``results.md`` and ``accuracy_vs_rate.png`` into ``out``.

    A run that fails (its process exits non-zero or is killed) is started
    once more, resuming from its checkpoint; if it fails again it is reported
    with ``status == 'failed'`` and its error, and the rest of the grid goes
    on. Running the sweep again retries only the unfinished runs.

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
        One row per run (the CSV rows); failed runs have ``status ==
        'failed'``, an ``error`` and no accuracy.
    """
    grid = combinations(models, methods, amounts, folds, seeds)
    os.makedirs(osp.join(out, 'runs'), exist_ok=True)
    todo = [c for c in grid if not osp.exists(_metrics_path(out, c))]
    bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc='sweep',
               disable=not progress, unit='run')
    start = time.time()
    try:
        failures = _run_local(todo, out, dataset, root, train_args, bar,
                              jobs=jobs, threads=threads_per_job)
    finally:
        bar.close()
    rows = collect(out, grid, failures)
    write_results(out, rows, elapsed=time.time() - start)
    return rows


class RunFailed(RuntimeError):
    """A training run of a sweep exited non-zero or was killed; the message
    is the row's ``error``."""


def _start_run(combo: Combination, out: str, dataset: str, root: Optional[str],
               train_args: Sequence[str], threads: int) -> tuple:
    """Starts ``tcmp-pyg train`` for ``combo``, its output appended to the run's
    ``train.log``; returns ``(process, log file)``."""
    run_dir = osp.join(out, 'runs', combo.name)
    os.makedirs(run_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               TCMP_PYG_THREADS=str(threads))
    log = open(osp.join(run_dir, 'train.log'), 'a')
    proc = subprocess.Popen(train_command(combo, run_dir, dataset, root, train_args),
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, log


def run_error(run_dir: str, returncode: int) -> str:
    """The ``error`` of a failed run: how its process ended, and for a non-zero
    exit the last line of its ``train.log`` (the exception or CLI error)."""
    if returncode < 0:
        try:
            return f'killed by {signal.Signals(-returncode).name}'
        except ValueError:
            return f'killed by signal {-returncode}'
    last = ''
    try:
        with open(osp.join(run_dir, 'train.log'), errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
        last = lines[-1] if lines else ''
    except OSError:
        pass
    if len(last) > 300:
        last = last[:297] + '...'
    return f'exit code {returncode}: {last}' if last else f'exit code {returncode}'


# A failed run is started once more (it resumes from its checkpoint).
ATTEMPTS = 2


def _run_local(todo: Sequence[Combination], out: str, dataset: str,
               root: Optional[str], train_args: Sequence[str], bar: tqdm, *,
               jobs: int, threads: int) -> Dict[str, str]:
    """Runs ``todo`` in at most ``jobs`` local processes; returns the errors of
    the runs that failed every attempt, by run name."""
    queue = list(todo)
    attempts: Dict[str, int] = {}
    running: List[tuple] = []
    failures: Dict[str, str] = {}
    while queue or running:
        while queue and len(running) < max(1, jobs):
            combo = queue.pop(0)
            attempts[combo.name] = attempts.get(combo.name, 0) + 1
            running.append((combo, *_start_run(combo, out, dataset, root,
                                               train_args, threads)))
        time.sleep(0.5)
        for item in list(running):
            combo, proc, log = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode == 0:
                bar.update(1)
            elif attempts[combo.name] < ATTEMPTS:
                queue.append(combo)
            else:
                failures[combo.name] = run_error(osp.join(out, 'runs', combo.name),
                                                 proc.returncode)
                bar.update(1)
    return failures


def _metrics_path(out: str, combo: Combination) -> str:
    return osp.join(out, 'runs', combo.name, 'metrics.json')


def collect(out: str, grid: Sequence[Combination],
            failures: Mapping[str, str] = {}) -> List[Dict[str, object]]:
    """Reads every finished run's ``metrics.json`` into CSV rows.

    Args:
        out (str): Sweep folder.
        grid (Sequence[Combination]): The runs, in the order of the rows.
        failures (Mapping[str, str], optional): Errors of failed runs by run
            name; those runs get a row with ``status == 'failed'``.

    Returns:
        One row per finished or failed run; runs that are neither are left
        out.
    """
    rows = []
    for combo in grid:
        key = dict(model=combo.model, method=combo.method, amount=combo.amount,
                   fold='' if combo.fold is None else combo.fold, seed=combo.seed)
        path = _metrics_path(out, combo)
        if not osp.exists(path):
            if combo.name in failures:
                rows.append(dict(key, status='failed', error=failures[combo.name]))
            continue
        with open(path) as f:
            m = json.load(f)
        conn = m.get('connectivity') or {}
        rows.append(dict(key, status='ok', test_accuracy=m['test_accuracy'],
                         nominal_sparsity=conn.get('nominal_sparsity', 0.0),
                         effective_sparsity=conn.get('effective_sparsity', 0.0),
                         weights=conn.get('weights', ''), kept=conn.get('kept', ''),
                         live=conn.get('live', ''), dead=conn.get('dead', 0),
                         epochs=m.get('epochs', ''),
                         train_time_s=m.get('train_time_s', ''), error=''))
    return rows


def _finished(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    # A results.csv written before the status column holds finished runs only.
    return [r for r in rows if r.get('status', 'ok') in ('ok', '', None)]


def _failed(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    return [r for r in rows if r.get('status') == 'failed']


def _mean_std(values: Sequence[float]) -> tuple:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """Mean and standard deviation over folds and seeds per (model, method,
    amount), over the finished runs (failed runs are left out)."""
    groups: Dict[tuple, List[Dict[str, object]]] = {}
    for r in _finished(rows):
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


def failures_table(rows: Sequence[Dict[str, object]]) -> str:
    """Markdown table of the failed runs and their errors ('' if none)."""
    failed = _failed(rows)
    if not failed:
        return ''
    lines = [f'Failed runs ({len(failed)} of {len(rows)}; each was started twice, '
             f'see its train.log under runs/):', '',
             '| model | method | pruning | fold | seed | error |',
             '| --- | --- | --- | --- | --- | --- |']
    for r in failed:
        rate = '—' if r['method'] == 'dense' else f"{100 * float(r['amount']):g} %"
        error = str(r['error']).replace('|', '\\|').replace('\n', ' ')
        lines.append(f"| {r['model']} | {r['method']} | {rate} | {r['fold']} | "
                     f"{r['seed']} | {error} |")
    return '\n'.join(lines) + '\n'


def write_results(out: str, rows: Sequence[Dict[str, object]],
                  elapsed: Optional[float] = None) -> None:
    """``results.csv`` (one row per run), ``results.md`` (mean ± std of the
    finished runs, then the failed runs and their errors) and
    ``accuracy_vs_rate.png``."""
    tmp = osp.join(out, 'results.csv.tmp')
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, osp.join(out, 'results.csv'))
    finished = _finished(rows)
    text = markdown_table(summarize(rows))
    failures = failures_table(rows)
    if failures:
        text += '\n' + failures
    if elapsed is not None:
        failed = f', {len(rows) - len(finished)} failed' if failures else ''
        text += (f'\n{len(finished)} runs{failed}; this invocation took '
                 f'{elapsed / 60:.1f} min.\n')
    with open(osp.join(out, 'results.md.tmp'), 'w') as f:
        f.write(text)
    os.replace(osp.join(out, 'results.md.tmp'), osp.join(out, 'results.md'))
    if finished:
        from tcmp_pyg.visualization import plot_accuracy_vs_rate
        plot_accuracy_vs_rate(osp.join(out, 'results.csv'),
                              path=osp.join(out, 'accuracy_vs_rate.png'))
