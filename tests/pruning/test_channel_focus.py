"""TCMP's channel focus: the same budget on fewer, fuller channels."""
import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tcmp_pyg.nn import build_model, prunable_weights
from tcmp_pyg.pruning import (TCMP, PrunableLinear, compact, connectivity,
                              count_parameters, make_pruner)
from tcmp_pyg.pruning.connectivity import flow_layers
from tcmp_pyg.pruning.tcmp import (channel_focus_scores, channel_groups,
                                   channel_importance)

from helpers import (batch, coverage_case, sgd_step, small_attention, small_stgcn,
                     train_checked)


def masks(model):
    return [m.weight_mask.detach().clone() for _, m in prunable_weights(model)]


def two_layers():
    r"""``4 -> 5 -> 4`` linear layers where 8 weights can either make one
    hidden channel (0) full, every entry 0.9, or four separate paths
    ``input i -> hidden i+1 -> output i`` of entries 1.0 (slightly larger);
    every other entry is 0.05."""
    model = torch.nn.Sequential(PrunableLinear(4, 5), torch.nn.ReLU(),
                                PrunableLinear(5, 4))
    w1 = torch.full((5, 4), 0.05)  # [out, in]
    w2 = torch.full((4, 5), 0.05)
    w1[0, :] = 0.9
    w2[:, 0] = 0.9
    for i in range(4):
        w1[i + 1, i] = 1.0
        w2[i, i + 1] = 1.0
    with torch.no_grad():
        model[0].weight.copy_(w1)
        model[2].weight.copy_(w2)
    return model


def dense_size(report, layers):
    """Weights of the layers restricted to their live channels (what a
    compacted model keeps dense)."""
    live = [a & c for a, c in zip(report.accessible, report.co_accessible)]
    total = 0
    for fl in layers:
        kernel = fl.module.weight.numel() // (fl.module.num_in * fl.module.num_out)
        total += int(live[fl.edge.src].sum()) * int(live[fl.edge.dst].sum()) * kernel
    return total


def test_channel_importance_sums_every_entry_touching_a_channel():
    model = two_layers()
    flow, layers = flow_layers(model)
    w1, w2 = model[0].weight.detach(), model[2].weight.detach()
    importance = channel_importance(flow, layers)
    assert [g.numel() for g in importance] == [n.size for n in flow.nodes]
    hidden = [fl.edge.dst for fl in layers][0]
    # A hidden channel is the output of the first layer and an input of the second.
    expected = w1.abs().sum(1) + w2.abs().sum(0)
    assert torch.allclose(importance[hidden], expected.double())
    assert torch.allclose(importance[0], w1.abs().sum(0).double())
    assert torch.allclose(importance[flow.output], w2.abs().sum(1).double())


def test_residual_channels_share_their_importance():
    model = small_stgcn((4, 6, 6))
    flow, layers = flow_layers(model)
    names = [n.name for n in flow.nodes]
    offsets, group = channel_groups(flow)
    stream = [names.index(n) for n in ('blocks.1.tcn', 'blocks.1.proj',
                                       'blocks.1.out', 'blocks.2.tcn',
                                       'blocks.2.out')]
    groups = [group[offsets[v]:offsets[v + 1]] for v in stream]
    assert all(torch.equal(g, groups[0]) for g in groups)
    assert groups[0].unique().numel() == 6  # channel c of each node is one
    importance = channel_importance(flow, layers)
    assert all(torch.equal(importance[v], importance[stream[0]]) for v in stream)
    # Sum of what every layer reading or writing the stream puts on it.
    raw = torch.zeros(6, dtype=torch.float64)
    for fl in layers:
        w = fl.module.weight.detach().abs().double()
        if fl.edge.src in stream:
            raw += w.movedim(fl.module.in_axis, 0).reshape(6, -1).sum(1)
        if fl.edge.dst in stream:
            raw += w.movedim(fl.module.out_axis, 0).reshape(6, -1).sum(1)
    assert torch.allclose(importance[stream[0]], raw)


