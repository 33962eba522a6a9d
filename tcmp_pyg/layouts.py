"""Skeleton layouts: joint tables, bones, centre joint and number of bodies.

Every layout is a plain 0-based table. Graph nodes of a sequence are the joints
of all bodies, body-major: node ``m * V + v`` is joint ``v`` of body ``m``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Tuple, Union

import torch
from torch import Tensor


@dataclass(frozen=True)
class SkeletonLayout:
    r"""A skeleton: named joints, undirected bones, a centre joint, a body count.

    Args:
        name (str): Short name of the layout.
        joint_names (Sequence[str]): One name per joint, in the data's joint order.
        bones (Sequence[Tuple[int, int]]): Undirected 0-based joint pairs.
        center (int): Index of the centre joint (root of the spatial partition).
        num_bodies (int, optional): Bodies per sequence. (default: :obj:`1`)

    Example::

        >>> arm = SkeletonLayout('arm', ['shoulder', 'elbow', 'hand'],
        ...                      [(0, 1), (1, 2)], center=0)
    """
    name: str
    joint_names: Tuple[str, ...]
    bones: Tuple[Tuple[int, int], ...]
    center: int
    num_bodies: int = 1
    _hops: Tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.joint_names)
        bones = tuple((int(a), int(b)) for a, b in self.bones)
        object.__setattr__(self, 'joint_names', names)
        object.__setattr__(self, 'bones', bones)
        V = len(names)
        if V == 0:
            raise ValueError(f"Layout '{self.name}' needs at least one joint")
        if len(set(names)) != V:
            raise ValueError(f"Layout '{self.name}' has duplicate joint names")
        for a, b in bones:
            if not (0 <= a < V and 0 <= b < V):
                raise ValueError(f"Layout '{self.name}': bone ({a}, {b}) refers "
                                 f"to a joint outside 0..{V - 1}")
            if a == b:
                raise ValueError(f"Layout '{self.name}': bone ({a}, {b}) is a "
                                 f"self-loop; self-connections are added by "
                                 f"the layers")
        if len({frozenset(b) for b in bones}) != len(bones):
            raise ValueError(f"Layout '{self.name}' lists a bone twice")
        if not 0 <= self.center < V:
            raise ValueError(f"Layout '{self.name}': center {self.center} is "
                             f"outside 0..{V - 1}")
        if int(self.num_bodies) < 1:
            raise ValueError(f"Layout '{self.name}': num_bodies must be >= 1 "
                             f"(got {self.num_bodies})")
        object.__setattr__(self, 'num_bodies', int(self.num_bodies))
        object.__setattr__(self, '_hops', _hop_distances(V, bones, self.center,
                                                         self.name))

    @property
    def num_joints(self) -> int:
        """Joints per body (``V``)."""
        return len(self.joint_names)

    @property
    def num_nodes(self) -> int:
        """Graph nodes per sequence (``M * V``)."""
        return self.num_bodies * self.num_joints

    def hop_distance(self) -> Tensor:
        """Hops from every joint to the centre joint, shape ``[V]``."""
        return torch.tensor(self._hops, dtype=torch.long)

    def edge_index(self) -> Tensor:
        """The bones of every body in both directions, no self-loops.

        Returns:
            LongTensor of shape ``[2, 2 * num_bones * num_bodies]``.
        """
        bones = torch.tensor(self.bones, dtype=torch.long).view(-1, 2).t()
        one = torch.cat([bones, bones.flip(0)], dim=1)
        offsets = torch.arange(self.num_bodies) * self.num_joints
        return torch.cat([one + off for off in offsets.tolist()], dim=1)

    def with_bodies(self, num_bodies: int) -> 'SkeletonLayout':
        """The same skeleton with another body count."""
        return SkeletonLayout(self.name, self.joint_names, self.bones,
                              self.center, num_bodies)

    def to_dict(self) -> Dict[str, Any]:
        """Plain data (for checkpoints); :meth:`from_dict` inverts it."""
        return dict(name=self.name, joint_names=list(self.joint_names),
                    bones=[list(b) for b in self.bones], center=self.center,
                    num_bodies=self.num_bodies)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> 'SkeletonLayout':
        return cls(d['name'], d['joint_names'], [tuple(b) for b in d['bones']],
                   int(d['center']), int(d['num_bodies']))


def _hop_distances(V: int, bones: Tuple[Tuple[int, int], ...], center: int,
                   name: str) -> Tuple[int, ...]:
    neighbours = [[] for _ in range(V)]
    for a, b in bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    hops = [-1] * V
    hops[center] = 0
    frontier = [center]
    while frontier:
        nxt = []
        for v in frontier:
            for u in neighbours[v]:
                if hops[u] < 0:
                    hops[u] = hops[v] + 1
                    nxt.append(u)
        frontier = nxt
    if min(hops) < 0:
        cut = [i for i, h in enumerate(hops) if h < 0]
        raise ValueError(f"Layout '{name}': joints {cut} are not connected to "
                         f"the centre joint {center} by bones")
    return tuple(hops)


SBU = SkeletonLayout(
    'sbu',
    ['head', 'neck', 'torso', 'left_shoulder', 'left_elbow', 'left_hand',
     'right_shoulder', 'right_elbow', 'right_hand', 'left_hip', 'left_knee',
     'left_foot', 'right_hip', 'right_knee', 'right_foot'],
    [(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (1, 6), (6, 7), (7, 8), (2, 9),
     (9, 10), (10, 11), (2, 12), (12, 13), (13, 14)],
    center=2, num_bodies=2)

# Kinect v1 SDK order, as in UTKinect-Action3D (MSR Action3D is reordered to it).
KINECT_V1 = SkeletonLayout(
    'kinect_v1',
    ['hip_center', 'spine', 'shoulder_center', 'head', 'left_shoulder',
     'left_elbow', 'left_wrist', 'left_hand', 'right_shoulder', 'right_elbow',
     'right_wrist', 'right_hand', 'left_hip', 'left_knee', 'left_ankle',
     'left_foot', 'right_hip', 'right_knee', 'right_ankle', 'right_foot'],
    [(0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (5, 6), (6, 7), (2, 8), (8, 9),
     (9, 10), (10, 11), (0, 12), (12, 13), (13, 14), (14, 15), (0, 16),
     (16, 17), (17, 18), (18, 19)],
    center=1, num_bodies=1)

# Kinect v2 (NTU RGB+D), the joint order of the .skeleton files.
NTU = SkeletonLayout(
    'ntu',
    ['spine_base', 'spine_mid', 'neck', 'head', 'left_shoulder', 'left_elbow',
     'left_wrist', 'left_hand', 'right_shoulder', 'right_elbow', 'right_wrist',
     'right_hand', 'left_hip', 'left_knee', 'left_ankle', 'left_foot',
     'right_hip', 'right_knee', 'right_ankle', 'right_foot', 'spine_shoulder',
     'left_hand_tip', 'left_thumb', 'right_hand_tip', 'right_thumb'],
    [(0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6),
     (8, 20), (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13),
     (15, 14), (16, 0), (17, 16), (18, 17), (19, 18), (21, 22), (22, 7),
     (23, 24), (24, 11)],
    center=20, num_bodies=2)

# First-Person Hand Action benchmark: wrist, 5 MCPs, then PIP/DIP/TIP per finger.
FPHA = SkeletonLayout(
    'fpha',
    ['wrist', 'thumb_mcp', 'index_mcp', 'middle_mcp', 'ring_mcp', 'pinky_mcp',
     'thumb_pip', 'thumb_dip', 'thumb_tip', 'index_pip', 'index_dip',
     'index_tip', 'middle_pip', 'middle_dip', 'middle_tip', 'ring_pip',
     'ring_dip', 'ring_tip', 'pinky_pip', 'pinky_dip', 'pinky_tip'],
    [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 6), (6, 7), (7, 8), (2, 9),
     (9, 10), (10, 11), (3, 12), (12, 13), (13, 14), (4, 15), (15, 16),
     (16, 17), (5, 18), (18, 19), (19, 20)],
    center=0, num_bodies=1)

# COCO 17 keypoints (pyskl / mmaction2 2-D pose), centred on the nose as pyskl does.
COCO = SkeletonLayout(
    'coco',
    ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
     'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
     'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
     'right_knee', 'left_ankle', 'right_ankle'],
    [(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7),
     (7, 5), (10, 8), (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0),
     (4, 2)],
    center=0, num_bodies=1)

# OpenPose 18 keypoints (COCO order with a neck at 1).
OPENPOSE = SkeletonLayout(
    'openpose',
    ['nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist',
     'left_shoulder', 'left_elbow', 'left_wrist', 'right_hip', 'right_knee',
     'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'right_eye',
     'left_eye', 'right_ear', 'left_ear'],
    [(4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8),
     (11, 5), (8, 2), (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15),
     (16, 14)],
    center=1, num_bodies=1)

LAYOUTS: Dict[str, SkeletonLayout] = {
    layout.name: layout
    for layout in (SBU, KINECT_V1, NTU, FPHA, COCO, OPENPOSE)
}

LayoutLike = Union[str, SkeletonLayout]


def get_layout(layout: LayoutLike) -> SkeletonLayout:
    """Returns the layout object for a built-in name, or the layout itself.

    Args:
        layout (str or SkeletonLayout): A name from :obj:`LAYOUTS` or a layout.
    """
    if isinstance(layout, SkeletonLayout):
        return layout
    if isinstance(layout, str):
        try:
            return LAYOUTS[layout]
        except KeyError:
            raise ValueError(f"Unknown skeleton layout '{layout}' (expected one "
                             f"of {sorted(LAYOUTS)} or a SkeletonLayout)") from None
    raise TypeError(f"Expected 'layout' to be a layout name or a SkeletonLayout "
                    f"(got {type(layout).__name__})")

