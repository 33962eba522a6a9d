"""Skeleton frames and sequences drawn from their layout's bones."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from tcmp_pyg.layouts import LayoutLike, SkeletonLayout, get_layout
from tcmp_pyg.visualization._common import (PathLike, _check_positive_int, _new_figure,
                                            _save)

if TYPE_CHECKING:  # only for annotations: matplotlib stays a lazy import
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _sequence_array(data: Any, layout: SkeletonLayout) -> np.ndarray:
    # [M*V, T, C] (a Data's x, a Tensor or an array) -> [T, M, V, C]
    x = getattr(data, 'x', data)
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    M, V = layout.num_bodies, layout.num_joints
    if x.ndim != 3 or x.shape[0] != M * V or x.shape[2] not in (2, 3):
        raise ValueError(f"Expected 'x' of shape [{M} * {V}, T, 2 or 3] for "
                         f"layout '{layout.name}' ({M} bodies x {V} joints; "
                         f"got {tuple(x.shape)}; for data with appended "
                         f"motion or bone streams pass the coordinates, "
                         f"e.g. x[..., :3])")
    return x.reshape(M, V, x.shape[1], x.shape[2]).transpose(2, 0, 1, 3)


HEAD_NAMES = ('head', 'nose')


def _bone_tree(layout: SkeletonLayout
               ) -> Tuple[List[int], List[List[int]], List[int]]:
    # BFS from the centre joint: (visit order, children, parent); the layout
    # guarantees a single component.
    V = layout.num_joints
    neighbours: List[List[int]] = [[] for _ in range(V)]
    for a, b in layout.bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    children: List[List[int]] = [[] for _ in range(V)]
    parent = [-1] * V
    order, seen = [layout.center], {layout.center}
    for v in order:
        for u in sorted(neighbours[v]):
            if u not in seen:
                seen.add(u)
                parent[u] = v
                children[v].append(u)
                order.append(u)
    return order, children, parent


def _label_directions(p: np.ndarray, parent: List[int]) -> np.ndarray:
    # Unit offsets for joint labels: across the bone to the parent (labels of
    # a straight chain do not cover the next joints), on the side facing away
    # from the body's centre; to the right for the centre joint.
    centre = p.mean(0)
    out = np.tile([1.0, 0.0], (len(p), 1))
    for v, u in enumerate(parent):
        bone = p[v] - p[u] if u >= 0 else np.zeros(2)
        norm = float(np.hypot(*bone))
        if norm < 1e-9:
            continue
        n = np.array([-bone[1], bone[0]]) / norm
        side = float(np.dot(n, p[v] - centre))
        if side < -1e-9 or (abs(side) <= 1e-9 and n[0] < 0):
            n = -n
        out[v] = n
    return out


def _centre_heavy(children: List[int], sizes: List[int]) -> List[int]:
    # Largest subtree in the middle, the next ones alternately either side.
    out: List[int] = []
    for k, c in enumerate(sorted(children, key=lambda c: (-sizes[c], c))):
        if k % 2:
            out.append(c)
        else:
            out.insert(0, c)
    return out


def rest_pose(layout: LayoutLike) -> np.ndarray:
    r"""A canonical 2-D drawing of a layout's bone tree, to read joint
    numbers off: a radial tree around the centre joint (radius = bones from
    the centre, each subtree an angle proportional to its leaves).

    The branch holding a joint named ``head`` or ``nose`` points up and the
    heaviest other branch down, so human layouts look like a stick figure.

    Args:
        layout (str or SkeletonLayout): The skeleton.

    Returns:
        float array of shape ``[V, 2]`` (x right, y up).
    """
    layout = get_layout(layout)
    V, root = layout.num_joints, layout.center
    order, children, _ = _bone_tree(layout)
    leaves, sizes = [1] * V, [1] * V
    holds_head = [name in HEAD_NAMES for name in layout.joint_names]
    for v in reversed(order):
        if children[v]:
            leaves[v] = sum(leaves[c] for c in children[v])
            sizes[v] = 1 + sum(sizes[c] for c in children[v])
            holds_head[v] = holds_head[v] or any(holds_head[c]
                                                 for c in children[v])

    def arrange(v: int) -> List[int]:
        head = [c for c in children[v] if holds_head[c]][:1]
        rest = _centre_heavy([c for c in children[v] if c not in head], sizes)
        if v == root:
            return head + rest
        return rest[:len(rest) // 2] + head + rest[len(rest) // 2:]

    # Angles run clockwise, so the wedge after the head (up) branch is centred
    # down and the first/last branches sit on the sides.
    total = leaves[root]
    first = arrange(root)
    if first and holds_head[first[0]]:
        start = math.pi / 2 + math.pi * leaves[first[0]] / total
    else:
        before = sum(leaves[c] for c in first[:len(first) // 2])
        mid = leaves[first[len(first) // 2]] if first else 0
        start = -math.pi / 2 + 2 * math.pi * (before + mid / 2) / total
    wedge = {root: (start, start - 2 * math.pi)}
    depth = [0] * V
    pos = np.zeros((V, 2))
    for v in order:
        lo, hi = wedge[v]
        width = hi - lo
        for c in arrange(v):
            span = width * leaves[c] / leaves[v]
            wedge[c] = (lo, lo + span)
            lo += span
            depth[c] = depth[v] + 1
            mid = (wedge[c][0] + wedge[c][1]) / 2.0
            pos[c] = depth[c] * np.array([math.cos(mid), math.sin(mid)])
    return pos


BODY_COLORS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd')


def _draw_frame(ax: 'Axes', pts: np.ndarray, layout: SkeletonLayout,
                bodies: Sequence[int], projection: str, show_names: bool
                ) -> None:
    # pts: [M, V, C]. Per body: one collection of bones (gid 'bones'), one
    # scatter of joints; 3-D puts the data's y axis vertical.
    from matplotlib.collections import LineCollection
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    bones = np.array(layout.bones, dtype=np.int64).reshape(-1, 2)
    parent = _bone_tree(layout)[2]
    for k, m in enumerate(bodies):
        p = pts[m]
        color = BODY_COLORS[k % len(BODY_COLORS)]
        if projection == '3d':
            q = p[:, [0, 2, 1]]
            ax.add_collection3d(Line3DCollection(q[bones], colors=color,
                                                 linewidths=2, gid='bones'))
            ax.scatter(q[:, 0], q[:, 1], q[:, 2], color=color, s=14,
                       depthshade=False)
        else:
            ax.add_collection(LineCollection(p[bones][:, :, :2], colors=color,
                                             linewidths=2, capstyle='round',
                                             gid='bones'))
            ax.scatter(p[:, 0], p[:, 1], color=color, s=18, zorder=3)
        if not show_names:
            continue
        away = _label_directions(p[:, :2], parent)
        for v, name in enumerate(layout.joint_names):
            # Names on the first body only; further bodies get numbers.
            text = f'{v} {name}' if k == 0 else str(v)
            if projection == '3d':
                ax.text(q[v, 0], q[v, 1], q[v, 2], ' ' + text, fontsize=6)
                continue
            dx, dy = 5.0 * away[v]
            ax.annotate(text, (p[v, 0], p[v, 1]), xytext=(dx, dy),
                        textcoords='offset points', fontsize=6.5,
                        ha='center' if abs(dx) < 0.5 * abs(dy) else
                        'left' if dx > 0 else 'right',
                        va='bottom' if dy > 2 else 'top' if dy < -2
                        else 'center', color='0.15')


def _set_limits(ax: 'Axes', pts: np.ndarray, projection: str) -> None:
    # Equal aspect over every point given (so an animation does not jitter).
    flat = pts.reshape(-1, pts.shape[-1])
    lo, hi = flat.min(0), flat.max(0)
    mid, half = (lo + hi) / 2.0, max(float((hi - lo).max()) / 2.0, 1e-6) * 1.15
    if projection == '3d':
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[2] - half, mid[2] + half)
        ax.set_zlim(mid[1] - half, mid[1] + half)
        ax.set_xlabel('x')
        ax.set_ylabel('z')
        ax.set_zlabel('y')
    else:
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_aspect('equal')


def _check_projection(projection: str, channels: int) -> str:
    if projection not in ('2d', '3d'):
        raise ValueError(f"Expected 'projection' to be '2d' or '3d' "
                         f"(got {projection!r})")
    if projection == '3d' and channels < 3:
        raise ValueError(f"projection='3d' needs 3 coordinates per joint (the "
                         f"data has {channels}); use projection='2d'")
    return projection


def _bodies(coords: np.ndarray, body: Optional[int], layout: SkeletonLayout
            ) -> List[int]:
    # coords: [T, M, V, C]; bodies that are all zero (absent) are skipped.
    if body is not None:
        if not 0 <= body < layout.num_bodies:
            raise ValueError(f"Expected 'body' in 0..{layout.num_bodies - 1} "
                             f"for layout '{layout.name}' (got {body})")
        return [body]
    present = [m for m in range(layout.num_bodies) if np.any(coords[:, m] != 0)]
    return present or [0]


def plot_skeleton(data_or_layout: Any, *, layout: Optional[LayoutLike] = None,
                  frame: int = 0, body: Optional[int] = None,
                  ax: Optional['Axes'] = None, projection: str = '2d',
                  show_names: bool = True, path: Optional[PathLike] = None
                  ) -> 'Figure':
    r"""Draws one skeleton frame with its bones and numbered joint names.

    Given a layout only (a name or :class:`~tcmp_pyg.layouts.SkeletonLayout`),
    draws the canonical rest pose of :func:`rest_pose`, so the joint
    numbering can be read off; graph node ``m * V + v`` is joint ``v`` of
    body ``m``. Given a sequence, draws frame ``frame``: 2-D uses the first
    two coordinates (x right, y up), 3-D puts the data's y axis vertical.

    Args:
        data_or_layout: A :class:`~torch_geometric.data.Data` (or its ``x``)
            of shape ``[M * V, T, C]``, or a layout.
        layout (str or SkeletonLayout, optional): The data's layout (required
            with data).
        frame (int, optional): Frame to draw. (default: :obj:`0`)
        body (int, optional): Only this body. (default: every body that is
            not all zeros)
        ax (Axes, optional): Draw into these axes (3-D axes for
            ``projection='3d'``). (default: a new figure)
        projection (str, optional): ``'2d'`` or ``'3d'``. (default: ``'2d'``)
        show_names (bool, optional): Label joints with index and name.
            (default: :obj:`True`)
        path (str or PathLike, optional): Save the figure there.

    Returns:
        The :class:`~matplotlib.figure.Figure`.
    """
    if isinstance(data_or_layout, (str, SkeletonLayout)):
        lay = get_layout(data_or_layout)
        pose = rest_pose(lay)  # [V, 2], drawn at depth 0 in 3-D
        pts = np.concatenate([pose, np.zeros((len(pose), 1))], axis=1)[None]
        bodies = [0]
        title = (f"layout '{lay.name}': {lay.num_joints} joints"
                 + (f' x {lay.num_bodies} bodies (node m * {lay.num_joints} + '
                    f'joint)' if lay.num_bodies > 1 else '')
                 + f', centre {lay.center}')
    else:
        if layout is None:
            raise ValueError("plot_skeleton: pass layout=... with data (the "
                             "graph does not record its skeleton)")
        lay = get_layout(layout)
        coords = _sequence_array(data_or_layout, lay)
        T = coords.shape[0]
        if not -T <= frame < T:
            raise ValueError(f"Expected 'frame' in 0..{T - 1} (got {frame})")
        pts = coords[frame]
        bodies = _bodies(coords[[frame]], body, lay)
        title = f"'{lay.name}' frame {frame % T} (of {T})"
    _check_projection(projection, pts.shape[-1])
    if ax is None:
        fig = _new_figure((6.0, 6.0))
        ax = fig.add_subplot(projection='3d' if projection == '3d' else None)
    else:
        fig = ax.figure
    _draw_frame(ax, pts, lay, bodies, projection, show_names)
    _set_limits(ax, pts[bodies], projection)
    if projection == '2d':
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    _save(fig, path)
    return fig


def animate_sequence(data: Any, layout: LayoutLike, path: PathLike, *,
                     fps: int = 15, body: Optional[int] = None,
                     projection: str = '2d') -> 'Figure':
    r"""Writes a sequence as an animation: GIF (Pillow, always available) or
    MP4 (needs ``ffmpeg`` on the ``PATH``), chosen by the extension.

    Args:
        data: A :class:`~torch_geometric.data.Data` (or its ``x``) of shape
            ``[M * V, T, C]``.
        layout (str or SkeletonLayout): Its layout.
        path (str or PathLike): ``.gif`` or ``.mp4`` file to write.
        fps (int, optional): Frames per second. (default: :obj:`15`)
        body (int, optional): Only this body. (default: every body that is
            not all zeros)
        projection (str, optional): ``'2d'`` or ``'3d'``. (default: ``'2d'``)

    Returns:
        The :class:`~matplotlib.figure.Figure` (showing the last frame).

    Raises:
        ValueError: for another extension.
        RuntimeError: for ``.mp4`` without ffmpeg.
    """
    from matplotlib import animation

    fps = _check_positive_int('fps', fps)
    path = Path(path)
    ext = path.suffix.lower()
    if ext == '.gif':
        writer = animation.PillowWriter(fps=fps)
    elif ext == '.mp4':
        if not animation.writers.is_available('ffmpeg'):
            raise RuntimeError(f"Writing '{path.name}' needs ffmpeg on the PATH "
                               f"(not found); install ffmpeg or save a '.gif'")
        writer = animation.FFMpegWriter(fps=fps)
    else:
        raise ValueError(f"Expected a '.gif' or '.mp4' path (got '{path.name}')")
    lay = get_layout(layout)
    coords = _sequence_array(data, lay)
    _check_projection(projection, coords.shape[-1])
    bodies = _bodies(coords, body, lay)
    fig = _new_figure((4.5, 4.5))
    ax = fig.add_subplot(projection='3d' if projection == '3d' else None)
    T = coords.shape[0]

    def draw(t: int) -> list:
        ax.cla()
        _draw_frame(ax, coords[t], lay, bodies, projection, False)
        _set_limits(ax, coords[:, bodies], projection)
        if projection == '2d':
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"'{lay.name}' frame {t} (of {T})", fontsize=9)
        return []

    anim = animation.FuncAnimation(fig, draw, frames=T, blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=writer)
    return fig