def test_focus_scores_reorder_each_layer_within_its_own_magnitudes():
    model = small_stgcn((4, 6, 6))
    flow, layers = flow_layers(model)
    for focus in (0.5, 2.0, 50.0):  # large exponents stay finite (logs)
        scores = channel_focus_scores(flow, layers, focus)
        for fl, s in zip(layers, scores):
            w = fl.module.weight.detach().abs()
            assert s.shape == w.shape and s.dtype == w.dtype
            assert torch.equal(s.reshape(-1).sort().values, w.reshape(-1).sort().values)
    plain = channel_focus_scores(flow, layers, 0.0)
    assert all(torch.equal(s, fl.module.weight.detach().abs())
               for s, fl in zip(plain, layers))
    # The strongest entry of the best pair of channels gets the layer's largest score.
    two = two_layers()
    flow, layers = flow_layers(two)
    scores = channel_focus_scores(flow, layers, 2.0)
    assert torch.equal(scores[0][0], torch.ones(4))  # hidden channel 0's row
    assert torch.equal(scores[1][:, 0], torch.ones(4))


def test_zero_weights_give_no_nan():
    model = two_layers()
    with torch.no_grad():
        model[0].weight[1:].zero_()
        model[2].weight.zero_()
    flow, layers = flow_layers(model)
    scores = channel_focus_scores(flow, layers, 2.0)
    assert all(bool(torch.isfinite(s).all()) for s in scores)
    assert torch.equal(scores[1], torch.zeros(4, 5))


@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('mode', ['hard', 'relaxed'])
def test_focus_zero_is_plain_tcmp(make, mode):
    runs = []
    for kwargs in ({}, dict(channel_focus=0.0), dict(channel_focus=0)):
        model = make()
        pruner = TCMP(model, 0.95, mode=mode, start=0.0, end=0.7, **kwargs)
        pruner.setup(10)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        history = []
        for step in range(10):
            pruner.step(step)
            history.append(masks(model))
            sgd_step(model, batch(), pruner, opt)
        pruner.finalize()
        history.append(masks(model))
        runs.append((history, repr(pruner)))
    for history, text in runs[1:]:
        assert text == runs[0][1] and 'channel_focus' not in text
        for ours, plain in zip(history, runs[0][0]):
            assert all(torch.equal(a, b) for a, b in zip(ours, plain))


@settings(max_examples=25, deadline=None)
@given(channels=st.lists(st.integers(2, 8), min_size=1, max_size=4),
       frac=st.floats(0.0, 1.0), focus=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
       tiny_classifier=st.booleans(), seed=st.integers(0, 10_000))
def test_focused_selection_is_exact_consistent_and_covers_outputs(
        channels, frac, focus, tiny_classifier, seed):
    model, total, budget = coverage_case(channels, frac, tiny_classifier, seed)
    pruner = TCMP(model, total - budget, channel_focus=focus)
    pruner.update(pruner.budget, final=True)
    report = connectivity(model)
    assert report.dead == 0 and report.is_consistent
    assert report.live == report.kept == pruner.live == budget
    assert report.covers_outputs


@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('mode', ['hard', 'relaxed'])
def test_focused_tcmp_is_exact_at_every_update_of_training(make, mode):
    model = make()
    pruner = TCMP(model, 0.95, mode=mode, start=0.1, end=0.7, channel_focus=2.0,
                  keep_dense=['fc'] if make is small_stgcn else ())
    updates = train_checked(model, pruner, 12, batch(), mode)
    assert updates >= 5
    report = connectivity(model)
    assert report.is_consistent and report.live == report.kept == pruner.budget
    if make is small_stgcn:  # the dense layer is still taken whole
        fc = dict(prunable_weights(model))['fc']
        assert bool((fc.weight_mask != 0).all())


