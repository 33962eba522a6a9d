"""Sweeps: every (method, amount, fold, seed) combination as one training run,
resumable and run in parallel, then a results table and a plot.

Dense runs may also come at other preset widths (matched-size dense rivals,
``tcmp-pyg train --width``): their rows are named ``dense-w0.25`` and so on.

Each run is the command ``tcmp-pyg train ... --out RUN`` in its own process, so
a run killed halfway resumes from its last checkpoint and a finished run (its
``metrics.json`` exists) is never trained again. The launcher decides where
those processes run: ``'local'`` starts them on this machine, ``'ray'`` makes
each one a Ray task scheduled on a Ray cluster (the run folders then live on a
file system that every node shares).
"""
from __future__ import annotations

import csv
import json
import math
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tqdm import tqdm

from tcmp_pyg.cli import train_args_for

# The costs of a run (``metrics.json``'s ``cost``, see
# tcmp_pyg.pruning.model_cost): parameters and MACs per sequence of the masked
# model, its nonzero parameters, and those of its compacted model.
COST_COLUMNS = ('params', 'nonzero_params', 'macs', 'compact_params', 'compact_macs')

# status: 'ok', or 'failed' with the error (and no accuracy). New columns go
# at the end, so that older results.csv files keep their meaning.
CSV_COLUMNS = ('model', 'method', 'amount', 'fold', 'seed', 'status', 'test_accuracy',
               'nominal_sparsity', 'effective_sparsity', 'weights', 'kept', 'live',
               'dead', 'epochs', 'train_time_s', 'error', 'reachable_outputs',
               'num_outputs') + COST_COLUMNS

COMPARISON_COLUMNS = ('model', 'amount', 'method', 'versus', 'versus_role', 'pairs',
                      'mean_difference', 'low', 'high', 'interval', 'confidence')


LAUNCHERS = ('local', 'ray')


