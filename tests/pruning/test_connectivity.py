import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tcmp_pyg.nn import STGCN, prunable_weights
from tcmp_pyg.pruning import (PrunableLinear, connectivity, coverage_weights,
                              gate_dead_channels, live_masks, open_gates,
                              shortest_path_weights)

from helpers import (batch, brute_force, random_masks, randomize_norms,
                     small_attention, small_stgcn)


def assert_matches_brute_force(model):
    report = connectivity(model)
    acc, co, live = brute_force(model)
    for v, node in enumerate(report.flow.nodes):
        for c in range(node.size):
            assert bool(report.accessible[v][c]) == ((v, c) in acc), (node.name, c)
            assert bool(report.co_accessible[v][c]) == ((v, c) in co), (node.name, c)
    assert [r.live for r in report.layers] == live
    return report


@settings(max_examples=25, deadline=None)
@given(channels=st.lists(st.integers(2, 6), min_size=1, max_size=4),
       density=st.floats(0.02, 0.6), seed=st.integers(0, 10_000))
def test_stgcn_connectivity_matches_brute_force(channels, density, seed):
    model = small_stgcn(tuple(channels), seed=seed)
    random_masks(model, density, seed=seed)
    report = assert_matches_brute_force(model)
    assert report.kept == sum(int(m.weight_mask.sum()) for _, m in prunable_weights(model))
    assert report.live + report.dead == report.kept


@settings(max_examples=15, deadline=None)
@given(density=st.floats(0.005, 0.3), seed=st.integers(0, 10_000))
def test_attention_gcn_connectivity_matches_brute_force(density, seed):
    model = small_attention(seed)
    random_masks(model, density, seed=seed)
    assert_matches_brute_force(model)


@pytest.mark.parametrize('make', [small_stgcn, small_attention])
@pytest.mark.parametrize('density', [0.05, 0.2, 0.5])
def test_removing_dead_weights_never_changes_outputs(make, density):
    model = make()
    randomize_norms(model)
    random_masks(model, density, seed=1)
    model.eval()
    data = batch(T=6)

    # Weights whose output channel reaches no output: removing them is free.
    report = connectivity(model)
    before = model(data)
    flow = report.flow
    for e, module in flow.layers():
        co = report.co_accessible[e.dst]
        module.set_mask(module.weight_mask * module.expand_channels(
            torch.ones(module.num_in), co.float()))
    assert torch.equal(model(data), before)

    # Once dead channels are gated, removing every dead weight is free too.
    gate_dead_channels(model)
    gated = model(data)
    for (name, module), mask in zip(prunable_weights(model), live_masks(model).values()):
        module.set_mask(mask)
    assert torch.allclose(model(data), gated, atol=1e-6, rtol=0)
    assert connectivity(model).is_consistent


def test_gates_remove_constants_of_inaccessible_channels():
    model = small_stgcn()
    randomize_norms(model)
    # Cut the first block's gcn entirely: every later channel is inaccessible,
    # yet biases and BatchNorm shifts still reach the logits.
    first = model.blocks[0].gcn
    first.set_mask(torch.zeros_like(first.weight))
    model.eval()
    data = batch()
    report = connectivity(model)
    assert report.disconnected
    assert report.live == 0 and report.dead == report.kept
    out = model(data)
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)  # no input dependence
    assert not torch.allclose(out, model.fc.bias.expand_as(out), atol=1e-3)
    closed = gate_dead_channels(model)
    assert closed > 0
    assert torch.allclose(model(data), model.fc.bias.expand_as(out))
    open_gates(model)
    assert torch.equal(model(data), out)


def test_report_table_and_dict():
    model = small_stgcn()
    random_masks(model, 0.3)
    report = connectivity(model)
    d = report.to_dict()
    for key in ('weights', 'kept', 'live', 'dead', 'nominal_sparsity',
                'effective_sparsity', 'is_consistent', 'reachable_outputs',
                'num_outputs', 'covers_outputs', 'disconnected', 'layers'):
        assert key in d
    assert d['num_outputs'] == 5 and 0 <= d['reachable_outputs'] <= 5
    assert d['weights'] == sum(m.weight.numel() for _, m in prunable_weights(model))
    assert d['nominal_sparsity'] == pytest.approx(1 - d['kept'] / d['weights'])
    assert d['effective_sparsity'] == pytest.approx(1 - d['live'] / d['weights'])
    assert [r['name'] for r in d['layers']] == [n for n, _ in prunable_weights(model)]
    text = str(report)
    assert 'blocks.0.gcn' in text and 'nominal sparsity' in text
    assert len(text.splitlines()) == len(report.layers) + 4