def test_relaxed_threshold_is_on_the_focused_scores():
    model = small_stgcn((6, 6))
    pruner = TCMP(model, 0.9, mode='relaxed', start=0.0, end=1.0,
                  channel_focus=2.0)
    pruner.setup(10)
    pruner.step(3)
    kept = pruner.kept_at(3)
    flat = torch.cat([s.reshape(-1) for s in pruner.selection_scores()])
    assert pruner._hint['theta'] == float(flat.sort(descending=True).values[kept - 1])
    plain = torch.cat([fl.module.weight.detach().abs().reshape(-1)
                       for fl in pruner.layers])
    assert not torch.equal(flat, plain)  # the focus did reorder
    pruner.penalty().backward()
    grads = [m.weight.grad for _, m in prunable_weights(model)]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_focus_concentrates_the_budget_on_one_full_channel():
    plain, focused = two_layers(), two_layers()
    counts = {}
    for name, model, focus in (('plain', plain, 0.0), ('focused', focused, 2.0)):
        flow, layers = flow_layers(model)
        pruner = TCMP(model, 40 - 8, channel_focus=focus)  # 40 weights, keep 8
        pruner.update(pruner.budget, final=True)
        report = connectivity(model)
        assert report.is_consistent and report.covers_outputs
        assert report.live == report.kept == 8
        hidden = layers[0].edge.dst
        live = report.accessible[hidden] & report.co_accessible[hidden]
        counts[name] = (int(live.sum()), dense_size(report, layers))
    # Plain magnitude takes the four separate paths of 1.0 entries: 4 hidden
    # channels, each dense (4 inputs x 4 hidden + 4 hidden x 4 outputs).
    assert counts['plain'] == (4, 32)
    assert torch.equal(plain[0].weight_mask[1:], torch.eye(4))
    # The focus fills hidden channel 0 instead: 1 channel, nothing else dense.
    assert counts['focused'] == (1, 8)
    assert bool(focused[0].weight_mask[0].all()) and focused[0].weight_mask[1:].sum() == 0
    assert bool(focused[2].weight_mask[:, 0].all())


@pytest.mark.parametrize('focus', [1.0, 2.0])
def test_focus_shrinks_the_compacted_stgcn_at_99_percent(focus):
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, 5, 'sbu')
    sizes = {}
    for a in (0.0, focus):
        copy_ = copy.deepcopy(model)
        pruner = TCMP(copy_, 0.99, channel_focus=a)
        pruner.update(pruner.budget, final=True)
        report = connectivity(copy_)
        assert report.is_consistent and report.covers_outputs
        assert report.live == pruner.budget
        small = compact(copy_)
        assert connectivity(small).live == pruner.budget
        sizes[a] = count_parameters(small)
    assert sizes[focus] < sizes[0.0]


@pytest.mark.parametrize('value', [-0.5, -1, math.nan, math.inf, True, '2', None])
def test_channel_focus_is_validated(value):
    model = small_stgcn((4, 6, 6))
    with pytest.raises(ValueError, match=r"Expected 'channel_focus' to be a finite "
                       rf"float >= 0 \(got {repr(value)}\)"):
        TCMP(model, 0.9, channel_focus=value)


def test_channel_focus_in_repr_and_make_pruner():
    model = small_stgcn((4, 6, 6))
    pruner = make_pruner('tcmp', model, 0.9, tcmp_channel_focus=2)
    assert isinstance(pruner, TCMP) and pruner.channel_focus == 2.0
    assert repr(pruner).startswith("TCMP(amount=0.9, mode='hard', channel_focus=2, ")
    assert make_pruner('tcmp', model, 0.9).channel_focus == 0.0
    assert 'channel_focus' not in repr(TCMP(model, 0.9, channel_focus=0.0))
    # A constructor option, not state: a saved state restores into a pruner
    # built with the same option, and the option does not travel in it.
    state = pruner.state_dict()
    assert 'channel_focus' not in state
    again = TCMP(model, 0.9, channel_focus=2.0)
    again.load_state_dict(state)
    assert again.channel_focus == 2.0
