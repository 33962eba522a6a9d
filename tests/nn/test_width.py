"""Preset widths: narrow dense rivals of a given size."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from tcmp_pyg.checkpoint import load_model, save_checkpoint
from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn import MODEL_NAMES, STGCN, AttentionGCN, TrajectoryGCN, build_model
from tcmp_pyg.nn.models import (COMPACT_CHANNELS, model_size, scale_channels,
                                width_for_params)


def sbu_batch(B=2, T=8, C=6):
    layout = get_layout('sbu')
    gen = torch.Generator().manual_seed(0)
    return Batch.from_data_list([
        Data(x=torch.randn(layout.num_nodes, T, C, generator=gen),
             edge_index=layout.edge_index()) for _ in range(B)])


def preset(name, width=1.0):
    return build_model(name, 6, 8, 'sbu', num_frames=8, width=width)


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_scale_channels_rounds_half_up_and_keeps_one():
    assert [scale_channels(c, 0.25) for c in (32, 64, 6, 2, 1)] == [8, 16, 2, 1, 1]
    assert scale_channels(10, 0.25) == 3  # 2.5 rounds up
    assert scale_channels(256, 1e-6) == 1


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_width_one_is_the_preset(name):
    torch.manual_seed(0)
    model = preset(name)
    torch.manual_seed(0)
    if name == 'stgcn-compact':
        reference = STGCN(6, 8, 'sbu', channels=COMPACT_CHANNELS, dropout=0.2)
    elif name == 'stgcn':
        reference = STGCN(6, 8, 'sbu')
    elif name == 'attention-gcn':
        reference = AttentionGCN(6, 8, 'sbu', num_frames=8)
    else:
        reference = TrajectoryGCN(6, 8, 'sbu', num_frames=8, hidden_channels=24,
                                  temporal_channels=16)
    assert shapes(model) == shapes(reference)
    assert model.config() == reference.config()


def test_widths_scale_every_hidden_channel_count():
    narrow = preset('stgcn-compact', 0.25)
    assert narrow.channels == (8, 8, 16, 16)
    assert narrow.strides == (1, 1, 2, 1)  # the preset's, not recomputed
    assert narrow.in_channels == 6 and narrow.fc.weight.shape == (8, 16)
    tiny = preset('stgcn-compact', 0.01)  # every block one channel wide
    assert tiny.channels == (1, 1, 1, 1) and tiny.strides == (1, 1, 2, 1)
    assert tiny(sbu_batch()).shape == (2, 8)

    att = preset('attention-gcn', 0.5)
    assert (att.heads, att.head_channels, att.hidden_channels) == (8, 8, 128)
    traj = preset('sahbi-gcn', 0.5)
    assert traj.channels == (4, 4, 4) and traj.hidden_channels == 12
    assert traj.temporal_channels == 8 and traj.heads == 4
    for model in (att, traj):
        assert model(sbu_batch()).shape == (2, 8)


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_sizes_grow_with_the_width(name):
    sizes = [model_size(preset(name, w)) for w in (0.1, 0.25, 0.5, 1.0, 1.5)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    weights = [model_size(preset(name, w), 'weights') for w in (0.25, 0.5, 1.0)]
    assert weights == sorted(weights) and weights[-1] < sizes[3]
    # Convolution weights are (roughly) quadratic in the width.
    if name.startswith('stgcn'):
        assert 3.0 < weights[2] / weights[1] < 4.5


def test_bad_width_is_refused():
    for width in (0, -0.5, float('nan'), float('inf'), '0.5', True):
        with pytest.raises(ValueError, match="'width' to be a positive number"):
            preset('stgcn-compact', width)
    with pytest.raises(ValueError, match="'count' to be one of"):
        model_size(preset('stgcn-compact'), 'macs')


def test_narrow_model_round_trips_through_a_checkpoint(tmp_path):
    model = preset('stgcn-compact', 0.3).eval()
    save_checkpoint(tmp_path / 'model.pt', model)
    loaded = load_model(tmp_path / 'model.pt').eval()
    assert loaded.channels == model.channels == (10, 10, 19, 19)
    assert shapes(loaded) == shapes(model)
    batch = sbu_batch()
    with torch.no_grad():
        assert torch.allclose(loaded(batch), model(batch))


@pytest.mark.parametrize('name,count', [('stgcn-compact', 'parameters'),
                                        ('stgcn-compact', 'weights'),
                                        ('attention-gcn', 'parameters'),
                                        ('sahbi-gcn', 'weights')])
@pytest.mark.parametrize('target', [2000, 16500])
def test_width_for_params_is_the_closest_width(name, count, target):
    width = width_for_params(name, target, 6, 8, 'sbu', num_frames=8, count=count)
    found = model_size(preset(name, width), count)
    # The size grows with the width: no width on a fine grid around the one
    # found comes closer.
    grid = [width + k / 2000 for k in range(-60, 61) if width + k / 2000 > 0]
    best = min(abs(model_size(preset(name, w), count) - target) for w in grid)
    assert abs(found - target) <= best
    assert len(repr(width)) <= 8  # a short decimal inside the step


def test_width_for_params_at_the_ends():
    smallest = model_size(preset('stgcn-compact', 1e-6))
    width = width_for_params('stgcn-compact', 1, 6, 8, 'sbu')
    assert model_size(preset('stgcn-compact', width)) == smallest
    assert width_for_params('stgcn-compact', 10 ** 9, 6, 8, 'sbu',
                            max_width=2.0) == 2.0
    with pytest.raises(ValueError, match="'target' to be a positive int"):
        width_for_params('stgcn-compact', 0, 6, 8, 'sbu')
