import pytest
import torch

from tcmp_pyg.nn import TrajectoryGCN, build_model, prunable_weights
from tcmp_pyg.pruning import (METHOD_NAMES, ChannelPruning, channel_units, compact,
                              connectivity, make_pruner)
from tcmp_pyg.pruning.connectivity import flow_layers

from helpers import batch, randomize_norms, small_attention, small_stgcn


def small_trajectory(seed=0):
    torch.manual_seed(seed)
    return TrajectoryGCN(3, 5, 'sbu', num_frames=6, channels=(3, 3), heads=2,
                         hidden_channels=7, temporal_channels=4)


def compact_preset(seed=0):
    torch.manual_seed(seed)
    return build_model('stgcn-compact', 3, 5, 'sbu')


def prune(model, amount):
    pruner = ChannelPruning(model, amount)
    pruner.update(pruner.budget, final=True)
    return pruner


def alive_out(module):
    """Output channels with a kept weight."""
    return module.channel_connections().any(dim=0)


def unit_costs(model):
    """Weights touching each channel unit in the dense model (its worth)."""
    flow, layers = flow_layers(model)
    units = channel_units(flow)
    off = units.node_offset
    costs = torch.zeros(units.num_units, dtype=torch.long)
    for layer in layers:
        m, e = layer.module, layer.edge
        kernel = m.weight.numel() // (m.num_in * m.num_out)
        for node, other in ((e.src, m.num_out), (e.dst, m.num_in)):
            u = units.channel_unit[off[node]:off[node + 1]]
            u = u[u >= 0]
            costs.index_add_(0, u, torch.full_like(u, kernel * other))
    return costs


MODELS = [small_stgcn, small_attention, small_trajectory, compact_preset]


@pytest.mark.parametrize('make', MODELS)
@pytest.mark.parametrize('amount', [0.5, 0.8, 0.9])
def test_whole_channels_within_one_channel_of_the_budget(make, amount):
    model = make()
    pruner = prune(model, amount)
    for _, m in prunable_weights(model):
        conn = m.channel_connections()
        # A kept entry joins two alive channels and keeps its whole kernel.
        expected = m.expand_channels(conn.any(dim=1), conn.any(dim=0)) != 0
        assert torch.equal(m.weight_mask != 0, expected)
        assert conn.any()  # no layer is emptied
    report = connectivity(model)
    assert report.kept == pruner.kept <= pruner.budget
    assert pruner.budget - pruner.kept < int(unit_costs(model).max())
    assert report.dead == 0 and report.is_consistent and not report.disconnected


def test_residual_channels_stand_or_fall_together():
    model = compact_preset()
    randomize_norms(model)
    prune(model, 0.95)
    b = model.blocks
    # Block 1 adds its input (block 0's output) channel by channel.
    first = alive_out(b[0].tcn)
    assert torch.equal(alive_out(b[1].tcn), first)
    for reader in (b[1].gcn, b[2].gcn, b[2].proj):
        assert torch.equal(reader.channel_connections().any(dim=1), first)
    # Block 2's projection, block 2's and block 3's temporal outputs and the
    # classifier's inputs are one residual stream.
    second = alive_out(b[2].tcn)
    assert torch.equal(alive_out(b[2].proj), second)
    assert torch.equal(alive_out(b[3].tcn), second)
    assert torch.equal(model.fc.channel_connections().any(dim=1), second)
    assert 0 < int(first.sum()) < 32 and 0 < int(second.sum()) < 64
    units = channel_units(model.channel_flow())
    assert units.set_names == [
        'blocks.0.gcn', 'blocks.0.tcn+blocks.1.tcn+blocks.1.out', 'blocks.1.gcn',
        'blocks.2.gcn', 'blocks.2.tcn+blocks.2.proj+blocks.2.out+blocks.3.tcn+'
        'blocks.3.out', 'blocks.3.gcn']
    assert units.num_units == 32 + 32 + 32 + 64 + 64 + 64


def test_channels_ranked_by_l1_norm_and_shares_uniform():
    model = small_stgcn((8, 12, 12))
    gcn = model.blocks[0].gcn  # output channel c gets the L1 norm 18 (c + 1)
    with torch.no_grad():
        gcn.weight.copy_(torch.arange(1, 9).float().view(1, 1, 8).expand_as(gcn.weight))
    prune(model, 0.8)
    kept = alive_out(gcn)
    n = int(kept.sum())
    assert 1 <= n < 8 and kept[8 - n:].all()  # the largest norms
    # Every channel set loses the same share, up to half a unit each side.
    report = connectivity(model)
    alive = torch.cat([a & c for a, c in zip(report.accessible,
                                             report.co_accessible)])
    units = channel_units(report.flow)
    shares = []
    for s in range(units.num_sets):
        in_set = (units.unit_set == s).nonzero().squeeze(1).tolist()
        first = [int(units.members(u)[0]) for u in in_set]
        shares.append((float(alive[first].float().mean()), len(in_set)))
    assert len(shares) == 5  # 3 graph convolutions, 2 residual streams
    for a, na in shares:
        for b, nb in shares:
            assert abs(a - b) <= 0.5 / na + 0.5 / nb + 1e-9


def test_deterministic_and_follows_the_schedule():
    first, second = compact_preset(), compact_preset()
    prune(first, 0.9)
    prune(second, 0.9)
    for (_, a), (_, b) in zip(prunable_weights(first), prunable_weights(second)):
        assert torch.equal(a.weight_mask, b.weight_mask)

    model = compact_preset()
    pruner = ChannelPruning(model, 0.9, start=0.2, end=0.6)
    pruner.setup(50)
    kept = []
    for step in range(50):
        pruner.step(step)
        kept.append(pruner.kept)
    assert kept[:10] == [pruner.total] * 10  # dense before the start
    assert kept == sorted(kept, reverse=True) and pruner.frozen
    assert kept[-1] == connectivity(model).kept <= pruner.budget
    assert all(not m.straight_through for _, m in prunable_weights(model))


@pytest.mark.parametrize('amount', [0.9, 0.99])
def test_compact_keeps_exactly_the_kept_weights(amount):
    model = compact_preset()
    randomize_norms(model)
    pruner = prune(model, amount)
    model.eval()
    example = batch(T=8)
    small = compact(model, example)
    assert sum(m.weight.numel() for _, m in prunable_weights(small)) == pruner.kept
    with torch.no_grad():
        assert torch.allclose(small(example), model(example), atol=1e-5)


def test_budget_below_one_channel_per_layer_is_refused():
    model = compact_preset()
    # 3 inputs x 3 partitions + 9 taps per block + 3 partitions x 3 later
    # blocks + the 1x1 projection + 5 classes.
    minimum = 9 + 9 + (3 + 9) * 3 + 1 + 5
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    with pytest.raises(ValueError, match=f'at least one channel per layer: '
                                         f'{minimum} weights'):
        ChannelPruning(model, total - minimum + 1)
    assert ChannelPruning(model, total - minimum).minimum == minimum


def test_registered_for_the_cli_and_the_sweep():
    assert 'channel' in METHOD_NAMES
    assert isinstance(make_pruner('channel', compact_preset(), 0.9), ChannelPruning)
