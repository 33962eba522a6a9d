import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tcmp_pyg.nn import FlowModel, prunable_weights
from tcmp_pyg.nn.prunable import ChannelFlow
from tcmp_pyg.pruning import (EffectivePruning, MagnitudePruning, RandomPruning,
                              budget_from_amount, connectivity, coverage_weights,
                              cubic_schedule, effective_correction,
                              magnitude_prune)
from tcmp_pyg.pruning.connectivity import flow_layers
from tcmp_pyg.pruning.select import _Entries, _flatten, _select

from helpers import (batch, coverage_case, sgd_step, shrink_classifier, small_attention,
                     small_stgcn)


def kept(model):
    return sum(int(m.weight_mask.sum()) for _, m in prunable_weights(model))


def test_amount_follows_torch_prune_conventions():
    assert budget_from_amount(0.9, 1000) == 100
    assert budget_from_amount(0.0, 1000) == 1000
    assert budget_from_amount(250, 1000) == 750
    with pytest.raises(ValueError, match='would remove every weight'):
        budget_from_amount(1.0, 1000)
    with pytest.raises(ValueError, match=r'in \[0, 1\)'):
        budget_from_amount(-0.1, 1000)
    with pytest.raises(ValueError, match=r'model has 1000 prunable weights'):
        budget_from_amount(1000, 1000)
    with pytest.raises(TypeError, match='int .* or a float'):
        budget_from_amount('0.9', 1000)
    with pytest.raises(TypeError):
        budget_from_amount(True, 1000)


@pytest.mark.parametrize('scope', ['global', 'layer'])
@pytest.mark.parametrize('amount', [0.5, 0.9, 0.99, 1234])
def test_magnitude_prune_exact_budget(scope, amount):
    model = small_stgcn((8, 16, 16))
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    budget = budget_from_amount(amount, total)
    assert magnitude_prune(model, amount, scope=scope) == budget
    assert kept(model) == budget
    if scope == 'global':  # the kept weights are the largest ones
        w = torch.cat([(m.weight.abs() * m.weight_mask).flatten()
                       for _, m in prunable_weights(model)])
        dropped = torch.cat([(m.weight.abs() * (1 - m.weight_mask)).flatten()
                             for _, m in prunable_weights(model)])
        assert w[w > 0].min() >= dropped.max()


def test_ties_are_broken_deterministically():
    model = small_stgcn()
    for _, m in prunable_weights(model):
        m.weight.data.fill_(0.5)
    magnitude_prune(model, 0.7)
    first = [m.weight_mask.clone() for _, m in prunable_weights(model)]
    magnitude_prune(model, 0.7)
    assert all(torch.equal(a, m.weight_mask) for a, (_, m) in zip(first, prunable_weights(model)))
    assert kept(model) == budget_from_amount(0.7, sum(a.numel() for a in first))


def test_budget_below_shortest_path_is_refused():
    model = small_stgcn((4, 6, 6))
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    with pytest.raises(ValueError, match='shortest input-to-output path .* needs 4'):
        magnitude_prune(model, total - 3)


def test_model_without_prunable_weights_is_refused():
    class Empty(FlowModel):
        def channel_flow(self):
            flow = ChannelFlow()
            flow.set_output(flow.input('input', 3))
            return flow

    with pytest.raises(ValueError, match='no prunable weight'):
        magnitude_prune(Empty(), 0.5)


