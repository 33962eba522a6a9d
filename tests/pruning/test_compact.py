import pytest
import torch

from tcmp_pyg.nn import prunable_weights
from tcmp_pyg.pruning import TCMP, connectivity, magnitude_prune
from tcmp_pyg.pruning.compact import compact, count_parameters

from helpers import batch, randomize_norms, small_attention, small_stgcn


@pytest.mark.parametrize('make', [lambda: small_stgcn((8, 16, 16)), small_attention])
@pytest.mark.parametrize('amount', [0.5, 0.9, 0.97])
def test_compact_equals_gated_masked_model(make, amount):
    model = make()
    randomize_norms(model)
    pruner = TCMP(model, amount)
    pruner.update(pruner.budget, final=True)
    model.eval()
    data = batch()
    small = compact(model, example=data)
    assert small.gating_change == 0.0  # TCMP trains gated: nothing changes
    assert torch.allclose(small(data), model(data), atol=1e-5)
    assert count_parameters(small) <= count_parameters(model)
    report = connectivity(small)
    assert report.is_consistent
    assert report.live == report.kept == pruner.budget
    if amount >= 0.9 and hasattr(model, 'blocks'):
        assert count_parameters(small) < count_parameters(model) / 2


def test_compact_reports_the_gating_change_of_plain_mp():
    model = small_stgcn((8, 16, 16))
    randomize_norms(model)
    magnitude_prune(model, 0.9)
    model.eval()
    data = batch()
    before = model(data)
    with pytest.warns(UserWarning, match='gating dead channels changed'):
        small = compact(model, example=data)
    assert small.gating_change == pytest.approx(float((model(data) - before).abs().max()))
    assert small.gating_change > 0
    assert torch.allclose(small(data), model(data), atol=1e-5)


def test_compact_keeps_the_residual_of_a_dead_block():
    model = small_stgcn((8, 8, 8))
    randomize_norms(model)
    pruner = TCMP(model, 0.8)
    pruner.update(pruner.budget, final=True)
    # Kill the main path of the last (identity) block: only its residual stays.
    last = model.blocks[-1]
    last.gcn.set_mask(torch.zeros_like(last.gcn.weight))
    from tcmp_pyg.pruning import gate_dead_channels
    gate_dead_channels(model)
    model.eval()
    data = batch()
    small = compact(model)
    assert not small.blocks[-1].main
    assert torch.allclose(small(data), model(data), atol=1e-5)


def test_compact_save_and_load_by_config(tmp_path):
    model = small_stgcn((8, 16, 16))
    pruner = TCMP(model, 0.9)
    pruner.update(pruner.budget, final=True)
    small = compact(model)
    torch.save({'config': small.config(), 'state': small.state_dict()}, tmp_path / 's.pt')
    blob = torch.load(tmp_path / 's.pt', weights_only=True)
    again = type(small)(**{**blob['config'], 'layout': small.layout})
    again.load_state_dict(blob['state'], strict=True)
    again.eval()
    data = batch()
    assert torch.equal(again(data), small(data))


def test_compact_refuses_unpruned_or_disconnected_models():
    model = small_stgcn()
    with pytest.raises(ValueError, match='no pruned weight'):
        compact(model)
    model.fc.set_mask(torch.zeros_like(model.fc.weight))
    with pytest.raises(ValueError, match='disconnected'):
        compact(model)
    with pytest.raises(TypeError, match='supports STGCN and AttentionGCN'):
        compact(torch.nn.Linear(2, 2))


def _fused_and_layers(small, data):
    """Inference outputs of the folded path and of the layer path."""
    small.eval()
    with torch.no_grad():
        small.fused = True
        fused = small(data)
        small.fused = False
        layers = small(data)
        small.fused = True
    return fused, layers


@pytest.mark.parametrize('windows_max', [0, 1 << 30])  # convolution / windows
@pytest.mark.parametrize('amount,kwargs', [
    (0.5, {}), (0.9, {}), (0.97, {}), (0.9, dict(edge_importance=True))])
def test_compact_fused_inference_equals_layer_path(monkeypatch, windows_max,
                                                   amount, kwargs):
    monkeypatch.setattr('tcmp_pyg.nn.compact._TAPS_MAX', windows_max)
    model = small_stgcn((8, 16, 16), **kwargs)  # strides 1, 2, 1
    randomize_norms(model)
    if kwargs.get('edge_importance'):
        for block in model.blocks:
            block.gcn.edge_importance.data.uniform_(0.5, 1.5)
    pruner = TCMP(model, amount)
    pruner.update(pruner.budget, final=True)
    model.eval()
    small = compact(model)
    for B, T in ((3, 7), (1, 6), (3, 7)):  # odd T: the strided block rounds up
        data = batch(B=B, T=T)
        fused, layers = _fused_and_layers(small, data)
        assert fused.shape == (B, 5)
        assert torch.allclose(fused, layers, atol=1e-5)
        assert torch.allclose(fused, model(data), atol=1e-5)


