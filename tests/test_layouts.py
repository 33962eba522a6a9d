import pytest
import torch

from tcmp_pyg.layouts import LAYOUTS, SkeletonLayout, get_layout

EXPECTED = {  # name: (bodies, joints, centre joint name)
    'sbu': (2, 15, 'torso'),
    'kinect_v1': (1, 20, 'spine'),
    'ntu': (2, 25, 'spine_shoulder'),
    'fpha': (1, 21, 'wrist'),
    'coco': (1, 17, 'nose'),
    'openpose': (1, 18, 'neck'),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_builtin_layout_tables(name):
    layout = get_layout(name)
    M, V, center = EXPECTED[name]
    assert (layout.num_bodies, layout.num_joints) == (M, V)
    assert layout.num_nodes == M * V
    assert layout.joint_names[layout.center] == center
    # Every built-in skeleton is a tree: V - 1 bones, all joints reached.
    assert len(layout.bones) == V - 1
    hops = layout.hop_distance()
    assert hops.shape == (V,) and hops[layout.center] == 0 and (hops >= 0).all()


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_edge_index_both_directions_no_self_loops(name):
    layout = get_layout(name)
    ei = layout.edge_index()
    E = len(layout.bones)
    assert ei.shape == (2, 2 * E * layout.num_bodies)
    assert ei.dtype == torch.long
    assert (ei[0] != ei[1]).all()
    assert ei.min() >= 0 and ei.max() < layout.num_nodes
    pairs = set(map(tuple, ei.t().tolist()))
    assert all((b, a) in pairs for a, b in pairs)
    assert len(pairs) == ei.size(1)  # no duplicate edge
    # Body-major: body m's edges stay within nodes m*V .. (m+1)*V - 1.
    V = layout.num_joints
    assert ((ei[0] // V) == (ei[1] // V)).all()


def test_kinect_v1_order_matches_utkinect_release():
    # The joint order of UTKinect-Action3D (Kinect v1 SDK), hip centre first.
    layout = get_layout('kinect_v1')
    assert layout.joint_names[:4] == ('hip_center', 'spine', 'shoulder_center',
                                      'head')
    assert layout.joint_names[-1] == 'right_foot'


def test_hop_distance_small():
    arm = SkeletonLayout('arm', ['shoulder', 'elbow', 'hand'], [(0, 1), (1, 2)],
                         center=0)
    assert arm.hop_distance().tolist() == [0, 1, 2]
    assert arm.with_bodies(3).edge_index().shape == (2, 12)


def test_to_dict_round_trip():
    for layout in LAYOUTS.values():
        assert SkeletonLayout.from_dict(layout.to_dict()) == layout


def test_get_layout_errors():
    layout = get_layout('sbu')
    assert get_layout(layout) is layout
    with pytest.raises(ValueError, match="Unknown skeleton layout 'nope'"):
        get_layout('nope')
    with pytest.raises(TypeError, match="Expected 'layout'"):
        get_layout(3)


@pytest.mark.parametrize('kwargs, match', [
    (dict(joint_names=[], bones=[], center=0), 'at least one joint'),
    (dict(joint_names=['a', 'a'], bones=[(0, 1)], center=0), 'duplicate'),
    (dict(joint_names=['a', 'b'], bones=[(0, 2)], center=0), 'outside'),
    (dict(joint_names=['a', 'b'], bones=[(0, 0), (0, 1)], center=0), 'self-loop'),
    (dict(joint_names=['a', 'b'], bones=[(0, 1), (1, 0)], center=0), 'twice'),
    (dict(joint_names=['a', 'b'], bones=[(0, 1)], center=5), 'center'),
    (dict(joint_names=['a', 'b', 'c'], bones=[(0, 1)], center=0), 'not connected'),
    (dict(joint_names=['a', 'b'], bones=[(0, 1)], center=0, num_bodies=0),
     'num_bodies'),
])
def test_invalid_layouts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkeletonLayout('bad', **kwargs)
