import contextlib
import io
import json
import re

import pytest
import torch

from tcmp_pyg import load_model
from tcmp_pyg.checkpoint import init_from_checkpoint
from tcmp_pyg.cli import main
from tcmp_pyg.nn import model_from_config, prunable_weights
from tcmp_pyg.nn.prunable import ChannelGate
from tcmp_pyg.pruning import connectivity, magnitude_prune


@pytest.fixture(autouse=True)
def restore_threads():
    # `train --threads 1` sets torch's process-wide thread count (one thread
    # keeps these tiny runs fast on a busy machine); later tests get it back.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def accuracy(out: str) -> str:
    """The accuracy printed on the 'test accuracy: ...' line."""
    match = re.search(r'^test accuracy: (\d\.\d{4})', out, re.MULTILINE)
    assert match, out
    return match.group(1)


@pytest.fixture(scope='module')
def synthetic_run(tmp_path_factory):
    """(train command, run folder, train stdout) of a 2-epoch pruned run of
    the compact preset on a small synthetic set."""
    tmp = tmp_path_factory.mktemp('cli')
    out = tmp / 'run'
    command = ['train', '--dataset', 'synthetic', '--root', str(tmp / 'data'),
               '--num-samples', '60', '--num-frames', '12',
               '--model', 'stgcn-compact', '--epochs', '2', '--batch-size', '8',
               '--lr', '0.05', '--warmup', '1', '--prune', 'tcmp',
               '--amount', '0.9', '--out', str(out), '--threads', '1', '--quiet']
    threads = torch.get_num_threads()
    stdout = io.StringIO()  # capsys is per test; this fixture is per module
    with contextlib.redirect_stdout(stdout):
        code = main(command)
    torch.set_num_threads(threads)
    assert code == 0, stdout.getvalue()
    return command, out, stdout.getvalue()


def test_train_writes_the_run_folder(synthetic_run):
    _, out, stdout = synthetic_run
    assert sorted(p.name for p in out.iterdir()) == [
        'history.csv', 'history.json', 'metrics.json', 'model.prev.pt', 'model.pt']
    metrics = json.loads((out / 'metrics.json').read_text())
    assert 0.0 <= metrics['test_accuracy'] <= 1.0
    assert f"{metrics['test_accuracy']:.4f}" == accuracy(stdout)
    assert metrics['epochs'] == 2 and metrics['train_time_s'] > 0
    args = metrics['args']
    assert args['dataset'] == 'synthetic' and args['model'] == 'stgcn-compact'
    assert args['prune'] == 'tcmp' and args['amount'] == 0.9
    assert args['lr'] == 0.05 and args['epochs'] == 2 and args['seed'] == 0
    totals = metrics['connectivity']
    assert totals['kept'] == round(0.1 * totals['weights'])
    assert totals['dead'] == 0 and totals['live'] == totals['kept']
    assert f"kept {totals['kept']} of {totals['weights']} weights" in stdout
    # TCMP keeps every class reachable, and the printout says so.
    assert totals['reachable_outputs'] == totals['num_outputs'] > 0
    assert (f"0 dead, {totals['num_outputs']} of {totals['num_outputs']} "
            f"outputs reachable") in stdout
    history = json.loads((out / 'history.json').read_text())
    assert [row['epoch'] for row in history] == [1, 2]

    model = load_model(out / 'model.pt')
    report = connectivity(model)
    assert report.kept == totals['kept'] and report.is_consistent
    assert report.covers_outputs


def test_evaluate_recomputes_the_accuracy(synthetic_run, capsys, tmp_path):
    _, out, stdout = synthetic_run
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt')]) == 0
    evaluated = capsys.readouterr().out
    assert accuracy(evaluated) == accuracy(stdout)
    assert '/20 sequences' in evaluated  # 60 // 3 test sequences
    # Another root: the synthetic set is regenerated there, identically.
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt'),
                 '--root', str(tmp_path / 'elsewhere')]) == 0
    assert accuracy(capsys.readouterr().out) == accuracy(stdout)


def test_same_command_does_not_train_a_finished_run_again(synthetic_run, capsys):
    command, out, stdout = synthetic_run
    before = (out / 'model.pt').stat().st_mtime_ns
    assert main(command) == 0
    again = capsys.readouterr().out
    assert 'holds a finished run (2 epochs); not trained again' in again
    assert accuracy(again) == accuracy(stdout)
    assert (out / 'model.pt').stat().st_mtime_ns == before


