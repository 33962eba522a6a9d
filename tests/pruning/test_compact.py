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
