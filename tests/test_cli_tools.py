"""`tcmp-pyg compact`, `tcmp-pyg export` and `tcmp-pyg train --tensorboard`
on tiny synthetic runs."""
import contextlib
import io
import json
import re
import sys

import pytest
import torch
from torch_geometric.loader import DataLoader

from tcmp_pyg import load_model
from tcmp_pyg.checkpoint import read_checkpoint, save_checkpoint
from tcmp_pyg.cli import main
from tcmp_pyg.datasets.splits import dataset_splits
from tcmp_pyg.nn import CompactSTGCN, STGCN
from tcmp_pyg.pruning import connectivity, count_parameters
from tcmp_pyg.train import train


@pytest.fixture(autouse=True)
def restore_threads():
    # `train --threads 1` sets torch's process-wide thread count.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def train_run(tmp, name, *extra):
    """Trains a 2-epoch compact ST-GCN on 60 synthetic sequences of 12
    frames; returns the run folder and the stdout."""
    out = tmp / name
    command = ['train', '--dataset', 'synthetic', '--root', str(tmp / 'data'),
               '--num-samples', '60', '--num-frames', '12',
               '--model', 'stgcn-compact', '--epochs', '2', '--batch-size', '8',
               '--lr', '0.05', '--warmup', '1', '--out', str(out),
               '--threads', '1', '--quiet', *extra]
    threads = torch.get_num_threads()
    stdout = io.StringIO()  # capsys is per test; the fixtures are per module
    with contextlib.redirect_stdout(stdout):
        code = main(command)
    torch.set_num_threads(threads)
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


@pytest.fixture(scope='module')
def tcmp_run(tmp_path_factory):
    """Run folder of a TCMP run at 90 % (consistent: no dead weight)."""
    out, _ = train_run(tmp_path_factory.mktemp('tools'), 'tcmp', '--prune',
                       'tcmp', '--amount', '0.9')
    return out


def first_test_batch(run):
    """The first batch of the run's test split, as `compact` takes it."""
    meta = read_checkpoint(run / 'model.pt')['meta']
    _, test_ds = dataset_splits(meta['dataset'], meta['root'], augment=False,
                                center=meta['center'], motion=meta['motion'],
                                bone=meta['bone'], **meta['options'])
    return next(iter(DataLoader(test_ds, batch_size=64)))


def number(pattern, text):
    match = re.search(pattern, text, re.MULTILINE)
    assert match, text
    return int(match.group(1).replace(',', ''))


def dense_checkpoint(path):
    torch.manual_seed(0)
    save_checkpoint(path, STGCN(6, 10, 'ntu', channels=(8, 8)))
    return path


# -- compact -----------------------------------------------------------------------