def test_cubic_schedule():
    assert cubic_schedule(0, 10, 110, 0.01) == 1.0
    assert cubic_schedule(10, 10, 110, 0.01) == 1.0
    assert cubic_schedule(60, 10, 110, 0.01) == pytest.approx(1 - 0.99 * (1 - 0.5 ** 3))
    assert cubic_schedule(110, 10, 110, 0.01) == 0.01
    assert cubic_schedule(500, 10, 110, 0.01) == 0.01
    values = [cubic_schedule(t, 10, 110, 0.01) for t in range(0, 120)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def run_steps(model, pruner, steps, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    data = batch()
    pruner.setup(steps)
    history = []
    for step in range(steps):
        pruner.step(step)
        history.append(kept(model))
        sgd_step(model, data, pruner, opt)
    pruner.finalize()
    return history


def test_gradual_magnitude_pruning_follows_schedule_and_freezes():
    model = small_stgcn((8, 8))
    pruner = MagnitudePruning(model, 0.9, start=0.2, end=0.6)
    history = run_steps(model, pruner, 20)
    assert history[:4] == [pruner.total] * 4
    for step in range(4, 12):
        assert history[step] == pruner.kept_at(step)
    assert history[12:] == [pruner.budget] * 8
    assert pruner.frozen and kept(model) == pruner.budget


def test_straight_through_lets_pruned_weights_come_back():
    model = small_stgcn((8, 8))
    pruner = MagnitudePruning(model, 0.8, start=0.0, end=1.0)
    pruner.setup(100)
    pruner.step(50)
    module = model.blocks[0].tcn
    model(batch()).square().mean().backward()
    pruned = module.weight_mask == 0
    assert module.weight.grad[pruned].abs().sum() > 0


def test_random_pruning_same_budget_nested_masks():
    model = small_stgcn((8, 8))
    pruner = RandomPruning(model, 0.9, start=0.0, end=0.5, seed=3)
    pruner.setup(10)
    pruner.step(2)
    before = [m.weight_mask.clone() for _, m in prunable_weights(model)]
    pruner.step(5)
    after = [m.weight_mask for _, m in prunable_weights(model)]
    assert kept(model) == pruner.budget
    assert all(bool((a <= b).all()) for a, b in zip(after, before))


@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('amount', [0.9, 0.99])
def test_effective_correction_is_consistent_with_exact_budget(make, amount):
    model = make()
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    live = effective_correction(model, amount)
    report = connectivity(model)
    assert report.is_consistent and not report.disconnected
    assert live == report.live == report.kept == budget_from_amount(amount, total)


@settings(max_examples=25, deadline=None)
@given(channels=st.lists(st.integers(2, 8), min_size=1, max_size=4),
       frac=st.floats(0.0, 1.0), tiny_classifier=st.booleans(),
       seed=st.integers(0, 10_000))
def test_effective_correction_reaches_every_output(channels, frac,
                                                   tiny_classifier, seed):
    model, total, budget = coverage_case(channels, frac, tiny_classifier, seed)
    live = effective_correction(model, total - budget)
    report = connectivity(model)
    assert report.is_consistent and report.covers_outputs
    assert live == report.live == report.kept == budget


@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('amount', [0.9, 0.99])
def test_effective_correction_keeps_every_class_of_an_emptied_classifier(
        make, amount):
    # Global magnitude ranks the whole (tiny) classifier last and empties it.
    model = shrink_classifier(make())
    flow, layers = flow_layers(model)
    total = sum(fl.module.weight.numel() for fl in layers)
    budget = budget_from_amount(amount, total)
    mp = copy.deepcopy(model)
    magnitude_prune(mp, amount)
    assert connectivity(mp).disconnected
    assert int(flow_layers(mp)[1][-1].module.weight_mask.sum()) == 0
    # The correction without output coverage (drop dead, refill between live
    # channels) reaches the one logit its first classifier entry feeds.
    scores = [fl.module.weight.detach().abs() for fl in layers]
    flat, offsets = _flatten(scores)
    ent = _Entries(flow, layers, scores, offsets)
    old_report = connectivity(model, ent.split(_select(ent, flat, flat, budget, {})))
    assert old_report.is_consistent and old_report.reachable_outputs == 1

    live = effective_correction(model, amount)
    report = connectivity(model)
    assert report.is_consistent
    assert report.reachable_outputs == report.num_outputs == 5
    assert live == report.live == report.kept == budget


def test_effective_pruning_keeps_every_class_at_the_end_of_the_schedule():
    model = shrink_classifier(small_stgcn((8, 8)))
    pruner = EffectivePruning(model, 0.95, start=0.0, end=0.5)
    run_steps(model, pruner, 10)
    report = connectivity(model)
    assert report.is_consistent and report.covers_outputs
    assert report.live == pruner.budget


def test_only_consistent_methods_need_a_budget_that_reaches_every_class():
    model = small_stgcn((4, 6, 6))
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    assert coverage_weights(model) == 8
    message = r'needs at least 8 .* Keep at least 8 weights'
    with pytest.raises(ValueError, match=message):
        EffectivePruning(model, total - 6)
    with pytest.raises(ValueError, match=message):
        effective_correction(model, total - 6)
    # mp and random promise no consistency: disconnecting is what they are
    # compared on, so a budget of one path is theirs to spend.
    assert MagnitudePruning(model, total - 6).budget == 6
    assert RandomPruning(model, total - 6).budget == 6
    assert magnitude_prune(model, total - 6) == 6
    assert effective_correction(small_stgcn((4, 6, 6)), total - 8) == 8


def test_effective_pruning_corrects_at_the_end_of_the_schedule():
    model = small_stgcn((8, 8))
    pruner = EffectivePruning(model, 0.95, start=0.0, end=0.5)
    run_steps(model, pruner, 10)
    report = connectivity(model)
    assert report.is_consistent and report.live == pruner.budget


def test_mp_leaves_dead_weights_at_high_rates():
    # Layers of very different fan-in: global magnitudes favour the first ones.
    model = small_stgcn((16, 32, 32))
    magnitude_prune(model, 0.98)
    report = connectivity(model)
    assert report.kept == budget_from_amount(0.98, report.weights)
    assert report.dead > 0