def test_compact_fused_inference_with_dead_inputs_and_blocks():
    model = small_stgcn((8, 8, 8))
    randomize_norms(model)
    pruner = TCMP(model, 0.8)
    pruner.update(pruner.budget, final=True)
    first, last = model.blocks[0], model.blocks[-1]
    mask = first.gcn.weight_mask.clone()
    mask[:, 0] = 0  # input channel 0 reaches nothing
    first.gcn.set_mask(mask)
    last.gcn.set_mask(torch.zeros_like(last.gcn.weight))  # residual only
    from tcmp_pyg.pruning import gate_dead_channels
    gate_dead_channels(model)
    model.eval()
    small = compact(model)
    assert small.input_keep == [1, 2] and not small.blocks[-1].main
    data = batch()
    fused, layers = _fused_and_layers(small, data)
    assert torch.allclose(fused, layers, atol=1e-5)
    assert torch.allclose(fused, model(data), atol=1e-5)


def test_compact_fused_inference_follows_weight_changes():
    model = small_stgcn((8, 16, 16))
    randomize_norms(model)
    pruner = TCMP(model, 0.9)
    pruner.update(pruner.budget, final=True)
    small = compact(model).eval()
    data = batch()
    before, _ = _fused_and_layers(small, data)
    with torch.no_grad():  # in place, as an optimizer step
        small.fc.bias.add_(1.0)
        small.blocks[0].bn1.running_mean.add_(0.3)
    fused, layers = _fused_and_layers(small, data)
    assert not torch.allclose(fused, before, atol=1e-3)
    assert torch.allclose(fused, layers, atol=1e-5)
    # load_state_dict copies in place; a dtype cast moves every tensor.
    small.load_state_dict(compact(model).state_dict())
    fused, _ = _fused_and_layers(small, data)
    assert torch.allclose(fused, before, atol=1e-6)
    small.double()
    fused, layers = _fused_and_layers(small, _double(batch()))
    assert fused.dtype == torch.float64
    assert torch.allclose(fused, layers, atol=1e-10)


def _double(data):
    data.x = data.x.double()
    return data


def test_compact_fused_inference_only_without_autograd_on_the_layout_graph():
    model = small_stgcn((8, 16, 16))
    pruner = TCMP(model, 0.9)
    pruner.update(pruner.budget, final=True)
    small = compact(model).eval()
    data = batch()
    # With autograd on, the layer path runs: gradients reach the weights.
    small(data).sum().backward()
    assert small.fc.weight.grad is not None
    # A graph with one bone fewer is not the layout's: the layer path runs.
    keep = (data.edge_index[0] != 0) & (data.edge_index[1] != 0)
    data.edge_index = data.edge_index[:, keep]
    fused, layers = _fused_and_layers(small, data)
    assert torch.equal(fused, layers)
    # The MAC count sees every layer whatever the inference path.
    from tcmp_pyg.pruning import count_macs
    assert count_macs(small, batch()) > 0 and small.fused


@pytest.mark.parametrize('make', [lambda: small_stgcn((8, 16, 16)), small_attention])
def test_model_cost_of_dense_pruned_and_disconnected_models(make):
    from tcmp_pyg.pruning import count_macs
    from tcmp_pyg.pruning.compact import model_cost

    model = make().eval()
    data = batch()
    params, macs = count_parameters(model), count_macs(model, data)
    # A dense model is its own compacted model.
    assert model_cost(model, data) == dict(params=params, nonzero_params=params,
                                           macs=macs, compact_params=params,
                                           compact_macs=macs)
    pruner = TCMP(model, 0.9)
    pruner.update(pruner.budget, final=True)
    outputs = model(data)
    small = compact(model)
    cost = model_cost(model, data)
    assert cost == dict(params=params, nonzero_params=count_parameters(model, nonzero=True),
                        macs=macs, compact_params=count_parameters(small),
                        compact_macs=count_macs(small, data))
    assert cost['compact_params'] <= params and cost['compact_macs'] <= macs
    if hasattr(model, 'blocks'):  # whole channels die in the ST-GCN at 90 %
        assert cost['compact_params'] < params and cost['compact_macs'] < macs
    assert torch.equal(model(data), outputs)  # a copy was compacted
    assert model_cost(small, data)['compact_params'] == count_parameters(small)
    # No kept path from input to output: no compacted model.
    for _, m in prunable_weights(model):
        m.set_mask(torch.zeros_like(m.weight))
    cost = model_cost(model, data)
    assert cost['nonzero_params'] == params - sum(
        m.weight.numel() for _, m in prunable_weights(model))
    assert cost['compact_params'] is None and cost['compact_macs'] is None