@dataclass(frozen=True)
class Combination:
    """One run of a sweep (``amount`` is 0 for the dense baseline; ``width``
    multiplies the preset's hidden channels). A run of a method *variant*
    (see :func:`parse_variant`) has the variant's label as ``method``, the
    sweep method it derives from as ``variant_of`` and its further train
    arguments as ``variant_args``."""
    model: str
    method: str
    amount: float
    fold: Optional[int]
    seed: int
    width: float = 1.0
    variant_of: Optional[str] = None
    variant_args: Tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The sweep method that decides how the run trains."""
        return self.method if self.variant_of is None else self.variant_of

    @property
    def label(self) -> str:
        """The method as the results name it: ``dense-w0.25`` at another
        width."""
        return self.method if self.width == 1.0 else f'{self.method}-w{self.width:g}'

    @property
    def name(self) -> str:
        fold = '' if self.fold is None else f'_fold{self.fold}'
        amount = '' if self.method == 'dense' else f'_{self.amount:g}'
        return f'{self.model}_{self.label}{amount}{fold}_seed{self.seed}'


def combinations(models: Sequence[str], methods: Sequence[str],
                 amounts: Sequence[float], folds: Sequence[Optional[int]],
                 seeds: Sequence[int], widths: Sequence[float] = (1.0,),
                 variants: Optional[Mapping[str, Tuple[str, Sequence[str]]]] = None
                 ) -> List[Combination]:
    """The grid; ``dense`` runs once per (model, width, fold, seed), not per
    amount; pruning methods run at width 1. ``methods`` may name the labels
    of ``variants`` (label -> (sweep method, train arguments))."""
    variants = dict(variants or {})
    out = []
    for model in models:
        for method in methods:
            base, args = variants.get(method, (None, ()))
            for width in (widths if method == 'dense' else [1.0]):
                for amount in ([0.0] if method == 'dense' else amounts):
                    for fold in folds:
                        for seed in seeds:
                            out.append(Combination(model, method, float(amount),
                                                   fold, seed, float(width),
                                                   base, tuple(args)))
    return out


_LABEL = re.compile(r'[A-Za-z0-9][A-Za-z0-9._+-]*\Z')


def parse_variant(spec: str) -> Tuple[str, str, List[str]]:
    """Parses a method variant ``'LABEL=METHOD ARGS...'``, e.g.
    ``'tcmp-relaxed=tcmp --tcmp-mode relaxed'``: the runs of ``LABEL`` train
    as the sweep method ``METHOD`` with the further ``tcmp-pyg train``
    arguments ``ARGS``, and are named, tabulated and compared as ``LABEL``
    beside the other methods of the same folder.

    Returns:
        ``(label, method, args)``.
    """
    import shlex

    label, sep, rest = spec.partition('=')
    words = shlex.split(rest)
    if not sep or not words:
        raise ValueError(f"variant {spec!r}: expected 'LABEL=METHOD ARGS...', "
                         "e.g. 'tcmp-relaxed=tcmp --tcmp-mode relaxed'")
    return label.strip(), words[0], words[1:]


def check_variants(variants: Mapping[str, Tuple[str, Sequence[str]]]) -> None:
    """Refuses a variant whose label is a sweep method or not a plain name,
    or whose method is not a pruning or one-shot sweep method."""
    methods = sweep_methods()[1:]  # not 'dense'
    for label, (method, args) in variants.items():
        if label == 'dense' or label.startswith('dense-') or label in methods:
            raise ValueError(f"variant '{label}': the label must differ from the "
                             f"sweep methods and from 'dense[-wX]' (choose e.g. "
                             f"'{method}-v2')")
        if not _LABEL.match(label):
            raise ValueError(f"variant '{label}': a label is letters, digits and "
                             "'.', '_', '+', '-' (it names the run folders)")
        if method not in methods:
            raise ValueError(f"variant '{label}': expected its method to be one of "
                             f"{methods} (got '{method}')")
        if any(a.split('=', 1)[0] in ('--prune', '--amount', '--out', '--width')
               for a in args):
            raise ValueError(f"variant '{label}': its arguments may not set --prune, "
                             '--amount, --out or --width (the sweep sets them)')


# One-shot + fine-tune: 'oneshot' prunes the trained dense run of the same
# (model, fold, seed) by global magnitude ('mp') at step 0 and fine-tunes it;
# 'oneshot-X' uses the allocation of the magnitude method 'mp-X', and
# 'oneshot-tcmp' the consistent selection of 'tcmp' (the same pipeline, only
# the selection differs).
ONESHOT = 'oneshot'


def oneshot_methods(method_names: Sequence[str]) -> List[str]:
    """The one-shot sweep methods for the pruning methods ``method_names``:
    ``'oneshot'``, ``'oneshot-X'`` for every ``'mp-X'`` and
    ``'oneshot-tcmp'`` with ``'tcmp'``."""
    return ([ONESHOT] + [ONESHOT + name[2:] for name in method_names
                         if name.startswith('mp-')]
            + [ONESHOT + '-tcmp'] * ('tcmp' in method_names))


def sweep_methods() -> Tuple[str, ...]:
    """Every built-in sweep method: ``'dense'``, the pruning methods and
    their one-shot forms."""
    from tcmp_pyg.pruning import METHOD_NAMES

    return ('dense',) + tuple(METHOD_NAMES) + tuple(oneshot_methods(METHOD_NAMES))


def is_oneshot(method: str) -> bool:
    return method == ONESHOT or method.startswith(ONESHOT + '-')


def pruning_method(method: str) -> Optional[str]:
    """The ``--prune`` of a sweep method: None for ``'dense'``, ``'mp-X'``
    for ``'oneshot-X'`` (``'mp'`` for ``'oneshot'``, ``'tcmp'`` for
    ``'oneshot-tcmp'``), else the method."""
    if method == 'dense':
        return None
    if method == ONESHOT + '-tcmp':
        return 'tcmp'
    if is_oneshot(method):
        return 'mp' + method[len(ONESHOT):]
    return method


def dense_run(combo: Combination) -> Combination:
    """The dense run a one-shot run starts from: same model, fold and seed."""
    return Combination(combo.model, 'dense', 0.0, combo.fold, combo.seed)


def train_command(combo: Combination, out_dir: str, dataset: str,
                  root: Optional[str], train_args: Sequence[str],
                  finetune_epochs: Optional[int] = None) -> List[str]:
    """The ``tcmp-pyg train`` command of ``combo`` writing to ``out_dir``
    (``OUT/runs/<name>``). A one-shot run starts from the ``model.pt`` of
    its dense run beside it, prunes at step 0 (``--prune-start 0
    --prune-end 0``) and trains ``finetune_epochs`` epochs if given."""
    cmd = [sys.executable, '-m', 'tcmp_pyg.cli', 'train', '--dataset', dataset,
           '--model', combo.model, '--seed', str(combo.seed), '--out', out_dir,
           '--quiet']
    if root is not None:
        cmd += ['--root', root]
    if combo.fold is not None:
        cmd += ['--fold', str(combo.fold)]
    method = pruning_method(combo.kind)
    if method is not None:
        cmd += ['--prune', method, '--amount', repr(combo.amount)]
    drop: List[str] = []
    if is_oneshot(combo.kind):
        dense = osp.join(osp.dirname(out_dir), dense_run(combo).name, 'model.pt')
        cmd += ['--init-from', dense, '--prune-start', '0', '--prune-end', '0']
        drop += ['--prune-start', '--prune-end']
        if finetune_epochs is not None:
            cmd += ['--epochs', str(finetune_epochs)]
            drop.append('--epochs')
    if combo.width != 1.0:
        cmd += ['--width', repr(combo.width)]
    # `train` refuses pruning options that do not apply to the run's method;
    # a variant's own arguments come last, so they win over the sweep's.
    return cmd + train_args_for(method, train_args, drop=drop) + list(combo.variant_args)


def check_grid(grid: Sequence[Combination],
               finetune_epochs: Optional[int] = None) -> None:
    """Refuses a grid whose one-shot runs lack their dense run or their
    magnitude method, or ``finetune_epochs`` without one-shot runs."""
    from tcmp_pyg.pruning import METHOD_NAMES

    names = {c.name for c in grid}
    oneshot = [c for c in grid if is_oneshot(c.kind)]
    for combo in oneshot:
        if pruning_method(combo.kind) not in METHOD_NAMES:
            raise ValueError(
                f"run_sweep: method '{combo.method}' would prune with "
                f"'{pruning_method(combo.kind)}', which is not a pruning "
                f"method (expected one of {oneshot_methods(METHOD_NAMES)})")
        if dense_run(combo).name not in names:
            raise ValueError(
                f"run_sweep: method '{combo.method}' fine-tunes the trained "
                f"'dense' run of the same model, fold and seed "
                f"({dense_run(combo).name}), which the grid does not contain: "
                f"add 'dense' to the methods")
    if finetune_epochs is not None:
        if not oneshot:
            raise ValueError("run_sweep: finetune_epochs applies to the "
                             "oneshot methods only (none in the grid)")
        if int(finetune_epochs) < 1:
            raise ValueError(f"run_sweep: expected finetune_epochs >= 1 (got "
                             f"{finetune_epochs})")


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
              seeds: Sequence[int] = (0,), widths: Sequence[float] = (1.0,),
              jobs: int = 1,
              threads_per_job: int = 1, train_args: Sequence[str] = (),
              progress: bool = True, launcher: str = 'local',
              address: Optional[str] = None, cpus_per_run: Optional[float] = None,
              gpus_per_run: Optional[float] = None,
              finetune_epochs: Optional[int] = None,
              interval: str = 't', summarize_only: bool = False,
              variants: Optional[Mapping[str, Tuple[str, Sequence[str]]]] = None
              ) -> List[Dict[str, object]]:
    r"""Runs the grid (skipping finished runs) and writes ``results.csv``,
    ``comparisons.csv``, ``results.md`` and the plots into ``out`` (see
    :func:`write_results`).

    A run that fails (its process exits non-zero or is killed) is started
    once more, resuming from its checkpoint; if it fails again it is reported
    with ``status == 'failed'`` and its error, and the rest of the grid goes
    on. Running the sweep again retries only the unfinished runs.

    A one-shot run (method ``'oneshot'`` or ``'oneshot-X'``) starts from the
    trained ``'dense'`` run of the same (model, fold, seed), which the grid
    must contain: it starts only once that run finished (it is not run, and
    reported failed, if the dense run failed). Its ``train_time_s`` counts
    the fine-tuning only.

    Args:
        dataset (str): Dataset name (as for ``tcmp-pyg train``).
        root (str, optional): Dataset root.
        out (str): Sweep folder; runs go to ``out/runs/<combination>``.
        models, methods, amounts, folds, seeds: The grid (method ``'dense'``
            trains without pruning).
        widths (Sequence[float], optional): Preset widths of the dense runs
            (``tcmp-pyg train --width``); the rows of width ``w != 1`` are
            named ``dense-w<w>``. (default: :obj:`(1.0,)`)
        jobs (int, optional): Runs in parallel (``'local'`` launcher).
            (default: :obj:`1`)
        threads_per_job (int, optional): torch threads per run (``'local'``
            launcher). (default: :obj:`1`)
        train_args (Sequence[str], optional): Extra ``tcmp-pyg train``
            arguments (e.g. ``['--epochs', '60']``).
        progress (bool, optional): Show a progress bar. (default: :obj:`True`)
        launcher (str, optional): ``'local'`` (processes on this machine) or
            ``'ray'`` (one Ray task per run; needs ``pip install
            'tcmp-pyg[ray]'``). (default: :obj:`'local'`)
        address (str, optional): Ray cluster to connect to (``'HOST:PORT'``,
            ``'auto'``); if omitted, the Ray session already initialized in
            this process, ``$RAY_ADDRESS``, or a new local Ray instance.
            Ray only.
        cpus_per_run (float, optional): CPUs Ray reserves for each run; the
            run uses as many torch threads (at least one). Ray only.
            (default: :obj:`1`)
        gpus_per_run (float, optional): GPUs Ray reserves for each run; when
            positive, runs train with ``--device cuda`` unless ``train_args``
            names a device. Ray only. (default: :obj:`0`)
        finetune_epochs (int, optional): Epochs of the one-shot runs.
            (default: the ``--epochs`` of ``train_args``, else the recipe's)
        interval (str, optional): The 95 % intervals of the tables: ``'t'``
            (Student-t) or ``'bootstrap'`` (percentile). (default: :obj:`'t'`)
        summarize_only (bool, optional): Start no run: write the results of
            the grid's finished runs (e.g. of a folder filled by several
            sweep calls). (default: :obj:`False`)
        variants (Mapping[str, tuple], optional): Method variants, ``label ->
            (method, train arguments)`` (see :func:`parse_variant`), whose
            labels ``methods`` may name: e.g. ``{'tcmp-relaxed': ('tcmp',
            ['--tcmp-mode', 'relaxed'])}`` runs TCMP in relaxed mode beside
            ``'tcmp'`` in one folder, paired in the comparisons.

    Returns:
        One row per run (the CSV rows); failed runs have ``status ==
        'failed'``, an ``error`` and no accuracy.
    """
    if interval not in INTERVALS:
        raise ValueError(f"run_sweep: expected 'interval' to be one of "
                         f"{INTERVALS} (got {interval!r})")
    if launcher not in LAUNCHERS:
        raise ValueError(f"run_sweep: expected 'launcher' to be one of {LAUNCHERS} "
                         f"(got {launcher!r})")
    ray_options = dict(address=address, cpus_per_run=cpus_per_run,
                       gpus_per_run=gpus_per_run)
    if launcher == 'local' and any(v is not None for v in ray_options.values()):
        given = [k for k, v in ray_options.items() if v is not None]
        raise ValueError(f"run_sweep: {', '.join(given)} apply to launcher='ray' "
                         f"only (got launcher='local')")
    cpus = 1.0 if cpus_per_run is None else float(cpus_per_run)
    gpus = 0.0 if gpus_per_run is None else float(gpus_per_run)
    if cpus <= 0 or gpus < 0:
        raise ValueError(f'run_sweep: expected cpus_per_run > 0 and gpus_per_run '
                         f'>= 0 (got {cpus_per_run} and {gpus_per_run})')
    if any(not w > 0 for w in widths):
        raise ValueError(f'run_sweep: expected positive widths (got {list(widths)})')
    if list(widths) != [1.0] and any(a.split('=', 1)[0] == '--width'
                                     for a in train_args):
        raise ValueError('run_sweep: give the widths either as widths '
                         '(--widths) or as a train argument (--width), not both')
    variants = dict(variants or {})
    check_variants(variants)
    unused = sorted(set(variants) - set(methods))
    if unused:
        raise ValueError(f'run_sweep: variant(s) {unused} not among the methods '
                         f'{list(methods)}')
    grid = combinations(models, methods, amounts, folds, seeds, widths, variants)
    check_grid(grid, finetune_epochs)
    todo = [c for c in grid if not osp.exists(_metrics_path(out, c))]
    if summarize_only:
        if len(todo) == len(grid):  # refused before anything is written
            raise ValueError(f'run_sweep: no finished run of the grid in {out}')
        todo = []
    os.makedirs(osp.join(out, 'runs'), exist_ok=True)
    bar = _progress(len(grid), len(grid) - len(todo), progress)
    start = time.time()
    try:
        if launcher == 'local':
            failures = _run_local(todo, out, dataset, root, train_args, bar,
                                  jobs=jobs, threads=threads_per_job,
                                  finetune_epochs=finetune_epochs)
        else:
            if gpus > 0 and not any(a == '--device' or a.startswith('--device=')
                                    for a in train_args):
                train_args = list(train_args) + ['--device', 'cuda']
            failures = _run_ray(todo, out, dataset, root, train_args, bar,
                                address=address, cpus=cpus, gpus=gpus,
                                finetune_epochs=finetune_epochs)
    finally:
        bar.close()
    rows = collect(out, grid, failures)
    write_results(out, rows, elapsed=time.time() - start, interval=interval)
    return rows


class RunFailed(RuntimeError):
    """A training run of a sweep exited non-zero or was killed; the message
    is the row's ``error``."""


