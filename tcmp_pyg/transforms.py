r"""Skeleton transforms (``BaseTransform`` subclasses) on ``data.x`` of shape
``[M * V, T, C]`` (node-first, body-major: node ``m * V + v`` is joint ``v`` of
body ``m``; ``C`` starts with the ``x, y, z`` coordinates).

A body that is absent in a frame (all its coordinates zero, as the datasets
pad a missing second person) is left at zero by :class:`CenterJoint`, so
padding never turns into a spurious skeleton.

Typical use::

    from torch_geometric.transforms import Compose
    transform = Compose([CenterJoint('sbu'), ScaleNormalize('sbu'),
                         RandomRotation3D(15.0), JointToBone('sbu')])
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from tcmp_pyg.layouts import LayoutLike, SkeletonLayout, get_layout


def resample_frames(x: Tensor, num_frames: int, dim: int = 1) -> Tensor:
    r"""Resamples a sequence to ``num_frames`` frames by linear interpolation.

    The first and last frames are kept; a one-frame sequence is repeated.

    Args:
        x (Tensor): Any tensor with time along ``dim``.
        num_frames (int): Output length (>= 1).
        dim (int, optional): The time dimension. (default: :obj:`1`)
    """
    if int(num_frames) < 1:
        raise ValueError(f"Expected 'num_frames' >= 1 (got {num_frames})")
    T = x.size(dim)
    if T < 1:
        raise ValueError("Cannot resample a sequence with no frame")
    if T == num_frames:
        return x
    x = x.movedim(dim, 0)
    if T == 1:
        out = x.expand(num_frames, *x.shape[1:]).clone()
    else:
        pos = torch.linspace(0, T - 1, num_frames, dtype=torch.float64)
        lo = pos.floor().long().clamp(max=T - 2)
        frac = (pos - lo.double()).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        # index_select, not x[lo]: advanced indexing goes multi-threaded on
        # small tensors and is 1000x slower when the CPU is busy.
        out = x.index_select(0, lo) * (1 - frac) + x.index_select(0, lo + 1) * frac
    return out.movedim(0, dim)


def bone_parents(layout: LayoutLike) -> Tensor:
    r"""The parent of every joint: its bone neighbour one hop closer to the
    centre joint (the smallest index if several); the centre is its own parent.

    Args:
        layout (str or SkeletonLayout): The skeleton.

    Returns:
        LongTensor of shape ``[V]``.
    """
    layout = get_layout(layout)
    hops = layout.hop_distance().tolist()
    parent = list(range(layout.num_joints))
    for a, b in sorted(layout.bones):
        for child, par in ((a, b), (b, a)):
            if hops[par] == hops[child] - 1 and parent[child] == child:
                parent[child] = par
    return torch.tensor(parent, dtype=torch.long)


def _bodies(x: Tensor, layout: SkeletonLayout, name: str) -> Tensor:
    """``x`` of shape ``[M * V, T, C]`` viewed as ``[M, V, T, C]``."""
    if x.dim() != 3:
        raise ValueError(f"{name}: expected 'x' of shape [M * V, T, C] "
                         f"(got shape {tuple(x.shape)})")
    V = layout.num_joints
    if x.size(0) % V != 0:
        raise ValueError(f"{name}: expected the node count to be a multiple of "
                         f"the {V} joints of layout '{layout.name}' "
                         f"(got {x.size(0)} nodes)")
    return x.view(x.size(0) // V, V, x.size(1), x.size(2))


def _present(xb: Tensor) -> Tensor:
    """``[M, T]``: whether body ``m`` has any non-zero coordinate in frame ``t``."""
    return (xb != 0).any(dim=3).any(dim=1)


class CenterJoint(BaseTransform):
    r"""Translates the skeletons so that the centre joint of the layout sits
    at the origin.

    Args:
        layout (str or SkeletonLayout): The skeleton (its ``center`` joint).
        mode (str, optional): :obj:`'first_frame'` subtracts the centre joint
            of the first frame in which the reference body is present from
            every frame (the trajectory is kept); :obj:`'per_frame'` subtracts
            each frame's own centre joint (the trajectory is removed).
            (default: :obj:`'first_frame'`)
        per_body (bool, optional): If :obj:`True`, each body is centred on its
            own centre joint; otherwise every body is shifted by the centre of
            body 0, which keeps the relative position of interacting people.
            (default: :obj:`False`)

    Frames in which a body is absent (all zero) stay zero; channels after
    ``x, y, z`` are left alone.
    """
    def __init__(self, layout: LayoutLike, mode: str = 'first_frame',
                 per_body: bool = False) -> None:
        if mode not in ('first_frame', 'per_frame'):
            raise ValueError(f"Expected 'mode' to be 'first_frame' or "
                             f"'per_frame' (got {mode!r})")
        self.layout = get_layout(layout)
        self.mode = mode
        self.per_body = bool(per_body)

    def forward(self, data: Data) -> Data:
        xb = _bodies(data.x, self.layout, type(self).__name__)  # [M, V, T, C]
        present = _present(xb)  # [M, T]
        center = xb[:, self.layout.center].clone()  # [M, T, C]
        center[..., 3:] = 0  # only x, y, z are positions
        ref_present = present if self.per_body else present[:1].expand_as(present)
        if self.mode == 'per_frame':
            ref = center if self.per_body else center[:1].expand_as(center)
        else:
            # Centre of the first frame in which the reference body is present.
            first = ref_present.float().argmax(dim=1)  # [M]
            ref = center[torch.arange(center.size(0)), first]  # [M, C]
            if not self.per_body:
                ref = ref[:1].expand_as(ref)
            ref = ref.unsqueeze(1).expand_as(center)  # [M, T, C]
            ref_present = ref_present.any(dim=1, keepdim=True).expand_as(present)
        shift = ref * (present & ref_present).unsqueeze(-1).to(ref.dtype)
        data.x = (xb - shift.unsqueeze(1)).reshape_as(data.x)
        return data

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.layout.name}, mode={self.mode}, '
                f'per_body={self.per_body})')


class ScaleNormalize(BaseTransform):
    r"""Scales a sequence so that its mean bone length is one.

    The mean runs over every bone of every present body in every frame, so
    one factor scales the whole sequence (relative sizes of bodies and their
    motion are kept). A sequence without any bone length is left unchanged.
    Scaling is about the origin: apply :class:`CenterJoint` first.

    Args:
        layout (str or SkeletonLayout): The skeleton (its bones).
    """
    def __init__(self, layout: LayoutLike) -> None:
        self.layout = get_layout(layout)

    def forward(self, data: Data) -> Data:
        xb = _bodies(data.x, self.layout, type(self).__name__)  # [M, V, T, C]
        bones = torch.tensor(self.layout.bones, dtype=torch.long).view(-1, 2)
        pos = xb[..., :3]
        length = (pos.index_select(1, bones[:, 0])
                  - pos.index_select(1, bones[:, 1])).norm(dim=-1)  # [M, E, T]
        present = _present(xb).unsqueeze(1).expand_as(length)
        if present.any():
            scale = length[present].mean()
            if scale > 0:
                data.x = data.x / scale
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.layout.name})'


def rotation_matrix(angles: Tensor) -> Tensor:
    r"""The rotation :math:`R_z R_y R_x` for angles (radians) about x, y, z.

    Args:
        angles (Tensor): Shape ``[3]``.

    Returns:
        Tensor of shape ``[3, 3]``.
    """
    cx, cy, cz = torch.cos(angles).tolist()
    sx, sy, sz = torch.sin(angles).tolist()
    rx = torch.tensor([[1., 0., 0.], [0., cx, -sx], [0., sx, cx]])
    ry = torch.tensor([[cy, 0., sy], [0., 1., 0.], [-sy, 0., cy]])
    rz = torch.tensor([[cz, -sz, 0.], [sz, cz, 0.], [0., 0., 1.]])
    return rz @ ry @ rx


class RandomRotation3D(BaseTransform):
    r"""Rotates the ``x, y, z`` coordinates of a sequence about the origin by
    random angles (augmentation); one rotation per call, shared by all
    frames and bodies.

    Args:
        degrees (float or (float, float, float)): Angles about the x, y and z
            axes are drawn uniformly from ``[-d, d]`` degrees.
        generator (torch.Generator, optional): Source of randomness, for
            reproducible augmentation. (default: :obj:`None`, the global RNG,
            seeded by :func:`torch.manual_seed`)
    """
    def __init__(self, degrees: Union[float, Sequence[float]] = 15.0,
                 generator: Optional[torch.Generator] = None) -> None:
        if isinstance(degrees, (int, float)):
            degrees = (float(degrees),) * 3
        degrees = tuple(float(d) for d in degrees)
        if len(degrees) != 3 or any(d < 0 for d in degrees):
            raise ValueError(f"Expected 'degrees' to be a non-negative number "
                             f"or three of them (got {degrees})")
        self.degrees: Tuple[float, float, float] = degrees  # type: ignore[assignment]
        self.generator = generator

    def forward(self, data: Data) -> Data:
        x = data.x
        if x.dim() != 3 or x.size(-1) < 3:
            raise ValueError(f"{type(self).__name__}: expected 'x' of shape "
                             f"[N, T, C] with C >= 3 (got {tuple(x.shape)})")
        u = torch.rand(3, generator=self.generator, dtype=torch.float64)
        max_rad = torch.tensor(self.degrees, dtype=torch.float64) * math.pi / 180
        rot = rotation_matrix((2 * u - 1) * max_rad).to(x.dtype)
        xyz = x[..., :3] @ rot.t()
        data.x = torch.cat([xyz, x[..., 3:]], dim=-1)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}(degrees={self.degrees})'


def _reorder_bodies(data: Data, layout: SkeletonLayout, name: str,
                    permutation: Callable[[int], Tensor]) -> Data:
    """Puts the bodies present in some frame in the order
    ``permutation(count)``; padded (all-zero) bodies stay where they are."""
    xb = _bodies(data.x, layout, name)  # [M, V, T, C]
    present = _present(xb).any(dim=1).nonzero().view(-1)  # [P]
    if present.numel() < 2:
        return data
    order = torch.arange(xb.size(0))
    order[present] = present[permutation(present.numel())]
    data.x = xb.index_select(0, order).reshape_as(data.x)
    return data


class RandomBodySwap(BaseTransform):
    r"""Puts the bodies of a sequence in a random order (augmentation for
    interactions, whose label does not depend on which person the sensor
    listed first).

    Only bodies present in some frame take part: a padded (all-zero) body
    stays where it is, so a one-person sample of a two-body layout keeps its
    person first. Apply it before :class:`CenterJoint`, which centres on
    body 0.

    Args:
        layout (str or SkeletonLayout): The skeleton (its joints per body).
        generator (torch.Generator, optional): Source of randomness.
            (default: :obj:`None`, the global RNG, seeded by
            :func:`torch.manual_seed`)
    """
    def __init__(self, layout: LayoutLike,
                 generator: Optional[torch.Generator] = None) -> None:
        self.layout = get_layout(layout)
        self.generator = generator

    def forward(self, data: Data) -> Data:
        return _reorder_bodies(data, self.layout, type(self).__name__,
                               lambda n: torch.randperm(n, generator=self.generator))

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.layout.name})'


class ReverseBodies(BaseTransform):
    r"""Reverses the order of the bodies present in a sequence (for two
    persons: swaps them). The deterministic counterpart of
    :class:`RandomBodySwap`, for test-time averaging over the person orders
    (see :func:`~tcmp_pyg.datasets.body_order_views`).

    A padded (all-zero) body stays where it is, as in
    :class:`RandomBodySwap`. Apply it before :class:`CenterJoint`.

    Args:
        layout (str or SkeletonLayout): The skeleton (its joints per body).
    """
    def __init__(self, layout: LayoutLike) -> None:
        self.layout = get_layout(layout)

    def forward(self, data: Data) -> Data:
        return _reorder_bodies(data, self.layout, type(self).__name__,
                               lambda n: torch.arange(n - 1, -1, -1))

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.layout.name})'


def _stream(data: Data, value: Tensor, cat: bool) -> Data:
    data.x = torch.cat([data.x, value], dim=-1) if cat else value
    return data


class JointToBone(BaseTransform):
    r"""Joint stream -> bone stream: every joint becomes the vector from its
    parent (one hop closer to the centre, see :func:`bone_parents`) to it;
    the centre joint's bone is zero.

    Args:
        layout (str or SkeletonLayout): The skeleton.
        cat (bool, optional): Append the bones to ``x`` along the channels
            instead of replacing it. (default: :obj:`False`)
    """
    def __init__(self, layout: LayoutLike, cat: bool = False) -> None:
        self.layout = get_layout(layout)
        self.parents = bone_parents(self.layout)
        self.cat = bool(cat)

    def forward(self, data: Data) -> Data:
        xb = _bodies(data.x, self.layout, type(self).__name__)  # [M, V, T, C]
        bone = (xb - xb.index_select(1, self.parents)).reshape_as(data.x)
        return _stream(data, bone, self.cat)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.layout.name}, cat={self.cat})'


class JointToMotion(BaseTransform):
    r"""Any stream -> its motion (velocity) stream: frame ``t`` becomes
    ``x[:, t + 1] - x[:, t]``; the last frame is zero.

    Args:
        cat (bool, optional): Append the motion to ``x`` along the channels
            instead of replacing it. (default: :obj:`False`)
    """
    def __init__(self, cat: bool = False) -> None:
        self.cat = bool(cat)

    def forward(self, data: Data) -> Data:
        x = data.x
        if x.dim() != 3:
            raise ValueError(f"{type(self).__name__}: expected 'x' of shape "
                             f"[N, T, C] (got {tuple(x.shape)})")
        motion = torch.zeros_like(x)
        motion[:, :-1] = x[:, 1:] - x[:, :-1]
        return _stream(data, motion, self.cat)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(cat={self.cat})'


class TemporalResample(BaseTransform):
    r"""Resamples ``data.x`` to ``num_frames`` frames (linear interpolation).

    Args:
        num_frames (int): Output number of frames.
    """
    def __init__(self, num_frames: int) -> None:
        self.num_frames = int(num_frames)

    def forward(self, data: Data) -> Data:
        data.x = resample_frames(data.x, self.num_frames, dim=1)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.num_frames})'



class RandomTemporalCrop(BaseTransform):
    r"""Crops a random window of a sequence and resamples it back to its
    length (augmentation: where the action starts and how fast it unfolds).

    The window covers a share of the frames drawn uniformly from
    ``[min_fraction, 1]`` and starts at a uniform position.

    Args:
        min_fraction (float): The shortest window, as a share of the frames,
            in ``(0, 1]``.
        generator (torch.Generator, optional): Source of randomness.
            (default: :obj:`None`, the global RNG)
    """
    def __init__(self, min_fraction: float = 0.8,
                 generator: Optional[torch.Generator] = None) -> None:
        if not 0.0 < min_fraction <= 1.0:
            raise ValueError(f"Expected 'min_fraction' in (0, 1] (got "
                             f"{min_fraction})")
        self.min_fraction = float(min_fraction)
        self.generator = generator

    def forward(self, data: Data) -> Data:
        x = data.x
        if x.dim() != 3:
            raise ValueError(f"{type(self).__name__}: expected 'x' of shape "
                             f"[N, T, C] (got {tuple(x.shape)})")
        T = x.size(1)
        u = torch.rand(2, generator=self.generator, dtype=torch.float64)
        share = self.min_fraction + (1.0 - self.min_fraction) * float(u[0])
        length = max(2, min(T, round(share * T)))
        start = int(float(u[1]) * (T - length + 1))
        data.x = resample_frames(x[:, start:start + length], T, dim=1)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}(min_fraction={self.min_fraction})'