def test_compact_writes_a_smaller_model_with_the_same_outputs(tcmp_run, tmp_path,
                                                              capsys):
    small_path = tmp_path / 'small.pt'
    assert main(['compact', '--checkpoint', str(tcmp_run / 'model.pt'),
                 '--out', str(small_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('STGCN from ') and '-> CompactSTGCN' in out
    assert '(on 20 test sequences of synthetic at ' in out
    assert 'gating change: 0 ' in out  # TCMP trains gated
    assert f'wrote {small_path}' in out

    pruned = load_model(tcmp_run / 'model.pt')
    small = load_model(small_path)
    assert isinstance(small, CompactSTGCN) and not small.training
    params = number(r'^parameters: ([\d,]+)', out)
    kept = number(r'\(([\d,]+) kept by the masks\)', out)
    compact_params = number(r'kept by the masks\) -> ([\d,]+)$', out)
    assert params == count_parameters(pruned)
    assert kept == count_parameters(pruned, nonzero=True)
    assert compact_params == count_parameters(small) < params
    macs = number(r'^MACs per sequence: ([\d,]+)', out)
    assert number(r'^MACs per sequence: [\d,]+ -> ([\d,]+)', out) < macs
    batch = first_test_batch(tcmp_run)
    with torch.no_grad():
        assert torch.allclose(small(batch), pruned(batch), atol=1e-5)
    # Every kept weight of a consistent model survives compaction.
    assert connectivity(small).kept == connectivity(pruned).kept

    meta = read_checkpoint(small_path)['meta']
    assert meta['compacted_from'] == str(tcmp_run / 'model.pt')
    assert meta['gating_change'] == 0.0 and meta['dataset'] == 'synthetic'
    # The recorded dataset comes along, so `evaluate` takes the compact file.
    assert main(['evaluate', '--checkpoint', str(tcmp_run / 'model.pt')]) == 0
    accuracy = capsys.readouterr().out.splitlines()[-1]
    assert main(['evaluate', '--checkpoint', str(small_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == accuracy


def test_train_records_the_costs_compact_reports(tcmp_run, tmp_path, capsys):
    """metrics.json's `cost` (what sweeps tabulate and plot) are the counts of
    `tcmp-pyg compact`."""
    cost = json.loads((tcmp_run / 'metrics.json').read_text())['cost']
    assert main(['compact', '--checkpoint', str(tcmp_run / 'model.pt'),
                 '--out', str(tmp_path / 'small.pt')]) == 0
    out = capsys.readouterr().out
    assert cost == dict(
        params=number(r'^parameters: ([\d,]+)', out),
        nonzero_params=number(r'\(([\d,]+) kept by the masks\)', out),
        macs=number(r'^MACs per sequence: ([\d,]+)', out),
        compact_params=number(r'kept by the masks\) -> ([\d,]+)$', out),
        compact_macs=number(r'^MACs per sequence: [\d,]+ -> ([\d,]+)', out))


def test_train_prints_the_costs_of_a_dense_run(tmp_path):
    out, stdout = train_run(tmp_path, 'dense')
    cost = json.loads((out / 'metrics.json').read_text())['cost']
    params = count_parameters(load_model(out / 'model.pt'))
    assert cost['params'] == cost['nonzero_params'] == cost['compact_params'] == params
    assert cost['macs'] == cost['compact_macs'] > 0
    assert (f"parameters: {params:,} ({params:,} nonzero), {cost['macs']:,} MACs "
            f"per sequence; compacted: {params:,} parameters") in stdout


def test_compact_without_the_dataset_uses_random_input(tcmp_run, tmp_path, capsys):
    # Same weights, no recorded dataset (a checkpoint saved from Python).
    path = tmp_path / 'bare.pt'
    save_checkpoint(path, load_model(tcmp_run / 'model.pt'))
    assert main(['compact', '--checkpoint', str(path), '--out',
                 str(tmp_path / 'small.pt'), '--batch-size', '3']) == 0
    out = capsys.readouterr().out
    assert ('(on 3 random sequences of 32 frames (the checkpoint records no '
            'dataset))') in out
    assert isinstance(load_model(tmp_path / 'small.pt'), CompactSTGCN)


def test_compact_errors(tcmp_run, tmp_path, capsys):
    def fails(*args):
        assert main(['compact', *args]) == 1
        return capsys.readouterr().err

    out = ['--out', str(tmp_path / 'small.pt')]
    err = fails('--checkpoint', str(tmp_path / 'absent.pt'), *out)
    assert re.match(r"error: Checkpoint '.*absent\.pt' not found", err)
    dense = dense_checkpoint(tmp_path / 'dense.pt')
    err = fails('--checkpoint', str(dense), *out)
    assert re.match(r"error: nothing to compact: '.*dense\.pt' was not pruned", err)
    err = fails('--checkpoint', str(tcmp_run / 'model.pt'), '--out',
                str(tcmp_run / 'model.pt'))
    assert 'would replace the pruned checkpoint' in err
    assert main(['compact', '--checkpoint', str(tcmp_run / 'model.pt'), *out]) == 0
    capsys.readouterr()
    err = fails('--checkpoint', str(tmp_path / 'small.pt'), '--out',
                str(tmp_path / 'smaller.pt'))
    assert 'holds a CompactSTGCN: it is compact already' in err
    assert not (tmp_path / 'smaller.pt').exists()


# -- export ------------------------------------------------------------------------

def test_export_compact_model_runs_in_onnxruntime(tcmp_run, tmp_path, capsys):
    pytest.importorskip('onnx', reason='ONNX export needs onnx (the export extra)')
    pytest.importorskip('onnxscript', reason='ONNX export needs onnxscript')
    ort = pytest.importorskip('onnxruntime', reason='running the export needs it')
    path = tmp_path / 'model.onnx'
    assert main(['export', '--checkpoint', str(tcmp_run / 'model.pt'), '--onnx',
                 str(path), '--compact', '--dynamic-batch']) == 0
    out = capsys.readouterr().out
    assert re.search(r'^compacted: [\d,]+ -> [\d,]+ parameters \(gating change '
                     r'0 on random input\)', out, re.MULTILINE)
    assert f'wrote {path} (CompactSTGCN; input x [B, 50, 12, 6]' in out
    diff = float(re.search(r'max abs difference (\S+)$', out, re.MULTILINE).group(1))
    assert diff <= 1e-4

    # The real test split through onnxruntime, against the pruned PyG model.
    batch = first_test_batch(tcmp_run)
    B = batch.num_graphs
    x = batch.x.view(B, -1, *batch.x.shape[1:])  # [B, M * V, T, C]
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    logits = torch.from_numpy(session.run(['logits'], {'x': x.numpy()})[0])
    with torch.no_grad():
        expected = load_model(tcmp_run / 'model.pt')(batch)
    assert logits.shape == (B, 10)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_export_errors(tcmp_run, tmp_path, capsys, monkeypatch):
    onnx = ['--onnx', str(tmp_path / 'model.onnx')]
    assert main(['export', '--checkpoint', str(tmp_path / 'absent.pt'), *onnx]) == 1
    assert "absent.pt' not found" in capsys.readouterr().err
    dense = dense_checkpoint(tmp_path / 'dense.pt')
    assert main(['export', '--checkpoint', str(dense), '--compact', *onnx]) == 1
    assert 'nothing to compact' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, 'onnx', None)  # as if not installed
    assert main(['export', '--checkpoint', str(tcmp_run / 'model.pt'), *onnx]) == 1
    assert "error: export_onnx() needs onnx: pip install 'tcmp-pyg[export]'" in \
        capsys.readouterr().err
    assert not (tmp_path / 'model.onnx').exists()


# -- train --tensorboard -----------------------------------------------------------

def test_train_tensorboard_logs_the_topology_per_epoch(tmp_path):
    pytest.importorskip('tensorboard', reason='needs `pip install tensorboard`')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator

    # Plain magnitude pruning at 90 % leaves dead weights to count.
    out, _ = train_run(tmp_path, 'mp', '--prune', 'mp', '--amount', '0.9',
                       '--tensorboard')
    events = EventAccumulator(str(out / 'tensorboard'))
    events.Reload()
    tags = set(events.Tags()['scalars'])
    report = connectivity(load_model(out / 'model.pt'))
    layers = [row.name for row in report.layers]
    assert {'train/loss', 'train/acc', 'test/acc', 'lr'} <= tags
    assert {f'{count}/{name}' for count in ('kept', 'live', 'dead')
            for name in layers + ['total']} <= tags

    def values(tag):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        return [s.value for s in scalars]

    assert report.dead > 0
    for row in report.layers:  # the last epoch is the saved model
        assert values(f'dead/{row.name}')[-1] == row.dead
        assert values(f'kept/{row.name}')[-1] == row.kept
    history = read_checkpoint(out / 'model.pt')['training']['history']
    assert values('dead/total') == [row['dead'] for row in history]
    assert values('outputs/reachable')[-1] == report.reachable_outputs
    assert values('test/acc') == pytest.approx([row['test_acc'] for row in history])
    assert values('lr') == pytest.approx([row['lr'] for row in history])

    # The same command on the finished run trains nothing and logs nothing.
    train_run(tmp_path, 'mp', '--prune', 'mp', '--amount', '0.9', '--tensorboard')
    assert len(list((out / 'tensorboard').iterdir())) == 1


def test_train_tensorboard_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
                 '--out', str(out), '--tensorboard', '--quiet']) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: --tensorboard: TensorBoard logging needs the '
                          'tensorboard package')
    assert err.rstrip().endswith('pip install tensorboard')
    assert not out.exists() and not (tmp_path / 'data').exists()  # nothing ran


def test_train_function_checks_tensorboard_first(monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    model = STGCN(6, 10, 'ntu', channels=(8,))
    # Raised before the (empty) splits are even looked at.
    with pytest.raises(ImportError, match='pip install tensorboard'):
        train(model, [], [], tensorboard_dir='unused')