def test_dense_model_is_consistent_and_connected():
    report = connectivity(small_stgcn())
    assert report.is_consistent and not report.disconnected
    assert report.live == report.kept == report.weights
    assert report.reachable_outputs == report.num_outputs == 5
    assert report.covers_outputs
    assert str(report).endswith('consistent, 5 of 5 outputs reachable')


def two_layer_masks(fc_rows):
    """Linear(3, 4) -> Linear(4, 5) with hidden channels 0 and 1 fed by input
    0, and output ``o`` fed by the hidden channels ``fc_rows[o]``."""
    torch.manual_seed(0)
    model = nn.Sequential(PrunableLinear(3, 4), nn.ReLU(), PrunableLinear(4, 5))
    first = torch.zeros(4, 3)
    first[0, 0] = first[1, 0] = 1
    second = torch.zeros(5, 4)
    for o, rows in enumerate(fc_rows):
        second[o, rows] = 1
    return model, [first, second]


def test_report_counts_reachable_outputs_of_a_hand_made_mask():
    # Outputs 0 and 3 hang on live hidden channels; output 1 only on hidden
    # channel 2, which no input reaches (its entry is dead); 2 and 4 on nothing.
    model, masks = two_layer_masks([[0], [2], [], [0, 1], []])
    report = connectivity(model, masks)
    assert (report.reachable_outputs, report.num_outputs) == (2, 5)
    assert not report.covers_outputs and not report.disconnected
    assert (report.live, report.dead) == (5, 1)
    assert str(report).splitlines()[-1].endswith(
        'NOT consistent, 2 of 5 outputs reachable (3 UNREACHABLE)')
    d = report.to_dict()
    assert (d['reachable_outputs'], d['num_outputs'], d['covers_outputs']) == (
        2, 5, False)

    # Without the dead entry the mask is consistent, yet three classes are
    # still constants: the report must say so rather than call it fine.
    masks[1][1, 2] = 0
    report = connectivity(model, masks)
    assert report.is_consistent and not report.covers_outputs
    assert str(report).splitlines()[-1].endswith(
        ', consistent, 2 of 5 outputs reachable (3 UNREACHABLE)')

    # Every output on a live channel: covered.
    model, masks = two_layer_masks([[0], [1], [0], [1], [0, 1]])
    report = connectivity(model, masks)
    assert report.covers_outputs and report.reachable_outputs == 5

    # Nothing reaches the classifier.
    masks[0].zero_()
    report = connectivity(model, masks)
    assert report.reachable_outputs == 0 and report.disconnected
    assert str(report).endswith('0 of 5 outputs reachable, DISCONNECTED')


def test_shortest_path_uses_residual_identities():
    # Block 0: gcn + tcn (no residual); block 1 (4 -> 6): projection;
    # block 2 (6 -> 6): identity; classifier: 4 weights at least.
    assert shortest_path_weights(small_stgcn((4, 6, 6))) == 4
    assert shortest_path_weights(small_attention()) == 3


def test_coverage_weights_add_one_classifier_entry_per_output():
    # A shortest path to one classifier input, then one entry per class.
    assert coverage_weights(small_stgcn((4, 6, 6))) == 3 + 5
    assert coverage_weights(small_attention()) == 2 + 5
    plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert coverage_weights(plain) == 1 + 3


def test_coverage_weights_is_the_exact_minimum_by_brute_force():
    from itertools import combinations
    model = nn.Sequential(PrunableLinear(2, 3), nn.ReLU(), PrunableLinear(3, 3))
    need = coverage_weights(model)
    assert need == 4
    entries = [(0, i) for i in range(6)] + [(1, i) for i in range(9)]

    def covers(subset):
        masks = [torch.zeros(3, 2), torch.zeros(3, 3)]
        for layer, i in subset:
            masks[layer].view(-1)[i] = 1
        return connectivity(model, masks).covers_outputs

    assert not any(covers(c) for c in combinations(entries, need - 1))
    assert any(covers(c) for c in combinations(entries, need))


def test_unknown_channel_map_is_refused():
    with pytest.raises(TypeError, match='does not declare how channels flow'):
        connectivity(nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)))

    class Extra(STGCN):
        def __init__(self):
            super().__init__(3, 2, 'sbu', channels=(2,))
            from tcmp_pyg.nn import Linear
            self.extra = Linear(2, 2)

    with pytest.raises(ValueError, match="prunable layer 'extra'"):
        connectivity(Extra())
