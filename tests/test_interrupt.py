"""Killing `tcmp-pyg train` and `tcmp-pyg sweep` with SIGKILL and running the
same command again gives the result of an uninterrupted run (CPU, one thread).

Every run here is a real `python -m tcmp_pyg.cli` process: the uninterrupted
reference is a sweep (dense and TCMP), whose TCMP run is also the reference of
the single `train` command.
"""
import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from tcmp_pyg import load_model
from tcmp_pyg.checkpoint import read_checkpoint
from tcmp_pyg.sweep import Combination, train_command

TRAIN_ARGS = ('--epochs 4 --num-samples 60 --num-frames 12 --batch-size 8 '
              '--lr 0.05 --warmup 1')
TCMP = Combination('stgcn-compact', 'tcmp', 0.9, None, 0)
DENSE = Combination('stgcn-compact', 'dense', 0.0, None, 0)
ENV = dict(os.environ, OMP_NUM_THREADS='1', TCMP_PYG_THREADS='1')

pytestmark = pytest.mark.skipif(sys.platform == 'win32',
                                reason='process groups and SIGKILL are POSIX')


def sweep_command(root, out):
    return [sys.executable, '-m', 'tcmp_pyg.cli', 'sweep', '--dataset', 'synthetic',
            '--root', str(root), '--out', str(out), '--methods', 'dense', 'tcmp',
            '--amounts', '0.9', '--train-args', TRAIN_ARGS, '--quiet']


def start(command, log):
    # A session of its own: the sweep's training processes are killed with it.
    with open(log, 'ab') as f:
        return subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT,
                                env=ENV, start_new_session=True)


def finish(command, log):
    proc = start(command, log)
    assert proc.wait(timeout=300) == 0, log.read_text()


def kill_when(proc, ready, log, timeout=120.0):
    """SIGKILLs the process group of ``proc`` as soon as ``ready()``."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f'ended before it was killed:\n{log.read_text()}'
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def checkpoint_epoch(run):
    return read_checkpoint(run / 'model.pt')['training']['epoch']


def same_run(a, b):
    """Equal metrics, history (times aside), weights and masks."""
    ma, mb = (json.loads((d / 'metrics.json').read_text()) for d in (a, b))
    assert ma['test_accuracy'] == mb['test_accuracy']
    assert ma['connectivity'] == mb['connectivity']
    ha, hb = (json.loads((d / 'history.json').read_text()) for d in (a, b))
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith('time_s')}
                       for r in h]
    assert strip(ha) == strip(hb) and len(ha) == 4
    sa, sb = (load_model(d / 'model.pt').state_dict() for d in (a, b))
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """(dataset root, folder of an uninterrupted sweep)."""
    tmp = tmp_path_factory.mktemp('reference')
    finish(sweep_command(tmp / 'data', tmp / 'sweep'), tmp / 'sweep.log')
    return tmp / 'data', tmp / 'sweep'


def test_killed_train_resumes_to_the_same_result(reference, tmp_path):
    root, sweep = reference
    run = tmp_path / 'run'
    command = train_command(TCMP, str(run), 'synthetic', str(root),
                            shlex.split(TRAIN_ARGS))
    log = tmp_path / 'train.log'
    proc = start(command, log)
    # Killed as soon as epoch 1 is checkpointed (history.json comes right
    # after model.pt): during epoch 2.
    kill_when(proc, lambda: (run / 'history.json').exists(), log)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / 'metrics.json').exists() and checkpoint_epoch(run) < 4

    finish(command, log)
    assert f'resumed {run} from epoch' in log.read_text()
    same_run(run, sweep / 'runs' / TCMP.name)


def test_killed_sweep_resumes_without_retraining(reference, tmp_path):
    root, sweep = reference
    out = tmp_path / 'sweep'
    dense, tcmp = out / 'runs' / DENSE.name, out / 'runs' / TCMP.name
    log = tmp_path / 'sweep.log'
    proc = start(sweep_command(root, out), log)
    # Killed once the dense run is finished and TCMP has a checkpoint.
    kill_when(proc, lambda: (tcmp / 'history.json').exists(), log)
    assert (dense / 'metrics.json').exists() and not (tcmp / 'metrics.json').exists()
    finished_at = (dense / 'metrics.json').stat().st_mtime_ns
    dense_log = (dense / 'train.log').read_text()

    finish(sweep_command(root, out), log)
    assert (dense / 'metrics.json').stat().st_mtime_ns == finished_at
    assert (dense / 'train.log').read_text() == dense_log  # not started again
    assert f'resumed {tcmp} from epoch' in (tcmp / 'train.log').read_text()
    for combo in (DENSE, TCMP):
        same_run(out / 'runs' / combo.name, sweep / 'runs' / combo.name)
    assert results(out / 'results.csv') == results(sweep / 'results.csv')


def results(path):
    """The rows of a results.csv, train_time_s aside."""
    with open(path, newline='') as f:
        return [{k: v for k, v in r.items() if k != 'train_time_s'}
                for r in csv.DictReader(f)]
