import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform, Compose

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.transforms import (CenterJoint, JointToBone, JointToMotion,
                                 RandomBodySwap, RandomRotation3D,
                                 RandomTemporalCrop, ReverseBodies, ScaleNormalize,
                                 TemporalResample, bone_parents,
                                 resample_frames, rotation_matrix)

SBU = get_layout('sbu')  # 2 bodies x 15 joints, centre = torso (2)


def sequence(layout=SBU, T=6, seed=0, absent_body=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(layout.num_nodes, T, 3, generator=g) + 2.0
    if absent_body is not None:
        V = layout.num_joints
        x[absent_body * V:(absent_body + 1) * V] = 0
    return Data(x=x, edge_index=layout.edge_index())


def bone_lengths(x, layout=SBU):
    V = layout.num_joints
    xb = x.view(-1, V, x.size(1), x.size(2))[..., :3]
    bones = torch.tensor(layout.bones)
    return (xb[:, bones[:, 0]] - xb[:, bones[:, 1]]).norm(dim=-1)


def test_transforms_are_base_transforms():
    for t in (CenterJoint('sbu'), ScaleNormalize('sbu'), RandomRotation3D(),
              RandomBodySwap('sbu'), ReverseBodies('sbu'),
              JointToBone('sbu'), JointToMotion(), TemporalResample(8)):
        assert isinstance(t, BaseTransform)
    assert repr(TemporalResample(8)) == 'TemporalResample(8)'
    assert repr(JointToBone('sbu')) == 'JointToBone(sbu, cat=False)'
    assert repr(CenterJoint('ntu', mode='per_frame')) == \
        'CenterJoint(ntu, mode=per_frame, per_body=False)'


def test_resample_frames():
    x = torch.arange(5.).view(1, 5, 1)
    out = resample_frames(x, 9, dim=1)
    assert out.shape == (1, 9, 1)
    assert torch.allclose(out.view(-1), torch.linspace(0, 4, 9))
    assert resample_frames(x, 5) is x
    assert torch.equal(resample_frames(x[:, :1], 3), torch.zeros(1, 3, 1))
    with pytest.raises(ValueError, match="'num_frames' >= 1"):
        resample_frames(x, 0)
    data = TemporalResample(3)(Data(x=x.clone()))
    assert torch.allclose(data.x.view(-1), torch.tensor([0., 2., 4.]))


@pytest.mark.parametrize('per_body', [False, True])
def test_center_per_frame_zeroes_the_centre_joint(per_body):
    data = CenterJoint('sbu', mode='per_frame', per_body=per_body)(sequence())
    V, c = SBU.num_joints, SBU.center
    assert torch.allclose(data.x[c], torch.zeros(6, 3), atol=1e-6)
    if per_body:
        assert torch.allclose(data.x[V + c], torch.zeros(6, 3), atol=1e-6)


def test_center_first_frame_keeps_trajectory_and_interaction():
    before = sequence()
    data = CenterJoint('sbu')(sequence())
    c, V = SBU.center, SBU.num_joints
    assert torch.allclose(data.x[c, 0], torch.zeros(3), atol=1e-6)
    # One translation for everything: differences are unchanged.
    shift = before.x[c, 0]
    assert torch.allclose(data.x, before.x - shift, atol=1e-6)
    assert not torch.allclose(data.x[c, 1:], torch.zeros(5, 3))
    assert not torch.allclose(data.x[V + c, 0], torch.zeros(3))


def test_center_moves_positions_only():
    data = Data(x=torch.randn(30, 4, 5))
    out = CenterJoint('sbu', mode='per_frame')(data.clone())
    assert torch.equal(out.x[..., 3:], data.x[..., 3:])
    assert torch.allclose(out.x[SBU.center, :, :3], torch.zeros(4, 3), atol=1e-6)


def test_center_leaves_absent_body_at_zero():
    data = CenterJoint('sbu', mode='per_frame')(sequence(absent_body=1))
    V = SBU.num_joints
    assert (data.x[V:] == 0).all()
    # A body missing in the first frames: reference is its first present frame.
    seq = sequence()
    seq.x[:V, :2] = 0
    out = CenterJoint('sbu')(seq)
    assert (out.x[:V, :2] == 0).all()
    assert torch.allclose(out.x[SBU.center, 2], torch.zeros(3), atol=1e-6)


def test_scale_normalize():
    data = ScaleNormalize('sbu')(CenterJoint('sbu')(sequence(absent_body=1)))
    lengths = bone_lengths(data.x)[0]  # body 0 only: body 1 is absent
    assert math.isclose(lengths.mean().item(), 1.0, rel_tol=1e-5)
    # Scale invariant, and a no-op on an all-zero sequence.
    a = ScaleNormalize('sbu')(sequence(seed=3)).x
    b = ScaleNormalize('sbu')(Data(x=sequence(seed=3).x * 7.5)).x
    assert torch.allclose(a, b, atol=1e-5)
    zero = Data(x=torch.zeros(30, 4, 3))
    assert (ScaleNormalize('sbu')(zero).x == 0).all()


def test_rotation_matrix_is_orthonormal():
    R = rotation_matrix(torch.tensor([0.3, -1.2, 2.0]))
    assert torch.allclose(R @ R.t(), torch.eye(3), atol=1e-6)
    assert math.isclose(torch.det(R).item(), 1.0, rel_tol=1e-6)
    assert torch.allclose(rotation_matrix(torch.zeros(3)), torch.eye(3))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1),
       degrees=st.floats(0, 180, allow_nan=False))
