"""`tcmp-pyg` option checks: pruning options without --prune (and
--tcmp-channel-focus handed to the pruner), --version, and the sweep's --device
and per-method train arguments."""
import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

from tcmp_pyg.checkpoint import read_resume_checkpoint
from tcmp_pyg.cli import PRUNING_DEFAULTS, main, train_args_for
from tcmp_pyg.sweep import Combination, train_command

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


@pytest.mark.parametrize('option', [['--amount', '0.5'], ['--tcmp-mode', 'relaxed'],
                                    ['--prune-start', '0.2'], ['--prune-end', '0.8'],
                                    ['--update-every', '5'], ['--amo', '0.5'],
                                    ['--keep-dense', 'fc', 'blocks.0.gcn']])
def test_pruning_options_without_prune_are_refused(option, capsys, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = usage_error(TRAIN + option, capsys)
    flag = '--amount' if option[0] == '--amo' else option[0]  # abbreviations too
    assert err.startswith('usage: tcmp-pyg train')
    assert f'tcmp-pyg train: error: {flag} applies only with --prune (without it ' \
           f'a dense model is trained)' in err
    assert not Path('never-written').exists()


def test_tcmp_mode_needs_prune_tcmp(capsys):
    err = usage_error(TRAIN + ['--prune', 'mp', '--tcmp-mode', 'relaxed'], capsys)
    assert '--tcmp-mode applies only with --prune tcmp (got --prune mp)' in err


def test_synflow_options(capsys):
    err = usage_error(TRAIN + ['--prune', 'synflow', '--prune-start', '0.2'], capsys)
    assert '--prune-start does not apply to --prune synflow; leave it out' in err
    err = usage_error(TRAIN + ['--prune', 'mp', '--synflow-iterations', '5'], capsys)
    assert '--synflow-iterations applies only with --prune synflow (got --prune mp)' in err
    err = usage_error(TRAIN + ['--synflow-iterations', '5'], capsys)
    assert '--synflow-iterations applies only with --prune (without it' in err
    extra = ['--prune-start', '0.2', '--update-every=4', '--synflow-iterations', '7']
    assert train_args_for('synflow', extra) == ['--synflow-iterations', '7']
    assert train_args_for('mp', extra) == extra[:3]


def train(tmp_path, *extra):
    command = ['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
               '--num-samples', '40', '--num-frames', '8',
               '--model', 'stgcn-compact', '--epochs', '1', '--batch-size', '8',
               '--out', str(tmp_path / 'run'), '--threads', '1', '--quiet', *extra]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(command) == 0
    return json.loads((tmp_path / 'run' / 'metrics.json').read_text())


def test_prune_alone_takes_the_documented_defaults(tmp_path):
    metrics = train(tmp_path, '--prune', 'mp')
    args = metrics['args']
    assert {k: args[k] for k in PRUNING_DEFAULTS} == PRUNING_DEFAULTS
    assert PRUNING_DEFAULTS['amount'] == 0.99
    totals = metrics['connectivity']
    assert totals['kept'] == round(0.01 * totals['weights'])


def test_prune_synflow_trains_with_frozen_masks_of_the_exact_budget(tmp_path):
    metrics = train(tmp_path, '--prune', 'synflow', '--amount', '0.9',
                    '--synflow-iterations', '10')
    assert metrics['args']['synflow_iterations'] == 10
    totals = metrics['connectivity']
    assert totals['kept'] == round(0.1 * totals['weights'])


def test_version(capsys):
    pyproject = (Path(__file__).resolve().parents[1] / 'pyproject.toml').read_text()
    version = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE).group(1)
    with pytest.raises(SystemExit) as exc:
        main(['--version'])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f'tcmp-pyg {version}\n'


def test_train_args_for_keeps_what_applies():
    extra = ['--epochs', '3', '--tcmp-mode', 'relaxed', '--prune-start=0.2',
             '--bone', '--update-every', '4']
    assert train_args_for('tcmp', extra) == extra
    assert train_args_for('mp', extra) == ['--epochs', '3', '--prune-start=0.2',
                                           '--bone', '--update-every', '4']
    assert train_args_for(None, extra) == ['--epochs', '3', '--bone']


def test_train_args_for_drops_every_value_of_keep_dense():
    extra = ['--keep-dense', 'fc', 'blocks.0.gcn', '--epochs', '3',
             '--keep-dense=fc', '--bone']
    assert train_args_for('mp-lamp', extra) == extra
    assert train_args_for(None, extra) == ['--epochs', '3', '--bone']


def test_sweep_passes_keep_dense_to_pruned_runs(tmp_path, monkeypatch, capsys):
    import tcmp_pyg.sweep as sweep

    calls = []

    def record(dataset, root, out, **options):  # no training, an empty table
        calls.append(options)
        (Path(out) / 'results.md').write_text('')
        return []

    monkeypatch.setattr(sweep, 'run_sweep', record)
    assert main(['sweep', '--dataset', 'synthetic', '--out', str(tmp_path), '--quiet',
                 '--keep-dense', 'fc', 'blocks.0.gcn', '--methods', 'dense',
                 'mp-layer', 'mp-erk', 'mp-lamp']) == 0
    assert calls[0]['methods'] == ['dense', 'mp-layer', 'mp-erk', 'mp-lamp']
    assert calls[0]['train_args'] == ['--keep-dense', 'fc', 'blocks.0.gcn']
    extra = ['--keep-dense', 'fc', '--epochs', '2']
    dense = train_command(Combination('stgcn-compact', 'dense', 0.0, None, 0),
                          'out', 'synthetic', None, extra)
    lamp = train_command(Combination('stgcn-compact', 'mp-lamp', 0.9, None, 0),
                         'out', 'synthetic', None, extra)
    assert '--keep-dense' not in dense and dense[-2:] == ['--epochs', '2']
    assert lamp[-8:] == ['--prune', 'mp-lamp', '--amount', '0.9', *extra]