def test_connectivity_command(synthetic_run, capsys):
    _, out, _ = synthetic_run
    assert main(['connectivity', '--checkpoint', str(out / 'model.pt')]) == 0
    table = capsys.readouterr().out
    assert table.startswith('STGCN(6, 10')  # x, y, z and their motion
    assert re.search(r'^blocks\.0\.gcn\s+\d+', table, re.MULTILINE)
    assert re.search(r'^total\s+\d+\s+\d+\s+\d+\s+0\b', table, re.MULTILINE)
    sparsity = re.search(r'nominal sparsity (\d+\.\d+)%', table).group(1)
    assert float(sparsity) == pytest.approx(90.0, abs=0.01)  # --amount 0.9
    assert ', consistent' in table


def test_errors(tmp_path, capsys):
    assert main(['train', '--dataset', 'synthetic', '--root', str(tmp_path),
                 '--fold', '1', '--out', str(tmp_path / 'run'), '--quiet']) == 1
    assert "'fold' do not apply to dataset 'synthetic'" in capsys.readouterr().err
    assert main(['evaluate', '--checkpoint', str(tmp_path / 'absent.pt')]) == 1
    assert "absent.pt' not found" in capsys.readouterr().err
    (tmp_path / 'bad.pt').write_bytes(b'garbage')
    assert main(['connectivity', '--checkpoint', str(tmp_path / 'bad.pt')]) == 1
    assert 'is corrupt' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['train', '--dataset', 'sbu', '--out', 'x', '--prune', 'magic'])


def test_mp_lamp_keeps_the_classifier_dense(tmp_path, capsys):
    out = tmp_path / 'run'
    command = ['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
               '--num-samples', '40', '--num-frames', '8', '--model', 'stgcn-compact',
               '--epochs', '1', '--batch-size', '8', '--prune', 'mp-lamp',
               '--amount', '0.99', '--keep-dense', 'fc', '--out', str(out),
               '--threads', '1', '--quiet']
    assert main(command) == 0, capsys.readouterr().err
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['args']['prune'] == 'mp-lamp'
    assert metrics['args']['keep_dense'] == ['fc']
    totals = metrics['connectivity']
    assert totals['kept'] == round(0.01 * totals['weights'])  # fc inside the budget
    model = load_model(out / 'model.pt')
    assert bool((model.fc.weight_mask != 0).all())
    # An unknown layer is refused with the names there are.
    command[command.index('fc')] = 'classifier'
    command[command.index(str(out))] = str(tmp_path / 'other')
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "STGCN has no prunable layer named 'classifier'" in err
    assert 'blocks.0.gcn, blocks.0.tcn' in err and err.rstrip().endswith(', fc')


@pytest.fixture(scope='module')
def dense_run(tmp_path_factory):
    """(train arguments, run folder) of a 1-epoch dense run on a small
    synthetic set: the trained checkpoint one-shot runs start from."""
    tmp = tmp_path_factory.mktemp('dense')
    base = ['train', '--dataset', 'synthetic', '--root', str(tmp / 'data'),
            '--num-samples', '40', '--num-frames', '8', '--model', 'stgcn-compact',
            '--epochs', '1', '--batch-size', '8', '--lr', '0.05', '--warmup', '0',
            '--threads', '1', '--quiet']
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(base + ['--out', str(tmp / 'dense')])
    torch.set_num_threads(threads)
    assert code == 0, stdout.getvalue()
    return base, tmp / 'dense'


def test_oneshot_magnitude_pruning_of_a_trained_model_then_finetuning(
        dense_run, tmp_path, capsys):
    base, dense = dense_run
    out = tmp_path / 'oneshot'
    assert main(base + ['--init-from', str(dense / 'model.pt'), '--prune', 'mp',
                        '--amount', '0.9', '--prune-start', '0', '--prune-end', '0',
                        '--out', str(out)]) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['init_from'] == str(dense / 'model.pt')
    assert metrics['args']['prune_start'] == metrics['args']['prune_end'] == 0.0
    # The masks are the global top-|w| of the trained weights, chosen at step
    # 0 and kept through the fine-tuning.
    expected = load_model(dense / 'model.pt')
    assert magnitude_prune(expected, 0.9) == metrics['connectivity']['kept']
    tuned = load_model(out / 'model.pt')
    pairs = list(zip(prunable_weights(expected), prunable_weights(tuned)))
    assert all(torch.equal(a.weight_mask, b.weight_mask) for (_, a), (_, b) in pairs)
    assert any(not torch.equal(a.weight * a.weight_mask, b.weight * b.weight_mask)
               for (_, a), (_, b) in pairs)  # fine-tuned
    history = json.loads((out / 'history.json').read_text())
    assert history[0]['kept'] == metrics['connectivity']['kept']