def test_random_rotation_preserves_bone_lengths(seed, degrees):
    data = sequence(seed=seed % 1000)
    before = bone_lengths(data.x)
    g = torch.Generator().manual_seed(seed)
    out = RandomRotation3D(degrees, generator=g)(data.clone())
    assert out.x.shape == data.x.shape
    assert torch.allclose(bone_lengths(out.x), before, atol=1e-4)
    assert torch.allclose(out.x.norm(dim=-1), data.x.norm(dim=-1), atol=1e-4)


def test_random_rotation_is_seedable():
    data = sequence()
    a = RandomRotation3D(30, generator=torch.Generator().manual_seed(1))(data.clone())
    b = RandomRotation3D(30, generator=torch.Generator().manual_seed(1))(data.clone())
    c = RandomRotation3D(30, generator=torch.Generator().manual_seed(2))(data.clone())
    assert torch.equal(a.x, b.x) and not torch.allclose(a.x, c.x)
    torch.manual_seed(5)
    d = RandomRotation3D(30)(data.clone())
    torch.manual_seed(5)
    e = RandomRotation3D(30)(data.clone())
    assert torch.equal(d.x, e.x)
    assert torch.allclose(RandomRotation3D(0)(data.clone()).x, data.x, atol=1e-6)
    # Extra channels beyond x, y, z are left alone.
    extra = Data(x=torch.randn(30, 4, 5))
    out = RandomRotation3D(90)(extra.clone())
    assert torch.equal(out.x[..., 3:], extra.x[..., 3:])
    with pytest.raises(ValueError, match="'degrees'"):
        RandomRotation3D((1.0, 2.0))


def test_random_body_swap_permutes_whole_bodies():
    data = sequence()
    V = SBU.num_joints
    bodies = data.x.view(2, V, *data.x.shape[1:])
    seen = set()
    for seed in range(20):
        out = RandomBodySwap('sbu', generator=torch.Generator().manual_seed(seed))(
            data.clone())
        ob = out.x.view(2, V, *data.x.shape[1:])
        if torch.equal(ob, bodies):
            seen.add('kept')
        else:  # the same two bodies, in the other order
            assert torch.equal(ob[0], bodies[1]) and torch.equal(ob[1], bodies[0])
            seen.add('swapped')
    assert seen == {'kept', 'swapped'}
    a = RandomBodySwap('sbu', generator=torch.Generator().manual_seed(3))(data.clone())
    b = RandomBodySwap('sbu', generator=torch.Generator().manual_seed(3))(data.clone())
    assert torch.equal(a.x, b.x)
    # A padded (absent) body never moves: one person stays body 0.
    lone = sequence(absent_body=1)
    for seed in range(10):
        out = RandomBodySwap('sbu', generator=torch.Generator().manual_seed(seed))(
            lone.clone())
        assert torch.equal(out.x, lone.x)
    assert repr(RandomBodySwap('sbu')) == 'RandomBodySwap(sbu)'
    with pytest.raises(ValueError, match='multiple of the 15 joints'):
        RandomBodySwap('sbu')(Data(x=torch.randn(16, 4, 3)))