def _one_path(model):
    """Masks of a one-block STGCN(3, 5, channels=(4,)) with one live path."""
    from tcmp_pyg.pruning import gate_dead_channels
    # One path: input 0 -> gcn channel 1 (partition 0) -> tcn channel 2
    # (centre tap) -> every class; plus entries that lead nowhere.
    gcn = torch.zeros(3, 3, 4)
    gcn[0, 0, 1] = 1
    gcn[2, 1, 3] = 1  # gcn channel 3 feeds no temporal channel: dead
    tcn = torch.zeros(4, 4, 9)
    tcn[2, 1, 4] = 1
    tcn[0, 0, 0] = 1  # gcn channel 0 is fed by no input: dead
    fc = torch.zeros(5, 4)
    fc[:, 2] = 1
    model.blocks[0].gcn.set_mask(gcn)
    model.blocks[0].tcn.set_mask(tcn)
    model.fc.set_mask(fc)
    gate_dead_channels(model)
    return model


def test_count_macs_live_counts_only_live_weights():
    from tcmp_pyg.pruning import count_macs
    model = small_stgcn((4,))  # gcn [K=3, 3, 4], tcn [4, 4, 9], fc [5, 4]
    model.eval()
    B, T, V, E = 2, 6, 30, 56 + 30  # SBU: 30 joints, 56 bones + self-loops
    data = batch(B=B, T=T)
    dense = 3 * 3 * 4 * V * T + E * T * 3 + 4 * 4 * 9 * V * T + 5 * 4
    assert count_macs(model, data) == dense
    assert count_macs(model, data, live=True) == dense  # nothing pruned
    _one_path(model)
    live = 1 * V * T + E * T * 1 + 1 * V * T + 5
    assert count_macs(model, data, live=True) == live
    assert count_macs(model, data) == dense  # the dense count ignores masks
    small = compact(model)
    assert count_macs(small, data, live=True) == live
    assert count_macs(small, data) == (1 * 1 * 1 * 3 * V * T + E * T * 1
                                       + 1 * 1 * 9 * V * T + 5 * 1)


@pytest.mark.parametrize('windows_max', [0, 1 << 30])  # convolution / windows
def test_compact_sparse_folded_path_equals_dense_folded_path(monkeypatch, windows_max):
    monkeypatch.setattr('tcmp_pyg.nn.compact._TAPS_MAX', windows_max)
    model = small_stgcn((8, 16, 16))  # strides 1, 2, 1
    randomize_norms(model)
    pruner = TCMP(model, 0.9)
    pruner.update(pruner.budget, final=True)
    model.eval()
    small = compact(model)
    assert small.sparse_below == 0.0
    for B, T in ((3, 7), (1, 6)):
        data = batch(B=B, T=T)
        small.sparse_below = 0.0
        with torch.no_grad():
            dense = small(data)
        dense_macs = small.folded_macs(B, T)
        small.sparse_below = 1.0  # every channel map below full density
        folded = small._fold()['blocks']
        assert all(f.gcn_weight.layout == torch.sparse_csr for f in folded if f.gcn_weight is not None)
        with torch.no_grad():
            sparse = small(data)
        assert torch.allclose(sparse, dense, atol=1e-5)
        assert torch.allclose(sparse, model(data), atol=1e-5)
        # The sparse path multiplies only the stored entries.
        assert small.folded_macs(B, T) < dense_macs
    with pytest.raises(ValueError, match=r"'sparse_below' to be a density in \[0, 1\]"):
        small.sparse_below = 1.5


def test_compact_folded_macs_count_the_stored_entries():
    model = small_stgcn((4,))  # gcn [K=3, 3, 4], tcn [4, 4, 9], fc [5, 4]
    model.eval()
    small = compact(_one_path(model))  # gcn [3, 1, 1], tcn [1, 1, 9], fc [5, 1]
    B, T, V = 2, 6, 30
    adjacency = int((model.blocks[0].gcn.dense_adjacency() != 0).sum())
    shift = V * B * T * 9 * 1  # every tap of the one output channel
    assert small.folded_macs(B, T) == (
        (V * B * T * 3 + adjacency * B * T * 1 + V * B * T * 9 + shift) // B + 5)
    small.sparse_below = 1.0  # two of three partitions and 8 of 9 taps are zeros
    assert small.folded_macs(B, T) == (
        (V * B * T * 1 + adjacency * B * T * 1 + V * B * T * 1 + shift) // B + 5)