# Linux: the child asks to be SIGKILLed when its parent dies, checks that the
# parent is still the one it was started by, then becomes the training command.
_DIE_WITH_PARENT = ('import ctypes, os, signal, sys; '
                    'ctypes.CDLL(None).prctl(1, signal.SIGKILL); '  # PR_SET_PDEATHSIG
                    'os.getppid() == int(sys.argv[1]) or os._exit(1); '
                    'os.execv(sys.argv[2], sys.argv[2:])')


def _start_run(combo: Combination, out: str, dataset: str, root: Optional[str],
               train_args: Sequence[str], threads: int,
               die_with_parent: bool = False,
               finetune_epochs: Optional[int] = None) -> tuple:
    """Starts ``tcmp-pyg train`` for ``combo``, its output appended to the run's
    ``train.log``; returns ``(process, log file)``. With ``die_with_parent``
    (Linux), the process is killed when this one dies, so that no orphaned
    run keeps writing to a folder that a re-run resumes."""
    run_dir = osp.join(out, 'runs', combo.name)
    os.makedirs(run_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               TCMP_PYG_THREADS=str(threads))
    command = train_command(combo, run_dir, dataset, root, train_args,
                            finetune_epochs)
    if die_with_parent and sys.platform.startswith('linux'):
        command = [sys.executable, '-c', _DIE_WITH_PARENT, str(os.getpid())] + command
    log = open(osp.join(run_dir, 'train.log'), 'a')
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
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


