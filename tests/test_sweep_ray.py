"""Sweeps with the Ray launcher on a local Ray instance (two CPUs): the same
results as the local launcher, a killed sweep or worker resumes, and a failing
run is retried once, reported, and does not stop the rest."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest

if os.environ.get('TCMP_PYG_REQUIRE_RAY') == '1':
    import ray  # CI installs Ray (.ci/run): there, a missing Ray fails instead of skipping
else:
    ray = pytest.importorskip('ray', reason="Ray is not installed (pip install "
                              "'tcmp-pyg[ray]'); the Ray launcher is not tested")

from tcmp_pyg.sweep import combinations, run_sweep  # noqa: E402

TRAIN_ARGS = ('--epochs 3 --num-samples 40 --num-frames 8 --batch-size 8 '
              '--lr 0.05 --warmup 1')
GRID = dict(models=['stgcn-compact'], methods=['dense', 'tcmp'], amounts=[0.9],
            folds=[None], seeds=[0, 1])
AMOUNT_ERROR = "exit code 1: error: Expected a float 'amount' in [0, 1) (got 1.5)."

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='kills processes found through /proc')


@pytest.fixture(scope='module')
def ray_address():
    """One local Ray instance for these tests (starting one takes seconds),
    shut down before the other test modules run."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """(dataset root, folder of the grid swept by the local launcher)."""
    tmp = tmp_path_factory.mktemp('local')
    run_sweep('synthetic', str(tmp / 'data'), str(tmp / 'sweep'), **GRID, jobs=2,
              train_args=TRAIN_ARGS.split(), progress=False)
    return tmp / 'data', tmp / 'sweep'


def results(path):
    """The rows of a results.csv, train_time_s aside."""
    with open(path, newline='') as f:
        return [{k: v for k, v in r.items() if k != 'train_time_s'}
                for r in csv.DictReader(f)]


def sweep_command(root, out, address, grid=GRID):
    return [sys.executable, '-m', 'tcmp_pyg.cli', 'sweep', '--dataset', 'synthetic',
            '--root', str(root), '--out', str(out), '--launcher', 'ray',
            '--address', address, '--model', *grid['models'],
            '--methods', *grid['methods'], '--amounts', *map(str, grid['amounts']),
            '--seeds', *map(str, grid['seeds']), '--train-args', TRAIN_ARGS,
            '--quiet']


def start(command, log):
    # The environment as ray.init left it (RAY_AUTH_MODE, to join its cluster).
    env = dict(os.environ, OMP_NUM_THREADS='1', TCMP_PYG_THREADS='1')
    with open(log, 'ab') as f:
        return subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


# Generous: Ray runs its workers at a lower priority, so a busy machine slows
# them far more than the test's own process; a ready condition returns at once.
# The sweeps the tests start get the same allowance.
RAY_TIMEOUT = 900.0


def wait_for(ready, what, timeout=RAY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)


def training_processes(folder):
    """{pid: parent pid} of the processes whose command line names ``folder``."""
    found = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmdline = f.read().decode(errors='replace')  # NUL-separated
            with open(f'/proc/{pid}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if str(folder) in cmdline and '\0sweep\0' not in cmdline:
            found[int(pid)] = ppid
    return found


def test_ray_sweep_gives_the_results_of_the_local_launcher(ray_address, reference,
                                                           tmp_path):
    root, local = reference
    rows = run_sweep('synthetic', str(root), str(tmp_path / 'sweep'), **GRID,
                     launcher='ray', train_args=TRAIN_ARGS.split(), progress=False)
    assert [r['status'] for r in rows] == ['ok'] * 4
    assert results(tmp_path / 'sweep' / 'results.csv') == \
        results(local / 'results.csv')
    assert [(r['method'], r['seed']) for r in results(local / 'results.csv')] == \
        [('dense', '0'), ('dense', '1'), ('tcmp', '0'), ('tcmp', '1')]
    table = (tmp_path / 'sweep' / 'results.md').read_text()
    assert table.split('\n\n')[0] == (local / 'results.md').read_text().split('\n\n')[0]
    assert (tmp_path / 'sweep' / 'accuracy_vs_rate.png').exists()


def test_killed_ray_sweep_finishes_only_the_missing_runs(ray_address, reference,
                                                         tmp_path):
    root, local = reference
    out, log = tmp_path / 'sweep', tmp_path / 'sweep.log'
    runs = [out / 'runs' / c.name for c in combinations(**GRID)]
    done = lambda: [r for r in runs if (r / 'metrics.json').exists()]
    proc = start(sweep_command(root, out, ray_address), log)
    wait_for(lambda: done() or proc.poll() is not None, 'a finished run')
    assert proc.poll() is None, log.read_text()
    os.killpg(proc.pid, signal.SIGKILL)  # the driver only: Ray's workers are not its children
    proc.wait()
    finished = {r: ((r / 'metrics.json').stat().st_mtime_ns, (r / 'train.log').read_text())
                for r in done()}
    assert 1 <= len(finished) < len(runs), log.read_text()
    # Ray ends the tasks of a dead driver; their training processes die with them.
    wait_for(lambda: not training_processes(out), 'the runs to end', timeout=300)

    again = start(sweep_command(root, out, ray_address), log)
    assert again.wait(timeout=RAY_TIMEOUT) == 0, log.read_text()
    for run, (mtime, text) in finished.items():
        assert (run / 'metrics.json').stat().st_mtime_ns == mtime
        assert (run / 'train.log').read_text() == text  # not started again
    assert results(out / 'results.csv') == results(local / 'results.csv')


def test_killed_worker_is_retried_and_resumes(ray_address, reference, tmp_path):
    root, local = reference
    grid = dict(GRID, methods=['tcmp'], seeds=[1])
    (combo,) = combinations(**grid)
    out, log = tmp_path / 'sweep', tmp_path / 'sweep.log'
    run = out / 'runs' / combo.name
    proc = start(sweep_command(root, out, ray_address, grid), log)
    # Once epoch 1 is checkpointed, SIGKILL the Ray worker running the run.
    wait_for(lambda: (run / 'history.json').exists(), 'a checkpoint')
    ((train_pid, worker_pid),) = training_processes(run).items()
    os.kill(worker_pid, signal.SIGKILL)
    assert proc.wait(timeout=RAY_TIMEOUT) == 0, log.read_text()
    assert f'resumed {run} from epoch' in (run / 'train.log').read_text()
    (row,) = results(out / 'results.csv')
    (expected,) = [r for r in results(local / 'results.csv')
                   if r['method'] == 'tcmp' and r['seed'] == '1']
    assert row == expected


def test_failing_run_is_retried_once_and_reported(ray_address, reference, tmp_path):
    root, _ = reference
    out = tmp_path / 'sweep'
    rows = run_sweep('synthetic', str(root), str(out), models=['stgcn-compact'],
                     methods=['mp'], amounts=[0.5, 1.5], folds=[None],
                     launcher='ray', train_args=TRAIN_ARGS.split(), progress=False)
    ok, bad = rows
    assert (ok['status'], bad['status']) == ('ok', 'failed')
    assert 0.0 <= ok['test_accuracy'] <= 1.0
    assert bad['error'] == AMOUNT_ERROR  # as with the local launcher
    log = (out / 'runs' / 'stgcn-compact_mp_1.5_seed0' / 'train.log').read_text()
    assert log.count("Expected a float 'amount'") == 2  # started twice
    table = (out / 'results.md').read_text()
    assert '| stgcn-compact | mp | 50 % | 1 |' in table
    assert f'| stgcn-compact | mp | 150 % |  | 0 | {AMOUNT_ERROR} |' in table


def test_ray_options_need_the_ray_launcher(tmp_path):
    with pytest.raises(ValueError, match=r"cpus_per_run apply to launcher='ray' only"):
        run_sweep('synthetic', None, str(tmp_path), **GRID, cpus_per_run=2)
    with pytest.raises(ValueError, match=r"expected 'launcher' to be one of"):
        run_sweep('synthetic', None, str(tmp_path), **GRID, launcher='slurm')


def test_oneshot_task_is_chained_after_its_dense_task(ray_address, tmp_path):
    out = tmp_path / 'sweep'
    grid = dict(GRID, methods=['oneshot', 'dense'], seeds=[0])
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out), **grid,
                     launcher='ray', train_args=TRAIN_ARGS.split(), progress=False,
                     finetune_epochs=1)
    assert [(r['method'], r['status'], r['epochs']) for r in rows] == \
        [('oneshot', 'ok', 1), ('dense', 'ok', 3)]
    log = (out / 'runs' / 'stgcn-compact_oneshot_0.9_seed0' / 'train.log').read_text()
    assert 'error' not in log and log.count('test accuracy') == 1  # one attempt

    failed = tmp_path / 'failed'
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(failed), **grid,
                     launcher='ray', train_args=TRAIN_ARGS.split() + ['--batch-size', '0'],
                     progress=False)
    assert [(r['method'], r['status']) for r in rows] == \
        [('oneshot', 'failed'), ('dense', 'failed')]
    assert rows[0]['error'] == 'not run: its dense run stgcn-compact_dense_seed0 failed'
    assert not (failed / 'runs' / 'stgcn-compact_oneshot_0.9_seed0').exists()