def test_init_from_refuses_another_architecture(dense_run, tmp_path, capsys):
    base, dense = dense_run
    path = dense / 'model.pt'
    assert main(base + ['--no-motion', '--init-from', str(path),
                        '--out', str(tmp_path / 'run')]) == 1
    err = capsys.readouterr().err
    assert f"error: Cannot initialise from '{path}': its STGCN has another " \
           f"architecture than this run's: in_channels (checkpoint 6, this run 3)" in err
    assert not (tmp_path / 'run' / 'metrics.json').exists()
    assert main(base + ['--init-from', str(tmp_path / 'absent.pt'),
                        '--out', str(tmp_path / 'run')]) == 1
    assert "absent.pt' not found" in capsys.readouterr().err


def test_init_from_folds_a_pruned_checkpoint_into_dense_weights(synthetic_run):
    _, out, _ = synthetic_run
    pruned = load_model(out / 'model.pt')
    fresh = model_from_config(type(pruned).__name__, pruned.config())
    init_from_checkpoint(fresh, out / 'model.pt')
    for (_, a), (_, b) in zip(prunable_weights(pruned), prunable_weights(fresh)):
        assert bool((b.weight_mask == 1).all())
        assert torch.equal(b.weight, a.weight * a.weight_mask)
    gates = [m.gate for m in fresh.modules() if isinstance(m, ChannelGate)]
    assert gates and all(bool((g == 1).all()) for g in gates)
    assert torch.equal(fresh.data_bn.running_mean, pruned.data_bn.running_mean)


def test_sbu_fold1_end_to_end(sbu_root, tmp_path, capsys):
    """Real SBU fold 1: one epoch of the compact preset through the CLI,
    with the person-order augmentation."""
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'sbu', '--root', str(sbu_root),
                 '--fold', '1', '--num-frames', '32', '--model', 'stgcn-compact',
                 '--epochs', '1', '--swap-bodies', '--out', str(out),
                 '--threads', '1', '--quiet']) == 0
    trained = capsys.readouterr().out
    metrics = json.loads((out / 'metrics.json').read_text())
    assert 0.0 <= metrics['test_accuracy'] <= 1.0
    assert metrics['swap_bodies'] and metrics['args']['swap_bodies']
    assert metrics['class_names'][0] == 'approaching'
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt')]) == 0
    evaluated = capsys.readouterr().out
    assert accuracy(evaluated) == accuracy(trained)
    assert '/55 sequences' in evaluated  # the test sets of fold 1


def test_sbu_validation_split_and_trajectory_preset(sbu_root, tmp_path, capsys):
    """Real SBU fold 2: the sahbi-gcn preset with a validation split carved
    from the training folds, evaluated over both person orders; evaluate
    rebuilds the same test split and evaluation."""
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'sbu', '--root', str(sbu_root),
                 '--fold', '2', '--model', 'sahbi-gcn', '--optimizer', 'adamw',
                 '--lr', '0.001', '--epochs', '2', '--val-fraction', '0.2',
                 '--crop', '0.7', '--average-body-orders', '--out', str(out),
                 '--threads', '1', '--quiet']) == 0
    trained = capsys.readouterr().out
    metrics = json.loads((out / 'metrics.json').read_text())
    # 230 training sequences of fold 2; a fifth of each class held out.
    assert metrics['num_val'] == 45 and 0.0 <= metrics['val_accuracy'] <= 1.0
    assert f"validation accuracy: {metrics['val_accuracy']:.4f} (45 sequences" in trained
    assert metrics['options']['units'] == 'metres' and metrics['crop'] == 0.7
    history = json.loads((out / 'history.json').read_text())
    assert all('val_acc' in row for row in history)
    assert metrics['average_body_orders'] is True
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt')]) == 0
    evaluated = capsys.readouterr().out
    assert accuracy(evaluated) == accuracy(trained)
    assert '/52 sequences, averaged over both person orders' in evaluated
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt'),
                 '--no-average-body-orders']) == 0
    assert '/52 sequences)' in capsys.readouterr().out
    assert main(['train', '--dataset', 'sbu', '--root', str(sbu_root),
                 '--val-fraction', '1.5', '--out', str(tmp_path / 'bad')]) == 1
    assert "'val_fraction' in (0, 1)" in capsys.readouterr().err


