"""`tcmp-pyg train --tcmp-channel-focus`: checked like the other TCMP-only
options, and handed to the pruner."""
import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from tcmp_pyg.checkpoint import read_resume_checkpoint
from tcmp_pyg.cli import PRUNING_DEFAULTS, main, train_args_for

TRAIN = ['train', '--dataset', 'synthetic', '--out', 'never-written']


@pytest.fixture(autouse=True)
def restore_threads():
    # `train --threads 1` sets torch's process-wide thread count.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def usage_error(argv, capsys):
    """stderr of a command refused by the parser (exit code 2)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_channel_focus_needs_prune_tcmp(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = usage_error(TRAIN + ['--tcmp-channel-focus', '2'], capsys)
    assert ('tcmp-pyg train: error: --tcmp-channel-focus applies only with '
            '--prune (without it a dense model is trained)') in err
    err = usage_error(TRAIN + ['--prune', 'mp', '--tcmp-channel-focus', '2'], capsys)
    assert ('--tcmp-channel-focus applies only with --prune tcmp (got --prune '
            'mp); leave it out') in err
    assert not Path('never-written').exists()


@pytest.mark.parametrize('value', ['-1', 'nan', 'inf', 'two'])
def test_channel_focus_must_be_a_finite_number_at_least_zero(value, capsys):
    err = usage_error(TRAIN + ['--prune', 'tcmp', f'--tcmp-channel-focus={value}'],
                      capsys)
    assert (f"argument --tcmp-channel-focus: expected a finite number >= 0 "
            f"(got '{value}')") in err


def test_sweep_train_args_keep_the_focus_for_tcmp_only():
    extra = ['--epochs', '3', '--tcmp-channel-focus', '2', '--bone']
    assert train_args_for('tcmp', extra) == extra
    assert train_args_for('mp', extra) == ['--epochs', '3', '--bone']
    assert train_args_for(None, extra) == ['--epochs', '3', '--bone']
    assert PRUNING_DEFAULTS['tcmp_channel_focus'] == 0.0


def test_channel_focus_reaches_the_pruner(tmp_path, capsys):
    command = ['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
               '--num-samples', '40', '--num-frames', '8',
               '--model', 'stgcn-compact', '--epochs', '1', '--batch-size', '8',
               '--out', str(tmp_path / 'run'), '--threads', '1', '--quiet',
               '--prune', 'tcmp', '--amount', '0.9']
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(command + ['--tcmp-channel-focus', '2']) == 0
    metrics = json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    assert metrics['args']['tcmp_channel_focus'] == 2.0
    assert metrics['connectivity']['live'] == metrics['connectivity']['kept']
    checkpoint, _ = read_resume_checkpoint(tmp_path / 'run' / 'model.pt')
    pruner = checkpoint['training']['settings']['pruner']
    assert pruner.startswith("TCMP(amount=0.9, mode='hard', channel_focus=2, ")
    # The focus is part of the run's settings: the same folder with another
    # focus is refused rather than resumed.
    capsys.readouterr()
    assert main(command + ['--tcmp-channel-focus', '1']) == 1
    err = capsys.readouterr().err
    assert 'holds a run with other settings (pruner)' in err
