import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tcmp_pyg.nn import prunable_weights
from tcmp_pyg.pruning import (TCMP, EffectivePruning, MagnitudePruning,
                              PrunableLinear, RandomPruning, connectivity,
                              coverage_weights, from_torch_prune,
                              shortest_path_weights)
from tcmp_pyg.pruning.connectivity import LayerView, flow_layers
from tcmp_pyg.pruning.select import consistent_masks

from helpers import (batch, coverage_case, sgd_step, shrink_classifier, small_attention,
                     small_stgcn, train_checked)


def kept(model):
    return sum(int(m.weight_mask.detach().ne(0).sum()) for _, m in prunable_weights(model))


@settings(max_examples=40, deadline=None)
@given(channels=st.lists(st.integers(2, 8), min_size=1, max_size=4),
       frac=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_consistent_selection_is_exact_and_consistent(channels, frac, seed):
    model = small_stgcn(tuple(channels), seed=seed)
    flow, layers = flow_layers(model)
    total = sum(fl.module.weight.numel() for fl in layers)
    low = shortest_path_weights(model)
    budget = int(low + frac * (total - 1 - low))
    gen = torch.Generator().manual_seed(seed)
    scores = [torch.rand(fl.module.weight.shape, generator=gen) *
              torch.rand(1, generator=gen) for fl in layers]  # uneven layer scales
    masks, live = consistent_masks(flow, layers, scores, budget)
    report = connectivity(model, masks)
    assert report.is_consistent and not report.disconnected
    assert report.kept == live <= budget
    assert live == budget
    if budget >= coverage_weights(model):
        assert report.covers_outputs


@settings(max_examples=40, deadline=None)
@given(channels=st.lists(st.integers(2, 8), min_size=1, max_size=4),
       frac=st.floats(0.0, 1.0), classifier=st.sampled_from([1.0, 1e-3, 0.0]),
       seed=st.integers(0, 10_000))
def test_consistent_selection_reaches_every_output(channels, frac, classifier,
                                                   seed):
    # Any budget from the coverage minimum up, classifier scores as large as
    # the others, far below them, or all tied at zero.
    model = small_stgcn(tuple(channels), seed=seed)
    flow, layers = flow_layers(model)
    total = sum(fl.module.weight.numel() for fl in layers)
    low = coverage_weights(model)
    budget = int(low + frac * (total - 1 - low))
    gen = torch.Generator().manual_seed(seed)
    scores = [torch.rand(fl.module.weight.shape, generator=gen) *
              torch.rand(1, generator=gen) for fl in layers]
    scores[-1] = scores[-1] * classifier
    masks, live = consistent_masks(flow, layers, scores, budget)
    report = connectivity(model, masks)
    assert report.is_consistent and report.covers_outputs
    assert report.reachable_outputs == report.num_outputs == 5
    assert live == report.kept == budget


def test_smallest_budget_reaches_every_output_through_one_channel():
    model = shrink_classifier(small_stgcn((4, 6, 6)))
    flow, layers = flow_layers(model)
    scores = [fl.module.weight.detach().abs() for fl in layers]
    masks, live = consistent_masks(flow, layers, scores, coverage_weights(model))
    report = connectivity(model, masks)
    assert report.is_consistent and report.covers_outputs and live == 8
    fc = masks[-1].reshape(5, -1)
    assert fc.sum() == 5 and fc.any(dim=0).sum() == 1  # one input, 5 classes



@settings(max_examples=25, deadline=None)
@given(channels=st.lists(st.integers(2, 8), min_size=1, max_size=4),
       fracs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=5),
       noise=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_search_hint_never_changes_the_selection(channels, fracs, noise, seed):
    # Steps of training: scores drift and the budget moves; the warm-started
    # search must land on the same masks as a cold one.
    model = small_stgcn(tuple(channels), seed=seed)
    flow, layers = flow_layers(model)
    total = sum(fl.module.weight.numel() for fl in layers)
    low = shortest_path_weights(model)
    gen = torch.Generator().manual_seed(seed)
    scores = [torch.rand(fl.module.weight.shape, generator=gen) for fl in layers]
    hint = {}
    for frac in fracs:
        budget = int(low + frac * (total - 1 - low))
        scores = [s + noise * torch.rand(s.shape, generator=gen) for s in scores]
        warm, live_warm = consistent_masks(flow, layers, scores, budget, hint)
        cold, live_cold = consistent_masks(flow, layers, scores, budget)
        assert live_warm == live_cold
        assert all(torch.equal(a, b) for a, b in zip(warm, cold))
        assert set(hint) == {'scale', 'k', 'budget', 'theta'}
        flat = torch.cat([s.reshape(-1) for s in scores])
        assert hint['theta'] == float(flat.sort(descending=True).values[budget - 1])

@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('mode', ['hard', 'relaxed'])
def test_tcmp_is_consistent_at_every_update(make, mode):
    model = make()
    pruner = TCMP(model, 0.95, mode=mode, start=0.1, end=0.7)
    seen_updates = train_checked(model, pruner, 20, batch(), mode)
    assert seen_updates >= 8
    report = connectivity(model)
    assert report.is_consistent and report.live == report.kept == pruner.budget
    assert report.covers_outputs
    for _, m in prunable_weights(model):  # crisp at the end
        assert not m.weight_mask.requires_grad
        assert set(m.weight_mask.unique().tolist()) <= {0.0, 1.0}


@settings(max_examples=12, deadline=None)
@given(channels=st.lists(st.integers(2, 6), min_size=1, max_size=3),
       frac=st.floats(0.0, 1.0), mode=st.sampled_from(['hard', 'relaxed']),
       tiny_classifier=st.booleans(), seed=st.integers(0, 10_000))
def test_tcmp_reaches_every_output_at_every_update(channels, frac, mode,
                                                    tiny_classifier, seed):
    model, total, budget = coverage_case(channels, frac, tiny_classifier, seed)
    pruner = TCMP(model, total - budget, mode=mode, start=0.0, end=0.6)
    steps = 6
    pruner.setup(steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = batch()
    for step in range(steps):
        updates = pruner.updates
        pruner.step(step)
        if pruner.updates > updates:
            report = connectivity(model)
            assert report.is_consistent and report.covers_outputs
            assert report.live == report.kept == pruner.kept_at(step)
        sgd_step(model, data, pruner, opt)
    pruner.finalize()
    report = connectivity(model)
    assert report.is_consistent and report.covers_outputs
    assert report.live == report.kept == budget


@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('mode', ['hard', 'relaxed'])
def test_tcmp_keeps_every_class_of_a_tiny_classifier(make, mode):
    model = shrink_classifier(make())
    pruner = TCMP(model, 0.99, mode=mode, start=0.0, end=0.5)
    pruner.setup(4)
    for step in range(4):
        pruner.step(step)
        model(batch()).square().mean().backward()
    pruner.finalize()
    report = connectivity(model)
    assert report.is_consistent and report.covers_outputs
    assert report.live == report.kept == pruner.budget


def test_relaxed_gradients_reach_the_latent_weights_through_the_mask():
    model = small_stgcn((6, 6))
    pruner = TCMP(model, 0.9, mode='relaxed', start=0.0, end=1.0)
    pruner.setup(10)
    pruner.step(3)
    penalty = pruner.penalty()
    penalty.backward()
    grads = [m.weight.grad for _, m in prunable_weights(model)]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_tcmp_gates_dead_channels_so_the_output_is_the_kept_subnetwork():
    model = small_stgcn((8, 8, 8))
    pruner = TCMP(model, 0.97, start=0.0, end=0.0)
    pruner.setup(1)
    pruner.step(0)
    model.eval()
    data = batch()
    out = model(data)
    report = connectivity(model)
    for node, a, c in zip(report.flow.nodes, report.accessible, report.co_accessible):
        if node.gate is not None:
            assert torch.equal(node.gate.gate.bool(), a & c)
    assert out.shape == (3, 5)


def test_extreme_budget_on_unbalanced_layers_stays_exact():
    # At init the first layers have much larger weights: the top magnitudes
    # alone are disconnected, and the first connected top-k overshoots.
    model = small_stgcn((32, 64, 64))
    pruner = TCMP(model, 0.999)
    pruner.update(pruner.budget, final=True)
    report = connectivity(model)
    assert report.is_consistent and not report.disconnected
    assert report.live == pruner.budget


def test_tcmp_refuses_bad_input():
    model = small_stgcn((4, 6, 6))
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    with pytest.raises(ValueError, match='needs 4'):
        TCMP(model, total - 2)
    # A path fits, but not one weight per class on top of it.
    assert coverage_weights(model) == 8
    with pytest.raises(ValueError, match=r'reaching all 5 outputs of STGCN from '
                       r'its input needs at least 8 .* Keep at least 8 weights '
                       rf'\(amount <= {total - 8} as a count'):
        TCMP(model, total - 7)
    assert TCMP(model, total - 8).budget == 8
    with pytest.raises(ValueError, match="'hard' or 'relaxed'"):
        TCMP(model, 0.9, mode='soft')
    with pytest.raises(TypeError, match='does not declare how channels flow'):
        TCMP(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LSTM(2, 2)), 0.5)


class NoFlow(torch.nn.Module):
    """Prunable layers, but no channel_flow(): the connectivity is unknown."""
    def __init__(self):
        super().__init__()
        self.a, self.b = PrunableLinear(4, 8), PrunableLinear(8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize('method', [TCMP, MagnitudePruning, RandomPruning,
                                    EffectivePruning])
def test_methods_refuse_unprunable_models_at_construction(method):
    with pytest.raises(TypeError, match=r"NoFlow does not declare how channels "
                       r"flow through it \(no 'channel_flow\(\)' method\)"):
        method(NoFlow(), 0.5)
    # A plain-torch Sequential has an automatic flow but read-only masks: the
    # error once given by setup()/step() now comes from the constructor.
    plain = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 3))
    expected = LayerView(plain[0]).read_only_message()
    assert 'from_torch_prune(model, convert=True)' in expected
    with pytest.raises(TypeError) as exc:
        method(plain, 0.5)
    assert str(exc.value) == (f"{method.__name__} cannot prune layer '0': "
                              f"{expected}")
    # Converted, the same model is accepted and pruned.
    pruner = method(from_torch_prune(plain, convert=True), 0.5)
    pruner.setup(10)
    pruner.finalize()
    assert connectivity(plain).kept == pruner.budget
