"""A procedurally generated skeleton action dataset: the project's embedded
default data (demo, notebooks, CI tests, pruning comparisons), with no files
to download.

Every sequence is made by forward kinematics over the bone tree of a real
layout: a rest pose, per-subject bone lengths, and joint-angle trajectories
(``offset + amplitude * sin(2 pi (cycles * tau + phase))``) on ten body parts.
An action is a set of such trajectories; several actions share the same
motion primitives and differ only in the coordination (relative phase) of
neighbouring limbs, e.g. ``jumping_jacks`` (both arms up together) and
``alternate_jacks`` (one arm up, then the other). Viewpoint, speed, subject,
noise and the overlap between classes grow with ``difficulty``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (SkeletonDataset, check_choice,
                                    check_num_frames, skeleton_to_data)
from tcmp_pyg.layouts import LAYOUTS, NTU, LayoutLike, SkeletonLayout, get_layout

FLEX, ABD, SWING = 0, 1, 2  # rotation axes of a body part, see `Motion`


class Motion(NamedTuple):
    r"""One joint-angle trajectory of an action, in degrees:
    :math:`\mathrm{offset} + \mathrm{amplitude} \sin(2 \pi (\mathrm{cycles}
    \cdot \tau + \mathrm{phase}))`, with :math:`\tau` the sequence's time in
    cycles.

    ``axis`` is :obj:`FLEX` (the far end of the bone moves forward; a negative
    angle bends a knee), :obj:`ABD` (sideways, away from the body's midline)
    or :obj:`SWING` (about the vertical axis, outwards).
    """
    role: str
    axis: int
    amplitude: float
    offset: float = 0.0
    phase: float = 0.0
    cycles: float = 1.0


# The body parts an action can move; each is one bone (pivot -> moving joint)
# of the layout, and rotating it carries the whole subtree below it.
ROLES = ('trunk', 'head', 'upper_arm_l', 'forearm_l', 'upper_arm_r',
         'forearm_r', 'thigh_l', 'shin_l', 'thigh_r', 'shin_r')


def _pair(part: str, axis: int, amplitude: float, offset: float = 0.0,
          phase: Tuple[float, float] = (0.0, 0.0),
          cycles: float = 1.0) -> Tuple[Motion, Motion]:
    """The same trajectory on the left and right ``part``, with a phase each."""
    return (Motion(part + '_l', axis, amplitude, offset, phase[0], cycles),
            Motion(part + '_r', axis, amplitude, offset, phase[1], cycles))


def _mirror(motions: Sequence[Motion]) -> Tuple[Motion, ...]:
    swap = {'_l': '_r', '_r': '_l'}
    return tuple(m._replace(role=m.role[:-2] + swap[m.role[-2:]])
                 if m.role[-2:] in swap else m for m in motions)


_WALK_LEGS = (*_pair('thigh', FLEX, 25, 0, (0.0, 0.5)),
              *_pair('shin', FLEX, 20, -20, (0.75, 0.25)))
_WAVE_RIGHT = (Motion('upper_arm_r', ABD, 10, 140),
               Motion('forearm_r', ABD, 35, 0, 0.0, 2.0))
_KICK_LEGS = (Motion('thigh_r', FLEX, 40, 30), *_pair('upper_arm', ABD, 5, 20))

# The catalogue, in order: the first ``num_classes`` are used. The default 10
# hold four pairs that share every primitive and differ only in coordination
# (relative phase) a few bones apart: both arms together or alternating
# (through the shoulders, 4 hops), the elbow straightening or bending as the
# arm or knee swings forward (1 hop). ``amble`` differs from ``walk`` only in
# how the arms move relative to the legs, 6 to 8 hops away: it is last, for
# models that see the whole body.
SYNTHETIC_ACTIONS: Tuple[Tuple[str, Tuple[Motion, ...]], ...] = (
    ('walk', (*_WALK_LEGS, *_pair('upper_arm', FLEX, 25, 0, (0.5, 0.0)),
              *_pair('forearm', FLEX, 10, 20, (0.5, 0.0)))),
    ('jumping_jacks', (*_pair('upper_arm', ABD, 70, 80, (0.0, 0.0)),
                       *_pair('thigh', ABD, 10, 10, (0.0, 0.0)))),
    ('alternate_jacks', (*_pair('upper_arm', ABD, 70, 80, (0.0, 0.5)),
                         *_pair('thigh', ABD, 10, 10, (0.0, 0.0)))),
    ('arm_circles', (*_pair('upper_arm', FLEX, 60, 0, (0.0, 0.0)),
                     *_pair('upper_arm', ABD, 60, 60, (0.25, 0.25)))),
    ('alternate_circles', (*_pair('upper_arm', FLEX, 60, 0, (0.0, 0.5)),
                           *_pair('upper_arm', ABD, 60, 60, (0.25, 0.75)))),
    ('punch', (*_pair('upper_arm', FLEX, 30, 60, (0.0, 0.5)),
               *_pair('forearm', FLEX, 50, 60, (0.5, 0.0)))),
    ('pull', (*_pair('upper_arm', FLEX, 30, 60, (0.0, 0.5)),
              *_pair('forearm', FLEX, 50, 60, (0.0, 0.5)))),
    ('kick', (*_KICK_LEGS, Motion('shin_r', FLEX, 40, -40, 0.0))),
    ('knee_lift', (*_KICK_LEGS, Motion('shin_r', FLEX, 40, -40, 0.5))),
    ('wave_right', _WAVE_RIGHT),
    ('squat', (*_pair('thigh', FLEX, 35, 35), *_pair('shin', FLEX, 45, -45),
               Motion('trunk', FLEX, 10, 10), *_pair('upper_arm', FLEX, 35, 35))),
    ('bow', (Motion('trunk', FLEX, 30, 30), Motion('head', FLEX, 10, 10))),
    ('clap', (*_pair('upper_arm', FLEX, 5, 75), *_pair('upper_arm', SWING, 35, 35),
              *_pair('forearm', FLEX, 10, 30))),
    ('nod', (Motion('head', FLEX, 25, 5, 0.0, 2.0),)),
    ('side_bend', (Motion('trunk', ABD, 25),
                   *_pair('upper_arm', ABD, 10, 15, (0.0, 0.5)))),
    ('high_knees', (*_pair('thigh', FLEX, 45, 45, (0.0, 0.5)),
                    *_pair('shin', FLEX, 50, -50, (0.0, 0.5)),
                    *_pair('upper_arm', FLEX, 30, 0, (0.5, 0.0)),
                    *_pair('forearm', FLEX, 0, 80))),
    ('wave_left', _mirror(_WAVE_RIGHT)),
    ('amble', (*_WALK_LEGS, *_pair('upper_arm', FLEX, 25, 0, (0.0, 0.5)),
               *_pair('forearm', FLEX, 10, 20, (0.0, 0.5)))),
)
SYNTHETIC_CLASSES = tuple(name for name, _ in SYNTHETIC_ACTIONS)

# Cross-subject protocol: subjects 1-10 train, 11-15 test.
NUM_SUBJECTS = 15
NUM_TRAIN_SUBJECTS = 10

# A standing adult in metres: x to the subject's left, y up from the floor,
# z forward. Right-side joints mirror the left ones (x -> -x).
_MIDLINE_POSE = {
    'spine_base': (0.0, 0.95, -0.02), 'hip_center': (0.0, 0.95, -0.02),
    'spine': (0.0, 1.10, -0.01), 'torso': (0.0, 1.15, 0.0),
    'spine_mid': (0.0, 1.20, -0.01), 'spine_shoulder': (0.0, 1.42, 0.0),
    'shoulder_center': (0.0, 1.42, 0.0), 'neck': (0.0, 1.50, 0.01),
    'head': (0.0, 1.64, 0.03), 'nose': (0.0, 1.62, 0.11),
}
_LEFT_POSE = {
    'shoulder': (0.18, 1.40, -0.01), 'elbow': (0.22, 1.12, -0.03),
    'wrist': (0.24, 0.88, 0.0), 'hand': (0.245, 0.81, 0.01),
    'thumb': (0.22, 0.80, 0.05), 'hand_tip': (0.25, 0.72, 0.02),
    'hip': (0.09, 0.93, -0.01), 'knee': (0.10, 0.51, 0.01),
    'ankle': (0.10, 0.08, -0.02), 'foot': (0.11, 0.02, 0.09),
    'eye': (0.035, 1.66, 0.09), 'ear': (0.075, 1.64, 0.0),
}



def _limb_bones(side: str) -> Dict[str, Tuple[Tuple[Tuple[str, str], ...], ...]]:
    s = {'l': 'left', 'r': 'right'}[side]
    return {
        f'upper_arm_{side}': (((f'{s}_shoulder', f'{s}_elbow'),),),
        f'forearm_{side}': (((f'{s}_elbow', f'{s}_wrist'),),
                            ((f'{s}_elbow', f'{s}_hand'),)),
        f'thigh_{side}': (((f'{s}_hip', f'{s}_knee'),),),
        f'shin_{side}': (((f'{s}_knee', f'{s}_ankle'),), ((f'{s}_knee', f'{s}_foot'),)),
    }


# Candidate bones of each role in the human layouts, as alternatives of
# (pivot, moving joint) names; an alternative with several bones moves them
# together (COCO has no spine: its trunk bends at both shoulder-hip bones).
_ROLE_BONES: Dict[str, Tuple[Tuple[Tuple[str, str], ...], ...]] = {
    'trunk': ((('spine_base', 'spine_mid'),), (('hip_center', 'spine'),),
              (('torso', 'neck'),),
              (('left_shoulder', 'left_hip'), ('right_shoulder', 'right_hip'))),
    'head': ((('neck', 'head'),), (('shoulder_center', 'head'),),
             (('neck', 'nose'),)),
    **_limb_bones('l'), **_limb_bones('r'),
}
_PELVIS_NAMES = ('spine_base', 'hip_center', 'torso')


class _Body(NamedTuple):
    """Everything forward kinematics needs about a layout."""
    root: int
    order: List[int]         # joints in tree order, root first
    parent: np.ndarray       # [V], the root is its own parent
    rest: np.ndarray         # [V, 3] rest pose
    slots: Dict[str, Tuple[int, ...]]  # role -> moving joints of its bones
    human: bool              # named rest pose (metres, floor at y = 0)


def _rest_position(name: str) -> Optional[Tuple[float, float, float]]:
    if name in _MIDLINE_POSE:
        return _MIDLINE_POSE[name]
    for side, sign in (('left_', 1.0), ('right_', -1.0)):
        if name.startswith(side) and name[len(side):] in _LEFT_POSE:
            x, y, z = _LEFT_POSE[name[len(side):]]
            return (sign * x, y, z)
    return None


def _tree(layout: SkeletonLayout, root: int) -> Tuple[List[int], np.ndarray]:
    # Breadth-first spanning tree: a bone closing a cycle is left out.
    neighbours: List[List[int]] = [[] for _ in range(layout.num_joints)]
    for a, b in layout.bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    parent = np.full(layout.num_joints, -1)
    parent[root] = root
    order, frontier = [root], [root]
    while frontier:
        nxt = []
        for v in frontier:
            for u in sorted(neighbours[v]):
                if parent[u] < 0:
                    parent[u] = v
                    nxt.append(u)
        order += nxt
        frontier = nxt
    return order, parent


def _generic_pose(order: List[int], parent: np.ndarray) -> np.ndarray:
    # A planar drawing of the bone tree: the root's branches spread evenly
    # around it, every further joint fans out within 25 degrees of its
    # parent bone, bones shrink by 0.8 per hop.
    V = len(parent)
    children: List[List[int]] = [[] for _ in range(V)]
    for v in order[1:]:
        children[parent[v]].append(v)
    pos, angle, length = np.zeros((V, 3)), np.zeros(V), np.zeros(V)
    root = order[0]
    for k, c in enumerate(children[root]):
        angle[c] = np.pi / 2 + 2 * np.pi * k / len(children[root])
        length[c] = 0.25
    for v in order[1:]:
        kids = children[v]
        spread = np.radians(np.linspace(-25, 25, len(kids))) if len(kids) > 1 \
            else np.zeros(len(kids))
        for c, s in zip(kids, spread):
            angle[c], length[c] = angle[v] + s, 0.8 * length[v]
        pos[v] = pos[parent[v]] + length[v] * np.array(
            [np.cos(angle[v]), np.sin(angle[v]), 0.0])
    return pos


def _subtree_sizes(order: List[int], parent: np.ndarray) -> np.ndarray:
    size = np.ones(len(parent), dtype=np.int64)
    for v in reversed(order[1:]):
        size[parent[v]] += size[v]
    return size


def _body(layout: SkeletonLayout) -> _Body:
    names = layout.joint_names
    index = {n: i for i, n in enumerate(names)}
    # Human layouts are rooted at the pelvis, so that bending the trunk moves
    # the upper body, not the legs.
    root = next((index[n] for n in _PELVIS_NAMES if n in index), layout.center)
    order, parent = _tree(layout, root)
    named = [_rest_position(n) for n in names]
    human = all(p is not None for p in named)
    rest = np.array(named, dtype=np.float64) if human else _generic_pose(order, parent)

    slots = {}
    for role, alternatives in _ROLE_BONES.items():
        for bones in alternatives:
            if all(a in index and b in index and parent[index[b]] == index[a]
                   for a, b in bones):
                slots[role] = tuple(index[b] for _, b in bones)
                break
    if len(slots) < 4:
        # Not a (known) human: the root's largest branches stand in for the
        # limbs, as two-bone chains (first bone, then into its largest child).
        slots = {}
        size = _subtree_sizes(order, parent)
        branches = sorted((v for v in order[1:] if parent[v] == root),
                          key=lambda v: (-size[v], v))
        pairs = (('upper_arm_l', 'forearm_l'), ('upper_arm_r', 'forearm_r'),
                 ('thigh_l', 'shin_l'), ('thigh_r', 'shin_r'), ('trunk', 'head'))
        for (first, second), b in zip(pairs, branches):
            slots[first] = (b,)
            kids = [v for v in order if parent[v] == b and v != b]
            if kids:
                slots[second] = (min(kids, key=lambda v: (-size[v], v)),)
    return _Body(root, order, parent, rest, slots, human)


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: rotations by ``angle`` (any shape ``S``, radians) about the
    unit ``axis`` [3], as ``[*S, 3, 3]``."""
    K = np.array([[0.0, -axis[2], axis[1]],
                  [axis[2], 0.0, -axis[0]],
                  [-axis[1], axis[0], 0.0]])
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def _yaw_tilt(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """``[N, 3, 3]``: a rotation about the vertical axis, then small tilts
    about x and z (the camera's pitch and roll)."""
    ry = _axis_rotation(np.array([0.0, 1.0, 0.0]), yaw)
    rx = _axis_rotation(np.array([1.0, 0.0, 0.0]), pitch)
    rz = _axis_rotation(np.array([0.0, 0.0, 1.0]), roll)
    return rz @ rx @ ry


def synthesize_actions(labels: np.ndarray, subjects: np.ndarray, *,
                       layout: LayoutLike = 'ntu', num_classes: Optional[int] = None,
                       num_frames: int = 32, difficulty: float = 0.5,
                       seed: int = 0, noise: bool = True) -> np.ndarray:
    r"""Generates one single-body skeleton sequence per label.

    Forward kinematics over the bone tree (rooted at the pelvis of a human
    layout, else at the centre joint): every joint's position is its parent's
    plus the rotated rest bone scaled to the subject's bone length, so bone
    lengths are exactly constant within a sequence before the sensor noise.
    The class's :class:`Motion` s are evaluated at a warped time
    :math:`\tau` (random start phase, speed, smooth time warping), with
    per-sample jitter of amplitudes, offsets and relative phases. Then the
    body is put on the floor (human layouts), rotated about the vertical axis
    and tilted, shifted, and Gaussian noise is added. ``difficulty`` scales
    all of these, plus idle fidgeting of every body part and a faint copy
    (weight ``0.35 * difficulty``) of another class's motion.

    A subject's bone lengths, tempo and amplitude style depend only on
    ``seed`` and the subject number; the rest is drawn per sample from
    ``seed``, so equal arguments give bit-identical arrays.

    Args:
        labels (np.ndarray): Class indices ``[N]`` into :obj:`SYNTHETIC_ACTIONS`.
        subjects (np.ndarray): Subject numbers ``[N]`` (non-negative ints).
        layout (str or SkeletonLayout, optional): The skeleton.
            (default: :obj:`'ntu'`)
        num_classes (int, optional): Classes in use, from which the faint
            other motion is drawn. (default: :obj:`None`, ``max(labels) + 1``)
        num_frames (int, optional): Frames per sequence. (default: :obj:`32`)
        difficulty (float, optional): Nuisance and overlap level in
            ``[0, 1]``. (default: :obj:`0.5`)
        seed (int, optional): Random seed (non-negative). (default: :obj:`0`)
        noise (bool, optional): Add the sensor noise. (default: :obj:`True`)

    Returns:
        float32 array of shape ``[N, num_frames, V, 3]``: metres for a human
        layout (floor at ``y = 0``, subject facing the camera along
        :math:`-z`), about 1 unit tall otherwise.
    """
    layout = get_layout(layout)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    subjects = np.asarray(subjects, dtype=np.int64).reshape(-1)
    N, T, d = labels.size, int(num_frames), float(difficulty)
    if subjects.size != N:
        raise ValueError(f"Expected one subject per label (got {subjects.size} "
                         f"subjects for {N} labels)")
    if N and (labels.min() < 0 or labels.max() >= len(SYNTHETIC_ACTIONS)):
        raise ValueError(f"Expected labels in 0..{len(SYNTHETIC_ACTIONS) - 1} "
                         f"(got {labels.min()}..{labels.max()})")
    if N and subjects.min() < 0:
        raise ValueError(f"Expected non-negative subject numbers "
                         f"(got {subjects.min()})")
    C = int(num_classes) if num_classes is not None else int(labels.max(initial=0)) + 1
    if N and labels.max() >= C:
        raise ValueError(f"Expected labels below 'num_classes' = {C} "
                         f"(got {labels.max()})")
    body = _body(layout)
    V, S = layout.num_joints, len(ROLES)
    rest_dir = body.rest - body.rest[body.parent]  # [V, 3], zero at the root
    rest_len = np.linalg.norm(rest_dir, axis=1)
    rest_dir = rest_dir / np.where(rest_len > 0, rest_len, 1.0)[:, None]
    height = np.ptp(body.rest, axis=0).max()

    # Subjects: overall size, per-bone proportions, tempo, amplitude style.
    uniq, subj_idx = np.unique(subjects, return_inverse=True)
    subj_len = np.empty((uniq.size, V))
    subj_tempo, subj_amp = np.empty(uniq.size), np.empty(uniq.size)
    for k, s in enumerate(uniq.tolist()):
        r = np.random.default_rng([seed, 1, s])
        scale = 1.0 + r.uniform(-1, 1) * (0.04 + 0.10 * d)
        bones = np.clip(1.0 + r.normal(0, 0.02 + 0.04 * d, V), 0.7, 1.3)
        subj_len[k] = rest_len * scale * bones
        subj_tempo[k] = np.exp(r.normal(0, 0.05 + 0.10 * d))
        subj_amp[k] = np.exp(r.normal(0, 0.05 + 0.10 * d))
    bone_len = subj_len[subj_idx]  # [N, V]

    rng = np.random.default_rng([seed, 2])
    # Warped time in cycles: tau = start + cycles * (t + a/2pi sin(2pi t + psi)),
    # monotone since a < 1.
    t = np.linspace(0.0, 1.0, T)[None, :]  # [1, T]
    cycles = 1.5 * subj_tempo[subj_idx] * np.exp(rng.uniform(-1, 1, N) * 0.35 * d)
    warp = rng.uniform(0, 0.6 * d, N)[:, None]
    psi = rng.uniform(0, 2 * np.pi, N)[:, None]
    u = t + warp / (2 * np.pi) * np.sin(2 * np.pi * t + psi)
    tau = rng.uniform(0, 1, N)[:, None] + cycles[:, None] * u  # [N, T]

    # Joint angles (degrees) of every role: [N, T, S, 3].
    angles = np.zeros((N, T, S, 3))
    amp_style = subj_amp[subj_idx]
    ghost = (labels + rng.integers(1, max(C, 2), N)) % max(C, 1)
    ghost_phase = rng.uniform(0, 1, N)
    for weight, which, extra_phase in ((1.0, labels, np.zeros(N)),
                                       (0.35 * d, ghost, ghost_phase)):
        for c, (_, motions) in enumerate(SYNTHETIC_ACTIONS):
            rows = np.nonzero(which == c)[0]
            if rows.size == 0 or weight == 0:
                continue
            n = rows.size
            for m in motions:
                amp = m.amplitude * amp_style[rows] * np.exp(
                    rng.normal(0, 0.05 + 0.20 * d, n))
                off = m.offset + rng.normal(0, 3.0 + 10.0 * d, n)
                phase = m.phase + rng.normal(0, 0.02 + 0.08 * d, n) \
                    + extra_phase[rows]
                wave = np.sin(2 * np.pi * (m.cycles * tau[rows]
                                           + phase[:, None]))
                angles[rows, :, ROLES.index(m.role), m.axis] += weight * (
                    off[:, None] + amp[:, None] * wave)
    # Idle fidgeting of every body part (flexion and abduction).
    fid_amp = rng.uniform(0, 12.0 * d, (N, 1, S, 2))
    fid_cycles = rng.uniform(0.3, 2.0, (N, 1, S, 2))
    fid_phase = rng.uniform(0, 1, (N, 1, S, 2))
    angles[..., :2] += fid_amp * np.sin(
        2 * np.pi * (fid_cycles * tau[:, :, None, None] + fid_phase))
    angles = np.radians(angles)

    # Local rotation of each role's bone, about axes fixed in the rest frame.
    local: Dict[int, np.ndarray] = {}
    for k, role in enumerate(ROLES):
        side = -1.0 if role.endswith('_r') else 1.0  # mirror: outward is -x
        for v in body.slots.get(role, ()):
            flex = np.cross(rest_dir[v], [0.0, 0.0, 1.0])  # far end forward
            norm = np.linalg.norm(flex)
            flex = flex / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
            local[v] = (
                _axis_rotation(np.array([0.0, side, 0.0]), angles[:, :, k, SWING])
                @ _axis_rotation(np.array([0.0, 0.0, side]), angles[:, :, k, ABD])
                @ _axis_rotation(flex, angles[:, :, k, FLEX]))

    # Forward kinematics, root first: [N, T, V, 3]. A joint without a local
    # rotation shares its parent's global rotation (no copy).
    rot: Dict[int, np.ndarray] = {body.root: np.eye(3)}
    pos = np.empty((N, T, V, 3))
    pos[:, :, body.root] = body.rest[body.root]
    for v in body.order[1:]:
        p = body.parent[v]
        rot[v] = rot[p] @ local[v] if v in local else rot[p]
        pos[:, :, v] = pos[:, :, p] + bone_len[:, None, v, None] * (
            rot[v] @ rest_dir[v])
    if body.human:
        pos[..., 1] -= pos[..., 1].min(axis=2, keepdims=True)  # feet on the floor

    # Viewpoint: facing the camera (yaw pi) give or take 180 * d degrees,
    # tilted up to 10 * d degrees, shifted up to 0.3 * d (metres) sideways.
    yaw = np.pi + rng.uniform(-1, 1, N) * np.pi * d
    tilt = np.radians(10.0 * d)
    view = _yaw_tilt(yaw, rng.uniform(-1, 1, N) * tilt, rng.uniform(-1, 1, N) * tilt)
    shift = rng.uniform(-1, 1, (N, 3)) * 0.3 * d * height / 1.7
    shift[:, 1] = 0.0
    pos = np.einsum('nij,ntvj->ntvi', view, pos) + shift[:, None, None, :]
    sigma = (0.002 + 0.018 * d) * height / 1.7
    jitter = rng.normal(0, sigma, pos.shape)  # drawn either way: same stream
    if noise:
        pos = pos + jitter
    return pos.astype(np.float32)


def _check_int(arg: str, value, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or value < low or (high is not None and value > high):
        bound = f'in {low}..{high}' if high is not None else f'>= {low}'
        raise ValueError(f"Expected '{arg}' to be an integer {bound} "
                         f"(got {value!r})")
    return int(value)


class SyntheticSkeletonActions(SkeletonDataset):
    r"""A procedurally generated skeleton action dataset, the project's
    default: deterministic from ``seed``, generated in seconds on first use,
    nothing to download.

    Actions are joint-angle trajectories on ten body parts of a real layout
    (see :obj:`SYNTHETIC_ACTIONS`), turned into joint positions by forward
    kinematics over the bone tree, so bone lengths are constant within a
    sequence. Eight of the ten default classes come in pairs that share
    every motion primitive and differ only in how neighbouring limbs are
    coordinated (``jumping_jacks`` / ``alternate_jacks``, ``arm_circles`` /
    ``alternate_circles``, ``punch`` / ``pull``, ``kick`` / ``knee_lift``);
    since every sequence starts at a random phase, such classes have nearly
    the same mean pose and a linear model on raw coordinates confuses them,
    while spatio-temporal convolutions over a few hops of the skeleton tell
    them apart. For a human layout (``'ntu'``, ``'kinect_v1'``,
    ``'sbu'``, ...) the rest pose is a standing adult in metres; other
    layouts get a planar drawing of their bone tree and the root's largest
    branches stand in for the limbs.

    Nuisances, all scaled by ``difficulty`` (``d``): subjects' size and bone
    proportions, tempo (speed up to :math:`e^{\pm 0.35 d}`) and smooth time
    warping, rotation about the vertical axis (up to :math:`\pm 180 d`
    degrees) and tilt (up to :math:`\pm 10 d`), a sideways shift, sensor
    noise (:math:`\sigma = 2 + 18 d` mm), jitter of amplitudes and phases,
    idle fidgeting, and a faint copy of another class's motion (weight
    :math:`0.35 d`), which makes the classes overlap.

    The split follows a cross-subject protocol: ``num_samples // 3`` test
    sequences by subjects 11 to 15, the others by subjects 1 to 10; classes
    are balanced within each split. Body 0 acts; further bodies
    (``num_bodies > 1``) are all zero, as in the single-person actions of
    NTU RGB+D, so a model sees the same ``[M * V, T, C]`` input as on the real
    data.

    Every sequence is a graph with ``x`` of shape
    ``[num_bodies * V, num_frames, 3]``, ``edge_index``, ``y``, ``length``
    (``num_frames``), ``subject`` and ``source``
    (``'synthetic/<split>/<index>'``).

    **STATS (defaults):**

    .. list-table::
        :widths: 10 10 10 10 10
        :header-rows: 1

        * - #sequences
          - #classes
          - #bodies x #joints
          - #frames
          - #subjects
        * - 900 (600 train, 300 test)
          - 10 (up to 18)
          - 2 x 25 (``'ntu'``)
          - 32
          - 15 (10 train, 5 test)

    Args:
        root (str): Root directory; the generated data goes to
            ``root/processed/``.
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        num_classes (int, optional): The first ``num_classes`` actions of
            :obj:`SYNTHETIC_ACTIONS`, 2 to 18. (default: :obj:`10`)
        num_samples (int, optional): Sequences over both splits, at least 3.
            (default: :obj:`900`)
        num_frames (int, optional): Frames per sequence. (default: :obj:`32`)
        layout (str or SkeletonLayout, optional): The skeleton.
            (default: :obj:`'ntu'`)
        num_bodies (int, optional): Bodies per sequence. (default:
            :obj:`None`, the layout's body count)
        difficulty (float, optional): Nuisance and overlap level in
            ``[0, 1]``. (default: :obj:`0.5`)
        seed (int, optional): Random seed (non-negative). (default: :obj:`0`)
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-generate the dataset.
            (default: :obj:`False`)
    """
    name = 'synthetic'
    layout = NTU
    class_names = SYNTHETIC_CLASSES[:10]
    total_classes = 10
    num_sequences = '900 (default)'
    protocols = 'cross-subject (subjects 1-10 train, 11-15 test)'
    raw_layout = 'nothing (generated from the arguments)'
    obtain = 'Generated on first use; nothing to download.'

    def __init__(self, root: str, split: str = 'train', num_classes: int = 10,
                 num_samples: int = 900, num_frames: int = 32,
                 layout: LayoutLike = 'ntu', num_bodies: Optional[int] = None,
                 difficulty: float = 0.5, seed: int = 0,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False) -> None:
        self.split = check_choice('split', split, ('train', 'test'))
        num_classes = _check_int('num_classes', num_classes, 2,
                                 len(SYNTHETIC_ACTIONS))
        self.num_samples = _check_int('num_samples', num_samples, 3)
        self.num_frames = check_num_frames(num_frames)
        base = get_layout(layout)
        if num_bodies is None:
            num_bodies = base.num_bodies
        self.layout = base.with_bodies(_check_int('num_bodies', num_bodies, 1))
        if isinstance(difficulty, bool) or not isinstance(
                difficulty, (int, float, np.integer, np.floating)) \
                or not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"Expected 'difficulty' to be a number in [0, 1] "
                             f"(got {difficulty!r})")
        self.difficulty = float(difficulty)
        self.seed = _check_int('seed', seed, 0)
        self.class_names = SYNTHETIC_CLASSES[:num_classes]
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload)

    @property
    def raw_file_names(self) -> List[str]:
        return []

    def download(self) -> None:
        pass  # generated in read_data_list()

    @property
    def processed_file_names(self) -> List[str]:
        layout = self.layout.with_bodies(1)
        tag = layout.name
        if LAYOUTS.get(layout.name, None) is None \
                or LAYOUTS[layout.name].with_bodies(1) != layout:
            # A custom layout: its name alone does not identify the bones.
            blob = json.dumps(layout.to_dict(), sort_keys=True).encode()
            tag += '-' + hashlib.sha1(blob).hexdigest()[:8]
        return [self.processed_name(
            tag, f'C{len(self.class_names)}', f'N{self.num_samples}',
            f'T{self.num_frames}', f'M{self.layout.num_bodies}',
            f'd{self.difficulty!r}', f's{self.seed}')]

    def read_data_list(self) -> List[Data]:
        C = len(self.class_names)
        num_test = self.num_samples // 3
        num_train = self.num_samples - num_test
        labels, subjects, sources = [], [], []
        for split, n, first, count in (
                ('train', num_train, 1, NUM_TRAIN_SUBJECTS),
                ('test', num_test, NUM_TRAIN_SUBJECTS + 1,
                 NUM_SUBJECTS - NUM_TRAIN_SUBJECTS)):
            i = np.arange(n)
            labels.append(i % C)
            subjects.append(first + (i // C) % count)  # every subject does every class
            sources += [f'synthetic/{split}/{k}' for k in range(n)]
        labels_np, subjects_np = np.concatenate(labels), np.concatenate(subjects)
        seq = synthesize_actions(labels_np, subjects_np, layout=self.layout,
                                 num_classes=C, num_frames=self.num_frames,
                                 difficulty=self.difficulty, seed=self.seed)
        M = self.layout.num_bodies
        full = np.zeros((seq.shape[0], seq.shape[1], M) + seq.shape[2:],
                        dtype=np.float32)  # [N, T, M, V, 3]
        full[:, :, 0] = seq
        return [skeleton_to_data(full[k], self.layout, int(labels_np[k]),
                                 subject=int(subjects_np[k]), source=sources[k])
                for k in range(len(sources))]

    def split_mask(self) -> Tensor:
        train = self.all_meta('subject') <= NUM_TRAIN_SUBJECTS
        return train if self.split == 'train' else ~train