def test_narrow_dense_rival_and_its_width(synthetic_run, tmp_path, capsys):
    """`train --width` trains a narrow dense preset that checkpoints rebuild;
    `width --like` finds the rivals of a pruned run."""
    command, pruned, _ = synthetic_run
    data = command[command.index('--root') + 1]
    out = tmp_path / 'narrow'
    assert main(['train', '--dataset', 'synthetic', '--root', data,
                 '--num-samples', '60', '--num-frames', '12', '--epochs', '1',
                 '--batch-size', '8', '--width', '0.25', '--out', str(out),
                 '--threads', '1', '--quiet']) == 0
    trained = capsys.readouterr().out
    metrics = json.loads((out / 'metrics.json').read_text())
    model = load_model(out / 'model.pt')
    assert model.channels == (8, 8, 16, 16)
    assert metrics['width'] == 0.25 and metrics['args']['width'] == 0.25
    assert metrics['parameters'] == sum(p.numel() for p in model.parameters())
    assert metrics['prunable_weights'] == connectivity(model).weights
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt')]) == 0
    assert accuracy(capsys.readouterr().out) == accuracy(trained)

    assert main(['width', '--like', str(pruned / 'model.pt')]) == 0
    lines = capsys.readouterr().out.splitlines()
    kept = json.loads((pruned / 'metrics.json').read_text())['connectivity']['kept']
    assert lines[0].startswith('stgcn-compact --width 0.')
    assert lines[0].endswith(f' weights (target {kept:,})')
    assert re.fullmatch(r'stgcn-compact --width 0\.\d+: [\d,]+ parameters '
                        r'\(target [\d,]+\)', lines[1])
    assert main(['width', '--params', '16500']) == 0  # SBU shapes by default
    assert capsys.readouterr().out == \
        'stgcn-compact --width 0.36: 16,494 parameters (target 16,500)\n'
    assert main(['width', '--like', str(out / 'model.pt')]) == 1
    assert 'was not pruned; give --params or --weights' in capsys.readouterr().err
    assert main(['width', '--like', str(out / 'model.pt'), '--layout', 'ntu',
                 '--params', '10']) == 1
    assert '--layout: --like sets them' in capsys.readouterr().err
    assert main(['train', '--dataset', 'synthetic', '--root', data,
                 '--width', '0', '--out', str(tmp_path / 'bad'), '--quiet']) == 1
    assert "'width' to be a positive number (got 0.0)" in capsys.readouterr().err


def test_structured_channel_pruning_run(synthetic_run, tmp_path, capsys):
    """`train --prune channel`: whole channels, no dead weight, and the
    compacted model keeps exactly the kept weights."""
    from tcmp_pyg.pruning import prunable_weights

    command, _, _ = synthetic_run
    data = command[command.index('--root') + 1]
    out = tmp_path / 'channel'
    assert main(['train', '--dataset', 'synthetic', '--root', data,
                 '--num-samples', '60', '--num-frames', '12', '--epochs', '2',
                 '--batch-size', '8', '--lr', '0.05', '--warmup', '1',
                 '--prune', 'channel', '--amount', '0.9', '--out', str(out),
                 '--threads', '1', '--quiet']) == 0
    stdout = capsys.readouterr().out
    totals = json.loads((out / 'metrics.json').read_text())['connectivity']
    assert totals['kept'] <= round(0.1 * totals['weights'])
    assert totals['kept'] > 0.09 * totals['weights']  # whole channels, close
    assert totals['dead'] == 0 and totals['live'] == totals['kept']
    assert f"kept {totals['kept']} of {totals['weights']} weights" in stdout
    assert main(['compact', '--checkpoint', str(out / 'model.pt'),
                 '--out', str(tmp_path / 'small.pt')]) == 0
    small = load_model(tmp_path / 'small.pt')
    assert sum(m.weight.numel() for _, m in prunable_weights(small)) == totals['kept']