def _dependencies(todo: Sequence[Combination]) -> Dict[str, str]:
    """The dense run (name) each one-shot run of ``todo`` waits for, if that
    run is in ``todo`` too (otherwise it finished already)."""
    names = {c.name for c in todo}
    return {c.name: dense_run(c).name for c in todo
            if is_oneshot(c.kind) and dense_run(c).name in names}


def _not_run(dependency: str) -> str:
    return f'not run: its dense run {dependency} failed'


def _run_local(todo: Sequence[Combination], out: str, dataset: str,
               root: Optional[str], train_args: Sequence[str], bar: tqdm, *,
               jobs: int, threads: int,
               finetune_epochs: Optional[int] = None) -> Dict[str, str]:
    """Runs ``todo`` in at most ``jobs`` local processes, a one-shot run once
    its dense run finished; returns the errors of the runs that failed every
    attempt, by run name."""
    queue = list(todo)
    waits_for = _dependencies(todo)
    unfinished = {c.name for c in todo}
    attempts: Dict[str, int] = {}
    running: List[tuple] = []
    failures: Dict[str, str] = {}
    while queue or running:
        for combo in [c for c in queue if waits_for.get(c.name) in failures]:
            queue.remove(combo)
            failures[combo.name] = _not_run(waits_for[combo.name])
            bar.update(1)
        while len(running) < max(1, jobs):
            ready = [c for c in queue if waits_for.get(c.name) not in unfinished]
            if not ready:
                break
            combo = ready[0]
            queue.remove(combo)
            attempts[combo.name] = attempts.get(combo.name, 0) + 1
            running.append((combo, *_start_run(combo, out, dataset, root,
                                               train_args, threads,
                                               finetune_epochs=finetune_epochs)))
        if not running:  # only runs waiting: nothing left can start them
            for combo in queue:
                failures[combo.name] = _not_run(waits_for[combo.name])
                bar.update(1)
            break
        time.sleep(0.5)
        for item in list(running):
            combo, proc, log = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode == 0:
                unfinished.discard(combo.name)
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


