"""Dense equivalents of the skeleton models and their ONNX export."""
import os

import pytest
import torch
from torch import nn

from tcmp_pyg.export import (DenseAttentionGCN, DenseSTGCN, export_onnx,
                             example_input, pyg_forward, to_dense)
from tcmp_pyg.nn import AttentionGCN, STGCN
from tcmp_pyg.pruning import TCMP, compact, gate_dead_channels, magnitude_prune

T = 6


def stgcn(**kwargs):
    torch.manual_seed(0)
    return STGCN(3, 5, 'sbu', channels=(8, 16, 16), **kwargs)


def attention():
    torch.manual_seed(0)
    return AttentionGCN(3, 5, 'sbu', num_frames=T, heads=2, head_channels=3,
                        hidden_channels=7)


def randomize(model):
    """Non-trivial BatchNorm statistics and edge importance."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.5, generator=gen)
        if getattr(m, 'edge_importance', None) is not None and \
                isinstance(m.edge_importance, nn.Parameter):
            m.edge_importance.data.uniform_(0.5, 1.5, generator=gen)
    return model


def tcmp(model, amount=0.9):
    pruner = TCMP(model, amount)
    pruner.update(pruner.budget, final=True)
    return model.eval()


MODELS = {
    'stgcn': lambda: randomize(stgcn()),
    'stgcn-edge-importance': lambda: randomize(stgcn(edge_importance=True)),
    'attention': lambda: randomize(attention()),
}


@pytest.mark.parametrize('name', MODELS)
@pytest.mark.parametrize('stage', ['dense', 'masked', 'compact'])
def test_dense_equals_pyg_model(name, stage):
    model = MODELS[name]().eval()
    if stage != 'dense':
        tcmp(model)
    if stage == 'compact':
        model = compact(model)
    dense = to_dense(model)
    assert isinstance(dense, DenseAttentionGCN if name == 'attention' else DenseSTGCN)
    assert not list(dense.parameters())  # constants only
    x = example_input(model, T, batch_size=3, seed=2)
    with torch.no_grad():
        assert torch.allclose(dense(x), pyg_forward(model, x), atol=1e-5)


def test_dense_equals_gated_model_of_plain_mp_and_a_residual_only_block():
    model = randomize(stgcn())
    magnitude_prune(model, 0.9)
    last = model.blocks[-1]  # only the identity residual survives
    last.gcn.set_mask(torch.zeros_like(last.gcn.weight))
    gate_dead_channels(model)
    model.eval()
    x = example_input(model, T, batch_size=2)
    small = compact(model)
    assert not small.blocks[-1].main
    with torch.no_grad():
        expected = pyg_forward(model, x)
        assert torch.allclose(to_dense(model)(x), expected, atol=1e-5)
        assert torch.allclose(to_dense(small)(x), expected, atol=1e-5)


def test_dense_refuses_other_models_and_bad_inputs():
    with pytest.raises(TypeError, match='supports STGCN, AttentionGCN'):
        to_dense(nn.Linear(2, 2))
    dense = to_dense(stgcn())
    with pytest.raises(ValueError, match=r'expected .x. of shape \[B, 30, T, 3\]'):
        dense(torch.zeros(1, 15, T, 3))


# -- ONNX --------------------------------------------------------------------------

def onnxruntime():
    pytest.importorskip('onnx', reason='ONNX export needs onnx (the export extra)')
    pytest.importorskip('onnxscript', reason='ONNX export needs onnxscript (the export extra)')
    return pytest.importorskip('onnxruntime', reason='running the export needs onnxruntime')


def run_onnx(path, x):
    ort = onnxruntime()
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['x']
    return torch.from_numpy(session.run(['logits'], {'x': x.numpy()})[0])


@pytest.mark.parametrize('name', ['stgcn', 'attention'])
@pytest.mark.parametrize('batch_size', [1, None])
def test_onnx_export_of_compact_model_runs_in_onnxruntime(tmp_path, name, batch_size):
    onnxruntime()
    model = tcmp(MODELS[name]())
    small = compact(model)
    path = export_onnx(small, tmp_path / 'model.onnx', num_frames=T,
                       batch_size=batch_size)
    assert path == tmp_path / 'model.onnx'
    assert os.listdir(tmp_path) == ['model.onnx']  # no temporary file left
    x = example_input(small, T, batch_size=batch_size or 3, seed=4)
    with torch.no_grad():
        expected = pyg_forward(small, x)
        assert torch.allclose(pyg_forward(model, x), expected, atol=1e-5)
    assert torch.allclose(run_onnx(path, x), expected, atol=1e-4)


@pytest.mark.parametrize('name', ['stgcn', 'attention'])
def test_onnx_export_of_masked_model(tmp_path, name):
    onnxruntime()
    model = tcmp(MODELS[name]())
    path = export_onnx(model, tmp_path / 'masked.onnx', num_frames=T)
    x = example_input(model, T, batch_size=1, seed=5)
    with torch.no_grad():
        expected = pyg_forward(model, x)
    assert torch.allclose(run_onnx(path, x), expected, atol=1e-4)


def test_onnx_export_replaces_atomically(tmp_path, monkeypatch):
    onnxruntime()
    small = compact(tcmp(MODELS['stgcn']()))
    path = tmp_path / 'model.onnx'
    path.write_bytes(b'old')

    def broken(*args, **kwargs):
        with open(args[2], 'wb') as f:
            f.write(b'half a model')
        raise RuntimeError('exporter failed')

    monkeypatch.setattr(torch.onnx, 'export', broken)
    with pytest.raises(RuntimeError, match='exporter failed'):
        export_onnx(small, path, num_frames=T)
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['model.onnx']
    monkeypatch.undo()
    export_onnx(small, path, num_frames=T)
    assert path.read_bytes() != b'old'


def test_onnx_export_refuses_bad_arguments(tmp_path):
    onnxruntime()
    with pytest.raises(ValueError, match='takes sequences of 6 frames'):
        export_onnx(attention(), tmp_path / 'a.onnx', num_frames=8)
    with pytest.raises(ValueError, match="'batch_size' >= 1"):
        export_onnx(stgcn(), tmp_path / 'a.onnx', num_frames=T, batch_size=0)
    assert not os.listdir(tmp_path)