def test_reverse_bodies_swaps_the_persons_present():
    data = sequence()
    V = SBU.num_joints
    out = ReverseBodies('sbu')(data.clone())
    assert torch.equal(out.x[:V], data.x[V:]) and torch.equal(out.x[V:], data.x[:V])
    assert torch.equal(ReverseBodies('sbu')(out.clone()).x, data.x)
    # A padded (absent) body never moves: one person stays body 0.
    lone = sequence(absent_body=1)
    assert torch.equal(ReverseBodies('sbu')(lone.clone()).x, lone.x)
    # Three bodies: the order is reversed.
    three = SBU.with_bodies(3)
    x = sequence(three).x
    out = ReverseBodies(three)(Data(x=x.clone())).x.view(3, V, *x.shape[1:])
    bodies = x.view(3, V, *x.shape[1:])
    assert all(torch.equal(out[i], bodies[2 - i]) for i in range(3))
    assert repr(ReverseBodies('sbu')) == 'ReverseBodies(sbu)'
    with pytest.raises(ValueError, match='ReverseBodies: expected the node count'):
        ReverseBodies('sbu')(Data(x=torch.randn(16, 4, 3)))


def test_bone_parents_walk_to_the_centre():
    for name in ('sbu', 'kinect_v1', 'ntu', 'fpha', 'coco', 'openpose'):
        layout = get_layout(name)
        parent = bone_parents(layout)
        hops = layout.hop_distance()
        assert parent[layout.center] == layout.center
        others = torch.arange(layout.num_joints) != layout.center
        assert (hops[parent[others]] == hops[others] - 1).all()
        bones = {frozenset(b) for b in layout.bones}
        assert all(frozenset((v, int(parent[v]))) in bones
                   for v in range(layout.num_joints) if v != layout.center)


def test_joint_to_bone():
    data = sequence()
    out = JointToBone('sbu')(data.clone())
    V, c = SBU.num_joints, SBU.center
    assert out.x.shape == data.x.shape
    assert (out.x[c] == 0).all() and (out.x[V + c] == 0).all()
    # The bone of the head (0) is head - neck (1).
    assert torch.allclose(out.x[0], data.x[0] - data.x[1])
    assert torch.allclose(out.x[V], data.x[V] - data.x[V + 1])
    # Bone vectors are translation invariant.
    moved = JointToBone('sbu')(Data(x=data.x + 3.0)).x
    assert torch.allclose(moved, out.x, atol=1e-5)
    both = JointToBone('sbu', cat=True)(data.clone())
    assert both.x.shape == (30, 6, 6)
    with pytest.raises(ValueError, match='multiple of the 15 joints'):
        JointToBone('sbu')(Data(x=torch.zeros(16, 2, 3)))


def test_joint_to_motion():
    data = sequence()
    out = JointToMotion()(data.clone())
    assert out.x.shape == data.x.shape
    assert (out.x[:, -1] == 0).all()
    assert torch.allclose(out.x[:, 0], data.x[:, 1] - data.x[:, 0])
    assert torch.allclose(data.x[:, 0] + out.x[:, :-1].sum(1), data.x[:, -1],
                          atol=1e-5)
    assert JointToMotion(cat=True)(data.clone()).x.shape == (30, 6, 6)
    # Motion of the bone stream: a composed two-step pipeline.
    both = Compose([JointToBone('sbu'), JointToMotion()])(data.clone())
    assert (both.x[SBU.center] == 0).all()


def test_transforms_on_a_real_layout_batch_shape():
    ntu = get_layout('ntu')
    data = sequence(ntu, T=4)
    transform = Compose([CenterJoint(ntu), ScaleNormalize(ntu),
                         RandomRotation3D(10, generator=torch.Generator().manual_seed(0)),
                         JointToBone(ntu)])
    assert transform(data).x.shape == (50, 4, 3)


def test_random_temporal_crop_is_a_resampled_window():
    T = 20
    ramp = torch.arange(T, dtype=torch.float32).view(1, T, 1).expand(3, T, 2)
    seen = set()
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        out = RandomTemporalCrop(0.5, generator=g)(Data(x=ramp.clone())).x
        assert out.shape == ramp.shape
        first, last = float(out[0, 0, 0]), float(out[0, -1, 0])
        # A window of the ramp, stretched over T frames: linear, increasing.
        assert 0 <= first < last <= T - 1
        assert last - first + 1 >= 0.5 * T - 1
        steps = out[0, 1:, 0] - out[0, :-1, 0]
        assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-4)
        seen.add((round(first, 3), round(last, 3)))
    assert len(seen) > 10  # random start and length
    again = RandomTemporalCrop(0.5, generator=torch.Generator().manual_seed(3))
    other = RandomTemporalCrop(0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again(Data(x=ramp.clone())).x, other(Data(x=ramp.clone())).x)
    full = RandomTemporalCrop(1.0)(Data(x=ramp.clone())).x
    assert torch.equal(full, ramp)
    with pytest.raises(ValueError, match=r"'min_fraction' in \(0, 1\]"):
        RandomTemporalCrop(0.0)