def test_sweep_runs_get_the_train_args_that_apply():
    extra = ['--tcmp-mode', 'relaxed', '--device', 'cuda:1']
    dense = train_command(Combination('stgcn-compact', 'dense', 0.0, None, 0),
                          'out', 'synthetic', None, extra)
    mp = train_command(Combination('stgcn-compact', 'mp', 0.9, None, 0),
                       'out', 'synthetic', None, extra)
    tcmp = train_command(Combination('stgcn-compact', 'tcmp', 0.9, None, 0),
                         'out', 'synthetic', None, extra)
    assert '--prune' not in dense and dense[-2:] == ['--device', 'cuda:1']
    assert '--tcmp-mode' not in dense and '--tcmp-mode' not in mp
    assert mp[-6:] == ['--prune', 'mp', '--amount', '0.9', '--device', 'cuda:1']
    assert tcmp[-4:] == ['--tcmp-mode', 'relaxed', '--device', 'cuda:1']


def sweep_train_args(tmp_path, monkeypatch, capsys, *extra):
    """The train arguments `tcmp-pyg sweep ... *extra` hands to run_sweep
    (stopped there, before any training)."""
    return sweep_options(tmp_path, monkeypatch, capsys, *extra)['train_args']


def sweep_options(tmp_path, monkeypatch, capsys, *extra):
    """The keyword arguments `tcmp-pyg sweep ... *extra` hands to run_sweep."""
    import tcmp_pyg.sweep as sweep

    calls = []

    def stop(dataset, root, out, **options):
        calls.append(options)
        raise RuntimeError('stopped before training')

    monkeypatch.setattr(sweep, 'run_sweep', stop)
    code = main(['sweep', '--dataset', 'synthetic', '--out', str(tmp_path),
                 '--quiet', *extra])
    assert code == 1 and 'stopped before training' in capsys.readouterr().err
    return calls[0]


def test_sweep_device_reaches_every_run(tmp_path, monkeypatch, capsys):
    assert sweep_train_args(tmp_path, monkeypatch, capsys, '--device', 'cuda:1',
                            '--epochs', '2') == ['--epochs', '2', '--device', 'cuda:1']
    # Without it, each run takes train's default (cpu).
    assert sweep_train_args(tmp_path, monkeypatch, capsys) == []


def test_sweep_accepts_oneshot_and_synflow_and_finetune_epochs(tmp_path, monkeypatch,
                                                              capsys):
    options = sweep_options(tmp_path, monkeypatch, capsys, '--methods', 'dense',
                            'oneshot', 'synflow', '--epochs', '4',
                            '--finetune-epochs', '2')
    assert options['methods'] == ['dense', 'oneshot', 'synflow']
    assert options['finetune_epochs'] == 2 and options['train_args'] == ['--epochs', '4']


def test_sweep_writes_lines_not_bar_frames_outside_a_terminal(tmp_path, capsys):
    # capsys: stderr is not a terminal, as in a log file or CI.
    out = tmp_path / 'sweep'
    code = main(['sweep', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
                 '--out', str(out), '--methods', 'dense', 'mp', '--amounts', '0.9',
                 '--epochs', '1', '--num-frames', '8', '--device', 'cpu',
                 '--train-args=--num-samples 40 --batch-size 8 --tcmp-mode relaxed'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert '\r' not in captured.err and '\r' not in captured.out
    lines = captured.err.splitlines()
    assert [re.sub(r' \(\d+ s\)$', '', line) for line in lines] == [
        'sweep: 1/2 runs done', 'sweep: 2/2 runs done']
    # Each run took the device; --tcmp-mode went to no run (no tcmp here).
    for run, mode in (('stgcn-compact_dense_seed0', None),
                      ('stgcn-compact_mp_0.9_seed0', 'hard')):
        args = json.loads((out / 'runs' / run / 'metrics.json').read_text())['args']
        assert args['device'] == 'cpu' and args['tcmp_mode'] == mode


def test_sweep_widths_reach_run_sweep(tmp_path, monkeypatch, capsys):
    import tcmp_pyg.sweep as sweep

    calls = []

    def stop(dataset, root, out, **options):
        calls.append(options)
        raise RuntimeError('stopped before training')

    monkeypatch.setattr(sweep, 'run_sweep', stop)
    assert main(['sweep', '--dataset', 'synthetic', '--out', str(tmp_path),
                 '--methods', 'dense', 'channel', '--widths', '1', '0.25',
                 '--quiet']) == 1
    assert calls[0]['widths'] == [1.0, 0.25]
    assert calls[0]['methods'] == ['dense', 'channel']  # every METHOD_NAMES


# -- --tcmp-channel-focus ------------------------------------------------------

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