def _train_task(combo: Combination, out: str, dataset: str, root: Optional[str],
                train_args: Sequence[str], threads: int,
                finetune_epochs: Optional[int] = None, *after: None) -> None:
    """One run as a Ray task: ``tcmp-pyg train`` in a child process of the
    worker (dying with it), waited for; raises :class:`RunFailed`.
    ``after``: the results of the tasks it must follow (Ray starts it once
    they succeeded)."""
    proc, log = _start_run(combo, out, dataset, root, train_args, threads,
                           die_with_parent=True, finetune_epochs=finetune_epochs)
    with log:
        returncode = proc.wait()
    if returncode != 0:
        raise RunFailed(run_error(osp.join(out, 'runs', combo.name), returncode))


def _ray_error(ray: ModuleType, error: Exception) -> str:
    """The row's error for an exception of ``ray.get``."""
    cause = getattr(error, 'cause', None)
    if isinstance(error, ray.exceptions.RayTaskError) and cause is not None:
        if isinstance(cause, RunFailed):
            return str(cause)
        return f'{type(cause).__name__}: {cause}'[:300]  # e.g. an unwritable OUT
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # A killed worker, a lost node...: the exception's name and first line.
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def _run_ray(todo: Sequence[Combination], out: str, dataset: str,
             root: Optional[str], train_args: Sequence[str], bar: tqdm, *,
             address: Optional[str], cpus: float, gpus: float,
             finetune_epochs: Optional[int] = None) -> Dict[str, str]:
    """Runs each of ``todo`` as a Ray task reserving ``cpus`` CPUs and ``gpus``
    GPUs (retried once: an exception or a killed worker), a one-shot run
    chained after its dense run's task; returns the errors of the runs that
    failed both attempts, by run name."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("run_sweep(launcher='ray') needs Ray: pip install "
                          "'tcmp-pyg[ray]' (or 'ray>=2.9')") from e
    # Workers start elsewhere (other machines, another working directory):
    # paths are made absolute, and the default root is the driver's.
    out = osp.abspath(out)
    root = osp.abspath(root if root is not None else osp.join('datasets', dataset))
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(_train_task).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=ATTEMPTS - 1,
            retry_exceptions=True)
        threads = max(1, int(cpus))
        waits_for = _dependencies(todo)
        refs = {}  # by run name; dense runs first, so that others chain on them
        for combo in sorted(todo, key=lambda c: c.name in waits_for):
            after = [refs[waits_for[combo.name]]] if combo.name in waits_for else []
            refs[combo.name] = task.remote(combo, out, dataset, root,
                                           list(train_args), threads,
                                           finetune_epochs, *after)
        pending = {refs[combo.name]: combo for combo in todo}
        failures: Dict[str, str] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                combo = pending.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayError as e:
                    failures[combo.name] = _ray_error(ray, e)
                    dependency = waits_for.get(combo.name)
                    if dependency is not None and _failed_ref(ray, refs[dependency]):
                        failures[combo.name] = _not_run(dependency)
                bar.update(1)
        return failures
    finally:
        if started:
            ray.shutdown()


def _failed_ref(ray: ModuleType, ref) -> bool:
    """Whether the task of ``ref`` finished with an error."""
    if not ray.wait([ref], timeout=0)[0]:
        return False
    try:
        ray.get(ref)
    except ray.exceptions.RayError:
        return True
    return False


def collect(out: str, grid: Sequence[Combination],
            failures: Optional[Mapping[str, str]] = None) -> List[Dict[str, object]]:
    """Reads every finished run's ``metrics.json`` into CSV rows.

    Args:
        out (str): Sweep folder.
        grid (Sequence[Combination]): The runs, in the order of the rows.
        failures (Mapping[str, str], optional): Errors of failed runs by run
            name; those runs get a row with ``status == 'failed'``.

    Returns:
        One row per finished or failed run (:obj:`CSV_COLUMNS`); runs that
        are neither are left out. A ``metrics.json`` without ``cost``
        (written before costs were recorded) leaves the cost columns empty.
    """
    failures = failures or {}
    rows = []
    for combo in grid:
        key = dict(model=combo.model, method=combo.label, amount=combo.amount,
                   fold='' if combo.fold is None else combo.fold, seed=combo.seed)
        path = _metrics_path(out, combo)
        if not osp.exists(path):
            if combo.name in failures:
                rows.append(dict(key, status='failed', error=failures[combo.name]))
            continue
        with open(path) as f:
            m = json.load(f)
        # A dense run keeps (and uses) every prunable weight.
        dense = m.get('prunable_weights', '')
        conn = m.get('connectivity') or dict(weights=dense, kept=dense, live=dense)
        rows.append(dict(key, status='ok', test_accuracy=m['test_accuracy'],
                         nominal_sparsity=conn.get('nominal_sparsity', 0.0),
                         effective_sparsity=conn.get('effective_sparsity', 0.0),
                         weights=conn.get('weights', ''), kept=conn.get('kept', ''),
                         live=conn.get('live', ''), dead=conn.get('dead', 0),
                         reachable_outputs=conn.get('reachable_outputs', ''),
                         num_outputs=conn.get('num_outputs', ''),
                         epochs=m.get('epochs', ''),
                         train_time_s=m.get('train_time_s', ''), error='',
                         **_costs(m)))
    return rows


def _costs(metrics: Mapping[str, object]) -> Dict[str, object]:
    # Runs trained before costs were recorded (or whose pruned model could
    # not be compacted: disconnected) leave the cells empty.
    cost = metrics.get('cost') or {}
    return {c: '' if cost.get(c) is None else cost[c] for c in COST_COLUMNS}


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


INTERVALS = ('t', 'bootstrap')


def _check_interval(name: str, values: Sequence[float], confidence: float) -> int:
    if len(values) == 0:
        raise ValueError(f'{name}: expected at least one value (got none)')
    if not 0 < confidence < 1:
        raise ValueError(f"{name}: expected 'confidence' in (0, 1) (got "
                         f"{confidence})")
    return len(values)


def t_interval(values: Sequence[float], confidence: float = 0.95
               ) -> Tuple[float, float, float]:
    r"""Mean of ``values`` and the Student-t confidence interval of the mean,

    .. math::
        \bar{x} \pm t_{(1 + c) / 2,\, n - 1} \, s / \sqrt{n},

    with :math:`s` the sample standard deviation.

    Args:
        values (Sequence[float]): At least one value.
        confidence (float, optional): Coverage :math:`c`. (default: :obj:`0.95`)

    Returns:
        ``(mean, low, high)``; ``low`` and ``high`` are NaN for fewer than two
        values (no spread to estimate).
    """
    from scipy.stats import t  # scipy comes with scikit-learn

    n = _check_interval('t_interval', values, confidence)
    mean, std = _mean_std([float(v) for v in values])
    if n < 2:
        return mean, math.nan, math.nan
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return mean, mean - half, mean + half


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95, *,
                       resamples: int = 10000, seed: int = 0
                       ) -> Tuple[float, float, float]:
    r"""Mean of ``values`` and the percentile bootstrap interval of the mean:
    the :math:`(1 \mp c) / 2` quantiles of the means of ``resamples``
    resamples with replacement (seeded, so the table is reproducible).

    Args:
        values (Sequence[float]): At least one value.
        confidence (float, optional): Coverage :math:`c`. (default: :obj:`0.95`)
        resamples (int, optional): (default: :obj:`10000`)
        seed (int, optional): (default: :obj:`0`)

    Returns:
        ``(mean, low, high)``; NaN bounds for fewer than two values.
    """
    import numpy as np

    n = _check_interval('bootstrap_interval', values, confidence)
    x = np.asarray(values, dtype=float)
    if n < 2:
        return float(x.mean()), math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(x.mean()), float(low), float(high)


def mean_interval(values: Sequence[float], interval: str = 't',
                  confidence: float = 0.95) -> Tuple[float, float, float]:
    """``(mean, low, high)`` by :func:`t_interval` (``interval='t'``) or
    :func:`bootstrap_interval` (``interval='bootstrap'``)."""
    if interval == 't':
        return t_interval(values, confidence)
    if interval == 'bootstrap':
        return bootstrap_interval(values, confidence)
    raise ValueError(f"Expected 'interval' to be one of {INTERVALS} (got {interval!r})")


def _number(value: object) -> Optional[float]:
    # A CSV cell or metrics value: '' or None (not recorded) -> None.
    if value is None or value == '':
        return None
    return float(value)


def _mean_of(rows: Sequence[Dict[str, object]], key: str) -> Optional[float]:
    """Mean of a column over the rows that record it (None if none does)."""
    values = [v for v in (_number(r.get(key)) for r in rows) if v is not None]
    return sum(values) / len(values) if values else None


def summarize(rows: Sequence[Dict[str, object]], *, interval: str = 't',
              confidence: float = 0.95) -> List[Dict[str, object]]:
    """Per (model, method, amount), over the finished runs (folds and seeds;
    failed runs are left out): the number of runs, the mean test accuracy
    with its standard deviation and confidence interval, the mean
    sparsities and dead weights, and the mean costs (``None`` where no run
    records them: runs trained before costs were written).

    Args:
        rows: The sweep's rows (see :func:`collect`, or ``results.csv``).
        interval (str, optional): ``'t'`` or ``'bootstrap'`` (see
            :func:`mean_interval`). (default: :obj:`'t'`)
        confidence (float, optional): (default: :obj:`0.95`)

    Returns:
        One dict per group (``runs``, ``acc_mean``, ``acc_std``, ``acc_low``,
        ``acc_high``, ``nominal``, ``effective``, ``dead``, and the
        :obj:`COST_COLUMNS`), sorted by model, amount and method.
    """
    groups: Dict[tuple, List[Dict[str, object]]] = {}
    for r in _finished(rows):
        groups.setdefault((r['model'], r['method'], float(r['amount'])), []).append(r)
    out = []
    for (model, method, amount), rs in sorted(groups.items(),
                                               key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        accs = [float(r['test_accuracy']) for r in rs]
        _, std = _mean_std(accs)
        mean, low, high = mean_interval(accs, interval, confidence)
        out.append(dict(model=model, method=method, amount=amount, runs=len(rs),
                        acc_mean=mean, acc_std=std, acc_low=low, acc_high=high,
                        nominal=_mean_std([float(r['nominal_sparsity']) for r in rs])[0],
                        effective=_mean_std([float(r['effective_sparsity']) for r in rs])[0],
                        dead=_mean_std([float(r['dead'] or 0) for r in rs])[0],
                        **{c: _mean_of(rs, c) for c in COST_COLUMNS}))
    return out


def _is_dense(method: object) -> bool:
    return method == 'dense' or str(method).startswith('dense-w')


def _pct_interval(low: float, high: float, sign: bool = False) -> str:
    if math.isnan(low):
        return '—'
    f = '+.1f' if sign else '.1f'
    return f'[{100 * low:{f}}, {100 * high:{f}}]'


def _count(value: Optional[float]) -> str:
    return '—' if value is None else f'{value:,.0f}'


def markdown_table(summary: Sequence[Dict[str, object]],
                   confidence: float = 0.95) -> str:
    """The results table: one row per (model, method, rate) with n (runs),
    the mean test accuracy ± std, its confidence interval, the sparsities,
    dead weights and costs ('—' where unknown)."""
    ci = f'{100 * confidence:g} % interval of the mean'
    lines = ['| model | method | pruning | runs | test accuracy (%, mean ± std) | '
             f'{ci} | nominal sparsity | effective sparsity | dead weights | '
             'nonzero params | compacted params | compacted MACs |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for s in summary:
        rate = '—' if _is_dense(s['method']) else f"{100 * s['amount']:g} %"
        lines.append(f"| {s['model']} | {s['method']} | {rate} | {s['runs']} | "
                     f"{100 * s['acc_mean']:.1f} ± {100 * s['acc_std']:.1f} | "
                     f"{_pct_interval(s['acc_low'], s['acc_high'])} | "
                     f"{100 * s['nominal']:.2f} % | {100 * s['effective']:.2f} % | "
                     f"{s['dead']:.0f} | {_count(s.get('nonzero_params'))} | "
                     f"{_count(s.get('compact_params'))} | "
                     f"{_count(s.get('compact_macs'))} |")
    return '\n'.join(lines) + '\n'


def _pairs(rows: Sequence[Dict[str, object]]) -> Dict[tuple, float]:
    """``{(fold, seed): accuracy}`` of finished runs (fold as text: '' for
    datasets without folds, and the same key read back from a CSV)."""
    return {(str(r['fold']), str(r['seed'])): float(r['test_accuracy']) for r in rows}


def compare(rows: Sequence[Dict[str, object]], *, interval: str = 't',
            confidence: float = 0.95) -> List[Dict[str, object]]:
    r"""Paired differences of test accuracy between methods at the same rate.

    For each model and rate, every pruning method is compared with

    - its *best rival*: among the other pruning methods (not ``dense``) run at
      that rate, the one with the highest mean test accuracy over its
      finished runs (ties: the first name in alphabetical order);
    - ``dense``, the unpruned model, if the sweep has it; and
    - every narrow dense rival ``dense-wX`` of the sweep (the preset at
      width ``X`` trained from scratch: the matched-size comparison).

    A difference is paired over the ``(fold, seed)`` pairs where both runs
    finished: its mean and confidence interval are those of
    :math:`\mathrm{acc}_\text{method} - \mathrm{acc}_\text{versus}` over
    those pairs, so fold difficulty and the seed cancel out.

    Args:
        rows: The sweep's rows (see :func:`collect`, or ``results.csv``).
        interval (str, optional): ``'t'`` (Student-t) or ``'bootstrap'``
            (percentile) interval. (default: :obj:`'t'`)
        confidence (float, optional): (default: :obj:`0.95`)

    Returns:
        One dict per comparison (:obj:`COMPARISON_COLUMNS`; ``versus_role``
        is ``'best rival'``, ``'dense'`` or ``'narrow dense'``; ``pairs`` is n; the difference
        and its bounds are fractions, NaN bounds for fewer than two pairs and
        a NaN mean for none), sorted by model, rate and method, the rival
        first, then dense, then the narrow dense rivals by width.
    """
    by_group: Dict[tuple, List[Dict[str, object]]] = {}
    for r in _finished(rows):
        by_group.setdefault((r['model'], r['method'], float(r['amount'])), []).append(r)
    out: List[Dict[str, object]] = []
    for model in sorted({k[0] for k in by_group}):
        dense = by_group.get((model, 'dense', 0.0))
        # Narrow dense rivals (dense-wX) are not pruning methods at a rate:
        # every pruning method is compared with each of them.
        narrow = sorted((k[1] for k in by_group if k[0] == model
                         and _is_dense(k[1]) and k[1] != 'dense'),
                        key=lambda m: float(m[len('dense-w'):]))
        rates = sorted({k[2] for k in by_group if k[0] == model and not _is_dense(k[1])})
        for rate in rates:
            runs = {k[1]: _pairs(v) for k, v in by_group.items()
                    if k[0] == model and k[2] == rate and not _is_dense(k[1])}
            means = {m: sum(acc.values()) / len(acc) for m, acc in runs.items()}
            for method in sorted(runs):
                versus = []
                rivals = sorted((m for m in runs if m != method),
                                key=lambda m: (-means[m], m))
                if rivals:
                    versus.append((rivals[0], 'best rival', runs[rivals[0]]))
                if dense is not None:
                    versus.append(('dense', 'dense', _pairs(dense)))
                versus += [(m, 'narrow dense', _pairs(by_group[(model, m, 0.0)]))
                           for m in narrow]
                for other, role, other_acc in versus:
                    common = sorted(set(runs[method]) & set(other_acc))
                    diffs = [runs[method][p] - other_acc[p] for p in common]
                    mean, low, high = (mean_interval(diffs, interval, confidence) if diffs
                                       else (math.nan, math.nan, math.nan))
                    out.append(dict(model=model, amount=rate, method=method,
                                    versus=other, versus_role=role,
                                    pairs=len(common), mean_difference=mean,
                                    low=low, high=high, interval=interval,
                                    confidence=confidence))
    return out


def comparisons_table(comparisons: Sequence[Dict[str, object]]) -> str:
    """Markdown table of :func:`compare`'s rows ('' if there are none):
    differences in percentage points, n pairs, '—' for an interval from
    fewer than two pairs."""
    if not comparisons:
        return ''
    c0 = comparisons[0]
    kind = 'Student-t' if c0['interval'] == 't' else 'percentile bootstrap'
    ci = f"{100 * float(c0['confidence']):g} % interval"
    lines = ['Paired differences of test accuracy (percentage points): each '
             'method minus the best rival at its rate (the other pruning method '
             'with the highest mean accuracy there), minus dense and minus each '
             'narrow dense model trained from scratch (dense-wX), over the '
             f'(fold, seed) pairs where both finished; {ci} ({kind}).', '',
             f'| model | pruning | method | minus | pairs | mean difference | {ci} |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for c in comparisons:
        versus = c['versus'] + (' (best rival)' if c['versus_role'] == 'best rival' else '')
        mean = float(c['mean_difference'])
        diff = '—' if math.isnan(mean) else f'{100 * mean:+.1f}'
        lines.append(f"| {c['model']} | {100 * float(c['amount']):g} % | {c['method']} | "
                     f"{versus} | {c['pairs']} | {diff} | "
                     f"{_pct_interval(float(c['low']), float(c['high']), sign=True)} |")
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
        rate = '—' if _is_dense(r['method']) else f"{100 * float(r['amount']):g} %"
        error = str(r['error']).replace('|', '\\|').replace('\n', ' ')
        lines.append(f"| {r['model']} | {r['method']} | {rate} | {r['fold']} | "
                     f"{r['seed']} | {error} |")
    return '\n'.join(lines) + '\n'


def _write_csv(path: str, columns: Sequence[str],
               rows: Sequence[Dict[str, object]]) -> None:
    with open(path + '.tmp', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path + '.tmp', path)


def write_results(out: str, rows: Sequence[Dict[str, object]],
                  elapsed: Optional[float] = None, *, interval: str = 't',
                  confidence: float = 0.95) -> None:
    """Writes into ``out``: ``results.csv`` (one row per run),
    ``comparisons.csv`` (see :func:`compare`), ``results.md`` (the results
    table with n and intervals, the paired comparisons, then the failed runs
    and their errors), ``accuracy_vs_rate.png`` and, when runs record their
    costs, ``accuracy_vs_cost.png``.

    Args:
        out (str): Sweep folder.
        rows: The sweep's rows (see :func:`collect`).
        elapsed (float, optional): Seconds this invocation took (noted in
            ``results.md``).
        interval (str, optional): ``'t'`` or ``'bootstrap'`` intervals.
            (default: :obj:`'t'`)
        confidence (float, optional): (default: :obj:`0.95`)
    """
    _write_csv(osp.join(out, 'results.csv'), CSV_COLUMNS, rows)
    comparisons = compare(rows, interval=interval, confidence=confidence)
    _write_csv(osp.join(out, 'comparisons.csv'), COMPARISON_COLUMNS,
               [{k: '' if isinstance(v, float) and math.isnan(v) else v
                 for k, v in c.items()} for c in comparisons])
    finished = _finished(rows)
    text = markdown_table(summarize(rows, interval=interval, confidence=confidence),
                          confidence)
    if comparisons:
        text += '\n' + comparisons_table(comparisons)
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
        from tcmp_pyg.visualization import (plot_accuracy_vs_cost,
                                            plot_accuracy_vs_rate)
        plot_accuracy_vs_rate(osp.join(out, 'results.csv'),
                              path=osp.join(out, 'accuracy_vs_rate.png'))
        if any(_number(r.get('compact_macs')) is not None for r in finished):
            plot_accuracy_vs_cost(osp.join(out, 'results.csv'),
                                  path=osp.join(out, 'accuracy_vs_cost.png'))
