"""Plots: surviving subnetworks, per-layer density, skeletons, sweep curves.

matplotlib is imported inside the functions, so ``import tcmp_pyg`` (and this
module) never loads it. Every function builds a
:class:`matplotlib.figure.Figure` directly (not through ``pyplot``), so no
figure is left registered in a global state; it returns the figure and, given
``path``, saves it there.

Colours carry one meaning everywhere: :obj:`LIVE_COLOR` for live weights and
channels (accessible from the input *and* co-accessible to the output),
:obj:`DEAD_COLOR` for dead ones (kept, yet unable to change the output).
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Dict, Iterable, List, Mapping,
                    Optional, Sequence, Tuple, Union)

import numpy as np
from torch import Tensor, nn

from tcmp_pyg.layouts import LayoutLike, SkeletonLayout, get_layout
from tcmp_pyg.pruning.connectivity import (ConnectivityReport, connectivity,
                                           flow_layers)

if TYPE_CHECKING:  # only for annotations: matplotlib stays a lazy import
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PathLike = Union[str, os.PathLike]

LIVE_COLOR = '#1b9e77'      # live weights and channels
DEAD_COLOR = '#d62728'      # dead weights, and channels holding them
IDLE_COLOR = '#b0b0b0'      # channels with no kept weight at all
IDENTITY_COLOR = '#707070'  # residual / identity paths (no weights)
KEPT_COLOR = '#8da0cb'      # nominal kept weights (live or not)

METHOD_LABELS = {'mp': 'MP', 'tcmp': 'TCMP', 'random': 'random',
                 'mp-effective': 'MP + effective correction',
                 'dense': 'dense'}
METHOD_COLORS = {'tcmp': LIVE_COLOR, 'mp': '#d95f02', 'random': '#e7298a',
                 'mp-effective': '#7570b3'}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def _new_figure(figsize: Tuple[float, float]) -> 'Figure':
    from matplotlib.figure import Figure
    return Figure(figsize=figsize, layout='constrained')


def _save(fig: 'Figure', path: Optional[PathLike], dpi: int = 150) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)


def format_rate(fraction: float) -> str:
    r"""A fraction as a percentage with at most two decimals and no trailing
    zeros: ``0.99 -> '99 %'``, ``0.999 -> '99.9 %'``, ``0.9995 -> '99.95 %'``.
    """
    text = f'{100.0 * fraction:.2f}'.rstrip('0').rstrip('.')
    return f'{text} %'


def _check_positive_int(arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"Expected '{arg}' to be a positive integer "
                         f"(got {value!r})")
    return int(value)


def _arc(x0: float, y0: float, x1: float, y1: float, bulge: float,
         points: int = 16) -> np.ndarray:
    # A straight segment between adjacent columns; a sine-bulged curve over
    # longer spans, so a skip connection does not run through the columns it
    # skips.
    if bulge == 0.0:
        return np.array([[x0, y0], [x1, y1]])
    t = np.linspace(0.0, 1.0, points)
    return np.stack([x0 + (x1 - x0) * t,
                     y0 + (y1 - y0) * t + bulge * np.sin(np.pi * t)], axis=1)


# --------------------------------------------------------------------------
# Subnetwork
# --------------------------------------------------------------------------

@dataclass
class _Column:
    """One flow node drawn as a column of channel dots."""
    name: str
    size: int
    acc: np.ndarray        # bool [size]
    co: np.ndarray         # bool [size]
    has_dead: np.ndarray   # bool [size]: touches a dead kept weight
    degree: np.ndarray     # kept weights attached (in + out)
    shown: Optional[np.ndarray] = None  # channel indices drawn, ascending
    y: Optional[np.ndarray] = None      # their heights

    @property
    def live(self) -> np.ndarray:
        return self.acc & self.co


@dataclass
class _Layer:
    """A prunable flow edge: kept weights per channel pair."""
    src: int
    dst: int
    counts: np.ndarray  # int [C_in, C_out], kept weights summed over kernel axes
    kernel: int         # weights per channel pair (the most a count can be)
    live: np.ndarray    # bool [C_in, C_out], kept and live


def _analyse(model: nn.Module) -> Tuple[ConnectivityReport, List[_Column],
                                        List[_Layer], List[Any]]:
    # The connectivity report, one column per flow node, one _Layer per
    # prunable edge and the identity (one-to-one) edges.
    report = connectivity(model)
    flow = report.flow
    columns = [_Column(node.name, node.size, report.accessible[i].cpu().numpy(),
                       report.co_accessible[i].cpu().numpy(),
                       np.zeros(node.size, dtype=bool),
                       np.zeros(node.size, dtype=np.int64))
               for i, node in enumerate(flow.nodes)]
    layers, identities = [], []
    for e in flow.edges:
        if e.module is None:
            identities.append(e)
            continue
        mod = e.module
        m = (mod.weight_mask.detach() != 0).movedim((mod.in_axis, mod.out_axis),
                                                    (0, 1))
        counts = m.reshape(m.size(0), m.size(1), -1).sum(-1).cpu().numpy()
        kernel = max(1, mod.weight.numel() // max(1, m.size(0) * m.size(1)))
        kept = counts > 0
        live = kept & columns[e.src].acc[:, None] & columns[e.dst].co[None, :]
        dead = kept & ~live
        columns[e.src].has_dead |= dead.any(1)
        columns[e.dst].has_dead |= dead.any(0)
        columns[e.src].degree += counts.sum(1)
        columns[e.dst].degree += counts.sum(0)
        layers.append(_Layer(e.src, e.dst, counts, kernel, live))
    return report, columns, layers, identities


def _choose_channels(col: _Column, max_channels: int) -> np.ndarray:
    # Live channels first, then channels holding dead weights (both by how many
    # kept weights they carry), then an evenly spaced sample of the idle rest.
    if col.size <= max_channels:
        return np.arange(col.size)
    idx = np.arange(col.size)
    chosen: List[np.ndarray] = []
    left = max_channels
    busy = col.has_dead | (col.degree > 0)
    for tier in (col.live, ~col.live & busy):
        members = idx[tier]
        members = members[np.argsort(-col.degree[members], kind='stable')]
        chosen.append(members[:left])
        left -= len(chosen[-1])
    rest = idx[~col.live & ~busy]
    if left > 0 and len(rest):
        pick = np.unique(np.linspace(0, len(rest) - 1, min(left, len(rest)))
                         .round().astype(int))
        chosen.append(rest[pick])
    return np.sort(np.concatenate(chosen))


def _pick_lines(counts: np.ndarray, cap: int, rng: np.random.Generator
                ) -> np.ndarray:
    # The ``cap`` heaviest entries, ties in a fixed random order.
    if len(counts) <= cap:
        return np.arange(len(counts))
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order], kind='stable')]
    return np.sort(order[:cap])


def _legend_handles(present: Dict[str, bool]) -> list:
    from matplotlib.lines import Line2D
    h = []
    if present.get('live_channel'):
        h.append(Line2D([], [], ls='', marker='o', color=LIVE_COLOR,
                        label='live channel'))
    if present.get('dead_channel'):
        h.append(Line2D([], [], ls='', marker='s', color=DEAD_COLOR,
                        label='channel holding dead weights'))
    if present.get('idle_channel'):
        h.append(Line2D([], [], ls='', marker='s', color=IDLE_COLOR,
                        label='channel without kept weights'))
    if present.get('not_accessible'):
        h.append(Line2D([], [], ls='', marker='o', mfc='none', color='0.35',
                        label='not accessible (no path from input)'))
    if present.get('not_co_accessible'):
        h.append(Line2D([], [], ls='', marker='x', color='0.35',
                        label='not co-accessible (no path to output)'))
    if present.get('live_connections'):
        h.append(Line2D([], [], color=LIVE_COLOR, lw=1.5,
                        label='live connection'))
    if present.get('dead_connections'):
        h.append(Line2D([], [], color=DEAD_COLOR, lw=1.5,
                        label='dead connection'))
    if present.get('identity_connections'):
        h.append(Line2D([], [], color=IDENTITY_COLOR, lw=1, ls='--',
                        label='identity / residual'))
    return h


@dataclass
class _Lines:
    """Polylines of one kind with per-line widths and opacities."""
    segments: List[np.ndarray]
    widths: List[float]
    alphas: List[float]


def _weight_lines(columns: List[_Column], layers: List[_Layer],
                  max_connections: int) -> Tuple[Dict[str, _Lines],
                                                 Dict[str, int]]:
    # Lines for kept channel pairs between drawn channels, split into live and
    # dead, with the counts the sub-sampling note reports.
    rng = np.random.default_rng(0)
    # Widths and opacities compare across layers: a full channel pair of the
    # widest kernel (e.g. 9 temporal taps) is the thickest line.
    full = max(layer.kernel for layer in layers)
    lines = {kind: _Lines([], [], []) for kind in ('live', 'dead')}
    stats = dict(kept=0, live=0, drawn=0, live_drawn=0)
    for layer in layers:
        a, b = columns[layer.src], columns[layer.dst]
        stats['kept'] += int((layer.counts > 0).sum())
        stats['live'] += int(layer.live.sum())
        sub = layer.counts[np.ix_(a.shown, b.shown)]
        sub_live = layer.live[np.ix_(a.shown, b.shown)]
        i_live, o_live = np.nonzero(sub_live)
        i_dead, o_dead = np.nonzero((sub > 0) & ~sub_live)
        # Every live line when they fit; dead lines keep at least a quarter
        # of the budget so that a mostly-live layer still shows its dead part.
        n_dead = min(len(i_dead), max(max_connections - len(i_live),
                                      max_connections // 4))
        n_live = min(len(i_live), max_connections - n_dead)
        # Fainter lines where a layer draws many, so they do not merge into
        # a solid block.
        fade = float(np.clip(6.0 / math.sqrt(max(n_live + n_dead, 1)), 0.2, 1.0))
        span = layer.dst - layer.src
        bulge = 0.0 if span == 1 else -(0.08 * (span - 1) + 0.04)  # below
        for kind, ii, oo, cap in (('live', i_live, o_live, n_live),
                                  ('dead', i_dead, o_dead, n_dead)):
            c = sub[ii, oo]
            keep = _pick_lines(c, cap, rng)
            frac = c[keep] / full
            for i, o in zip(ii[keep], oo[keep]):
                lines[kind].segments.append(
                    _arc(layer.src, a.y[i], layer.dst, b.y[o], bulge))
            lines[kind].widths.extend(0.4 + 2.0 * frac)
            lines[kind].alphas.extend(fade * (0.35 + 0.65 * frac))
            stats['drawn'] += len(keep)
            if kind == 'live':
                stats['live_drawn'] += len(keep)
    return lines, stats


def _identity_lines(columns: List[_Column], identities: List[Any]) -> _Lines:
    # Residual and other one-to-one paths, between channels drawn on both ends;
    # fainter where the path is not live.
    where = [dict(zip(c.shown.tolist(), c.y.tolist())) for c in columns]
    out = _Lines([], [], [])
    for e in identities:
        a, b = columns[e.src], columns[e.dst]
        span = e.dst - e.src
        bulge = 0.0 if span == 1 else 0.06 * (span - 1) + 0.04  # above
        for s, d in zip(e.src_index.tolist(), e.dst_index.tolist()):
            if s in where[e.src] and d in where[e.dst]:
                out.segments.append(_arc(e.src, where[e.src][s], e.dst,
                                         where[e.dst][d], bulge))
                out.alphas.append(0.55 if a.acc[s] and b.co[d] else 0.2)
    return out


def _add_lines(ax: 'Axes', lines: _Lines, color: str, gid: str, zorder: int,
               **kwargs: Any) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba
    rgba = np.tile(to_rgba(color), (len(lines.segments), 1))
    rgba[:, 3] = lines.alphas
    ax.add_collection(LineCollection(lines.segments, colors=rgba, gid=gid,
                                     zorder=zorder, **kwargs))


def _draw_channels(ax: 'Axes', columns: List[_Column], size: float,
                   present: Dict[str, bool]) -> None:
    # Colour = live / holding dead weights / idle; marker = filled (live),
    # hollow (not accessible), cross (accessible, not co-accessible).
    pts: Dict[str, list] = {'filled': [], 'hollow': [], 'cross': []}
    cols: Dict[str, list] = {'filled': [], 'hollow': [], 'cross': []}
    for x, col in enumerate(columns):
        for ch, y in zip(col.shown, col.y):
            live, dead = col.live[ch], col.has_dead[ch]
            kind = 'filled' if live else 'hollow' if not col.acc[ch] else 'cross'
            pts[kind].append((x, y))
            cols[kind].append(LIVE_COLOR if live else DEAD_COLOR if dead
                              else IDLE_COLOR)
            present['live_channel' if live else 'dead_channel' if dead
                    else 'idle_channel'] = True
            if not live:
                present['not_accessible' if kind == 'hollow'
                        else 'not_co_accessible'] = True
    if pts['filled']:
        ax.scatter(*np.array(pts['filled']).T, s=size, c=cols['filled'],
                   marker='o', linewidths=0, zorder=4, gid='live_channels')
    if pts['hollow']:
        ax.scatter(*np.array(pts['hollow']).T, s=size, facecolors='none',
                   edgecolors=cols['hollow'], marker='o', linewidths=0.7,
                   zorder=4, gid='inaccessible_channels')
    if pts['cross']:
        ax.scatter(*np.array(pts['cross']).T, s=size, c=cols['cross'],
                   marker='x', linewidths=0.7, zorder=4,
                   gid='not_co_accessible_channels')


def _draw_subnetwork(ax: 'Axes', model: nn.Module, max_channels: int,
                     max_connections: int, legend: bool
                     ) -> Tuple[ConnectivityReport, Dict[str, bool]]:
    report, columns, layers, identities = _analyse(model)
    rows = min(max_channels, max(c.size for c in columns))
    step = 1.0 / max(rows - 1, 1)
    for col in columns:  # drawn channels in index order, centred vertically
        col.shown = _choose_channels(col, max_channels)
        n = len(col.shown)
        col.y = (np.arange(n) - (n - 1) / 2.0) * step

    present: Dict[str, bool] = {}
    lines, stats = _weight_lines(columns, layers, max_connections)
    identity = _identity_lines(columns, identities)
    if identity.segments:
        _add_lines(ax, identity, IDENTITY_COLOR, 'identity_connections', 1,
                   linewidths=0.6, linestyles=(0, (3, 2)))
        present['identity_connections'] = True
    # Dead under live: in a mostly dead MP mask the few live paths stay visible.
    for kind, color, zorder in (('dead', DEAD_COLOR, 2), ('live', LIVE_COLOR, 3)):
        if lines[kind].segments:
            _add_lines(ax, lines[kind], color, f'{kind}_connections', zorder,
                       linewidths=lines[kind].widths)
            present[f'{kind}_connections'] = True
    _draw_channels(ax, columns, float(np.clip(900.0 / rows, 3.0, 30.0)), present)

    # Axes dressing: node names below, live/all channel counts above the
    # highest arc, the sub-sampling note under the names.
    n_cols = len(columns)
    ys = [seg[:, 1] for group in (lines['live'], lines['dead'], identity)
          for seg in group.segments] + [c.y for c in columns if len(c.y)]
    low, top = min(float(y.min()) for y in ys), max(float(y.max()) for y in ys)
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(low - 0.04, top + 0.2)
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels([c.name for c in columns], rotation=90,
                       fontsize=7 if n_cols <= 20 else 6)
    ax.tick_params(axis='x', length=0)
    ax.set_yticks([])
    for side in ('left', 'right', 'top', 'bottom'):
        ax.spines[side].set_visible(False)
    for x, col in enumerate(columns):
        ax.text(x, top + 0.03, f'{int(col.live.sum())}/{col.size}',
                ha='center', va='bottom', fontsize=6, rotation=90,
                color=LIVE_COLOR if col.live.any() else '0.4')

    shown = sum(len(c.shown) for c in columns)
    total = sum(c.size for c in columns)
    if shown < total or stats['drawn'] < stats['kept']:
        note = (f'showing {shown:,} of {total:,} channels (at most '
                f'{max_channels} per column, live first) and '
                f"{stats['drawn']:,} of {stats['kept']:,} kept connections\n"
                f"(live connections: {stats['live_drawn']:,} of "
                f"{stats['live']:,} drawn; at most {max_connections} lines "
                f'per layer)')
    else:
        note = (f"all {total:,} channels and {stats['kept']:,} kept "
                f"connections ({stats['live']:,} live) shown")
    note += ('\nabove columns: live / all channels; line width: kept weights '
             'between two channels')
    ax.set_xlabel(note, fontsize=7, color='0.25', loc='left')
    ax.xaxis.label.set_gid('subsample_note')
    if legend:
        ax.legend(handles=_legend_handles(present), loc='upper left',
                  bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    return report, present


def plot_subnetwork(model: nn.Module, *, ax: Optional['Axes'] = None,
                    max_channels: int = 48, max_connections: int = 300,
                    path: Optional[PathLike] = None,
                    title: Optional[str] = None) -> 'Figure':
    r"""Draws the surviving network as columns of channels.

    One column per flow node (a layer's output, a residual sum...) in flow
    order, one dot per channel. A line joins two channels that a kept weight
    connects; its width and opacity grow with the number of kept weights
    between them (summed over kernel axes: partitions, temporal taps,
    nodes). Live connections and channels are drawn in :obj:`LIVE_COLOR`,
    dead ones in :obj:`DEAD_COLOR`; a hollow dot is a channel no input
    reaches, a cross one that reaches no output. Identity (residual) paths
    are dashed grey; paths that skip columns are drawn as arcs.

    Large models are sub-sampled and the figure says so: at most
    ``max_channels`` dots per column (live channels first, then those
    holding dead weights, then an even sample of the rest) and at most
    ``max_connections`` lines per layer (every live one when they fit;
    dead lines keep at least a quarter of that budget).

    Args:
        model (nn.Module): A model declaring its channel flow (masks are read
            from its ``weight_mask`` buffers).
        ax (Axes, optional): Draw into these axes. (default: a new figure)
        max_channels (int, optional): Most dots per column.
            (default: :obj:`48`)
        max_connections (int, optional): Most lines per layer.
            (default: :obj:`300`)
        path (str or PathLike, optional): Save the figure there.
        title (str, optional): Axes title. (default: the model's class and
            pruning rate)

    Returns:
        The :class:`~matplotlib.figure.Figure`.
    """
    max_channels = _check_positive_int('max_channels', max_channels)
    max_connections = _check_positive_int('max_connections', max_connections)
    if ax is None:
        n_cols = len(flow_layers(model)[0].nodes)
        fig = _new_figure((float(np.clip(2.8 + 0.38 * n_cols, 7.0, 18.0)), 5.5))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    report, _ = _draw_subnetwork(ax, model, max_channels, max_connections,
                                 legend=True)
    if title is None:
        title = (f'{type(model).__name__}, {format_rate(report.nominal_sparsity)}'
                 f' pruned: {_dead_text(report)}')
    ax.set_title(title, fontsize=10)
    _save(fig, path)
    return fig


def _dead_text(report: ConnectivityReport) -> str:
    if report.dead == report.kept > 0:  # disconnected: no output reachable
        return f'all {report.kept:,} kept weights dead'
    if report.dead == 0:
        text = '0 dead'
    else:
        text = f'{100.0 * report.dead / report.kept:.1f} % of kept weights dead'
    if not report.covers_outputs:  # consistent or not, some classes are lost
        text += (f', {report.reachable_outputs} of {report.num_outputs} '
                 f'outputs reachable')
    return text


def plot_mp_vs_tcmp(model_mp: nn.Module, model_tcmp: nn.Module, *,
                    labels: Tuple[str, str] = ('MP', 'TCMP'),
                    max_channels: int = 48, max_connections: int = 300,
                    path: Optional[PathLike] = None) -> 'Figure':
    r"""Two subnetworks side by side (see :func:`plot_subnetwork`), titled
    with their pruning rate and dead fraction, e.g.
    ``"MP 99 %: 87.3 % of kept weights dead"`` and ``"TCMP 99 %: 0 dead"``.

    Args:
        model_mp (nn.Module): The model pruned by magnitude.
        model_tcmp (nn.Module): The model pruned by TCMP.
        labels (Tuple[str, str], optional): Method names in the titles.
            (default: :obj:`('MP', 'TCMP')`)
        max_channels (int, optional): Most dots per column.
            (default: :obj:`48`)
        max_connections (int, optional): Most lines per layer.
            (default: :obj:`300`)
        path (str or PathLike, optional): Save the figure there.

    Returns:
        The :class:`~matplotlib.figure.Figure` with two axes.
    """
    max_channels = _check_positive_int('max_channels', max_channels)
    max_connections = _check_positive_int('max_connections', max_connections)
    n_cols = max(len(flow_layers(m)[0].nodes) for m in (model_mp, model_tcmp))
    fig = _new_figure((float(np.clip(1.0 + 0.7 * n_cols, 8.0, 20.0)), 6.0))
    axes = fig.subplots(1, 2)
    present: Dict[str, bool] = {}
    for ax, model, label in zip(axes, (model_mp, model_tcmp), labels):
        report, seen = _draw_subnetwork(ax, model, max_channels,
                                        max_connections, legend=False)
        present.update({k: v for k, v in seen.items() if v})
        ax.set_title(f'{label} {format_rate(report.nominal_sparsity)}: '
                     f'{_dead_text(report)}', fontsize=10)
    handles = _legend_handles(present)
    fig.legend(handles=handles, loc='outside lower center',
               ncol=min(len(handles), 4), fontsize=7, frameon=False)
    _save(fig, path)
    return fig


# --------------------------------------------------------------------------
# Layer density
# --------------------------------------------------------------------------

def plot_layer_density(report_or_model: Union[ConnectivityReport, nn.Module],
                       *, log: bool = True, ax: Optional['Axes'] = None,
                       path: Optional[PathLike] = None) -> 'Figure':
    r"""Kept (nominal), live and dead weights of every prunable layer as
    grouped bars, with each layer's total weights as a black tick.

    Args:
        report_or_model (ConnectivityReport or nn.Module): A report of
            :func:`~tcmp_pyg.pruning.connectivity`, or a model to analyse.
        log (bool, optional): Logarithmic y axis. (default: :obj:`True`)
        ax (Axes, optional): Draw into these axes. (default: a new figure)
        path (str or PathLike, optional): Save the figure there.

    Returns:
        The :class:`~matplotlib.figure.Figure`; its bar containers are, in
        order, the kept, live and dead counts.
    """
    report = report_or_model if isinstance(report_or_model, ConnectivityReport) \
        else connectivity(report_or_model)
    rows = report.layers
    n = len(rows)
    if ax is None:
        fig = _new_figure((float(np.clip(2.0 + 0.42 * n, 6.0, 16.0)), 4.5))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    x = np.arange(n)
    ax.bar(x - 0.27, [r.kept for r in rows], width=0.27, color=KEPT_COLOR,
           label='kept (nominal)')
    ax.bar(x, [r.live for r in rows], width=0.27, color=LIVE_COLOR,
           label='live')
    ax.bar(x + 0.27, [r.dead for r in rows], width=0.27, color=DEAD_COLOR,
           label='dead')
    ax.plot(x, [r.weights for r in rows], ls='', marker='_', ms=12, mew=1.5,
            color='black', label='all weights')
    if log:
        ax.set_yscale('log')
        ax.set_ylim(bottom=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([r.name for r in rows], rotation=60, ha='right',
                       rotation_mode='anchor', fontsize=7)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylabel('weights' + (' (log scale)' if log else ''))
    ax.set_title(f'Kept vs live weights per layer\nnominal sparsity '
                 f'{format_rate(report.nominal_sparsity)}, effective '
                 f'{format_rate(report.effective_sparsity)}: '
                 f'{_dead_text(report)}', fontsize=10)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0),
              frameon=False)
    ax.grid(axis='y', alpha=0.3, which='major')
    _save(fig, path)
    return fig


# --------------------------------------------------------------------------
# Skeletons
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Sweep results
# --------------------------------------------------------------------------

# One row per run of a sweep; only model, method, amount and test_accuracy are
# read, other columns are ignored.
RESULT_COLUMNS = ('model', 'method', 'amount', 'fold', 'seed', 'test_accuracy',
                  'nominal_sparsity', 'effective_sparsity', 'dead', 'kept',
                  'live')


def _result_rows(results: Any) -> List[Mapping[str, Any]]:
    # A CSV path, a pandas-like frame, a mapping of columns or rows of mappings.
    if isinstance(results, (str, os.PathLike)):
        with open(results, newline='') as f:
            return list(csv.DictReader(f))
    if hasattr(results, 'to_dict'):
        return list(results.to_dict('records'))
    if isinstance(results, Mapping):
        keys = list(results)
        columns = [list(results[k]) for k in keys]
        return [dict(zip(keys, vals)) for vals in zip(*columns)]
    if isinstance(results, Iterable):
        return [dict(r) for r in results]
    raise TypeError(f"Expected a CSV path, rows of mappings or a mapping of "
                    f"columns (got {type(results).__name__})")


def aggregate_results(results: Any) -> Dict[Tuple[str, str, float],
                                            Tuple[float, float, int]]:
    r"""Mean and standard deviation of the test accuracy per
    ``(model, method, amount)`` over runs (folds, seeds).

    Args:
        results: A CSV path with the sweep's columns (:obj:`RESULT_COLUMNS`),
            a pandas-like frame, a mapping of columns, or rows of mappings.

    Returns:
        ``{(model, method, amount): (mean, std, runs)}``; ``std`` is the
        sample standard deviation (0 for a single run). Rows with an empty
        or non-finite accuracy (failed runs) are left out.
    """
    rows = _result_rows(results)
    need = ('model', 'method', 'amount', 'test_accuracy')
    if rows:
        missing = [c for c in need if c not in rows[0]]
        if missing:
            raise ValueError(f"Results lack the columns {missing} (expected "
                             f"the sweep's columns {list(RESULT_COLUMNS)})")
    groups: Dict[Tuple[str, str, float], List[float]] = {}
    for row in rows:
        acc = row['test_accuracy']
        try:
            acc = float(acc)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(acc):
            continue
        amount = float(row['amount'])
        if not 0.0 <= amount < 1.0:
            raise ValueError(f"Expected 'amount' to be a pruning fraction in "
                             f"[0, 1) (got {row['amount']!r} for method "
                             f"'{row['method']}')")
        key = (str(row['model']), str(row['method']), amount)
        groups.setdefault(key, []).append(acc)
    out = {}
    for key, accs in groups.items():
        a = np.asarray(accs)
        std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        out[key] = (float(a.mean()), std, len(a))
    return out


def _shared_legend(fig, axes) -> None:
    # One legend for all models, below the axes, so no curve is covered.
    handles: Dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc='outside lower center',
               ncol=min(len(handles), 5), fontsize=8, frameon=False)


def plot_accuracy_vs_rate(results: Any, *, path: Optional[PathLike] = None
                          ) -> 'Figure':
    r"""Test accuracy against the pruning rate, one axes per model.

    One line per method with error bars (mean ± sample std over folds and
    seeds, see :func:`aggregate_results`); the x axis is the kept fraction
    on a log scale, reversed and labelled with pruning rates (``"90 %"``,
    ``"99 %"``, ``"99.9 %"``) so that the extreme rates are as readable as
    the mild ones. Runs with ``amount == 0`` are the dense reference, drawn
    as a horizontal line with a ±std band.

    Args:
        results: A CSV path with the sweep's columns (:obj:`RESULT_COLUMNS`),
            a pandas-like frame, a mapping of columns, or rows of mappings.
        path (str or PathLike, optional): Save the figure there.

    Returns:
        The :class:`~matplotlib.figure.Figure`; each method's curve is an
        errorbar container labelled with the method.
    """
    from matplotlib.ticker import NullFormatter, NullLocator, PercentFormatter

    stats = aggregate_results(results)
    if not stats:
        raise ValueError("plot_accuracy_vs_rate: no run with a test accuracy "
                         "in the results")
    models = sorted({k[0] for k in stats})
    fig = _new_figure((5.5 * len(models) + 0.5, 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(models), squeeze=False)[0])
    fraction = max(v[0] for v in stats.values()) <= 1.0
    for ax, model in zip(axes, models):
        mine = {k: v for k, v in stats.items() if k[0] == model}
        rates = sorted({k[2] for k in mine if k[2] > 0})
        methods = sorted({k[1] for k in mine if k[2] > 0},
                         key=lambda m: (m != 'mp', m != 'tcmp', m))
        for method in sorted({k[1] for k in mine if k[2] == 0}):
            mean, std, _ = mine[(model, method, 0.0)]
            ax.axhspan(mean - std, mean + std, color='0.85', zorder=0)
            ax.axhline(mean, color='0.3', ls='--', lw=1,
                       label=f'{METHOD_LABELS.get(method, method)} (no '
                             f'pruning; band: ± std)')
        for k, method in enumerate(methods):
            pts = np.array([(a, *mine[(model, method, a)][:2]) for a in rates
                            if (model, method, a) in mine], dtype=float)
            color = METHOD_COLORS.get(method, f'C{k}')
            ax.errorbar(1.0 - pts[:, 0], pts[:, 1], yerr=pts[:, 2],
                        marker='o', ms=4, capsize=3, lw=1.5, color=color,
                        label=METHOD_LABELS.get(method, method))
        ax.set_xscale('log')
        if rates:
            ax.set_xticks([1.0 - a for a in rates])
            ax.set_xticklabels([format_rate(a) for a in rates],
                               rotation=45 if len(rates) > 5 else 0)
            lo, hi = 1.0 - max(rates), 1.0 - min(rates)
            ax.set_xlim(hi * 1.5, lo / 1.5)  # reversed: more pruning rightwards
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        if fraction:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.set_xlabel('pruning rate (kept fraction, log scale)')
        ax.set_ylabel('test accuracy (mean ± std)')
        ax.set_title(model, fontsize=10)
        ax.grid(alpha=0.3)
    _shared_legend(fig, axes)
    _save(fig, path)
    return fig


# x axes of plot_accuracy_vs_cost: (column of the sweep's results, label).
COST_AXES = (('nonzero_params', 'nonzero parameters (kept weights, biases, '
              'norms; log scale)'),
             ('compact_macs', 'MACs per sequence of the compacted model (log scale)'))


def aggregate_costs(results: Any, column: str
                    ) -> Dict[Tuple[str, str, float], Tuple[float, float, float, int]]:
    r"""Mean cost and test accuracy per ``(model, method, amount)`` over the
    runs that record ``column`` (runs trained before costs were recorded, or
    disconnected models that have no compacted size, are left out).

    Args:
        results: As for :func:`aggregate_results`, with the cost columns of
            the sweep (``nonzero_params``, ``compact_params``,
            ``compact_macs``, ...).
        column (str): The cost column.

    Returns:
        ``{(model, method, amount): (mean cost, mean accuracy, std, runs)}``.
    """
    rows = []
    for row in _result_rows(results):
        try:
            cost = float(row.get(column, ''))
        except (TypeError, ValueError):
            continue
        if math.isfinite(cost):
            rows.append(dict(row, _cost=cost))
    accuracy = aggregate_results(rows)
    costs: Dict[Tuple[str, str, float], List[float]] = {}
    for row in rows:
        try:
            if not math.isfinite(float(row['test_accuracy'])):
                continue
        except (TypeError, ValueError):
            continue
        key = (str(row['model']), str(row['method']), float(row['amount']))
        costs.setdefault(key, []).append(row['_cost'])
    return {k: (float(np.mean(costs[k])), *accuracy[k]) for k in accuracy}


def plot_accuracy_vs_cost(results: Any, *, path: Optional[PathLike] = None
                          ) -> 'Figure':
    r"""Test accuracy against the absolute size of the model: one row of
    axes per model, against its nonzero parameters and against the MACs per
    sequence of its compacted model (log x), where the pruning *rate* hides
    how small a model really is.

    One line per pruning method through its rates (mean accuracy ± std over
    folds and seeds at the mean cost); each dense (unpruned) model is one
    marker. Runs without costs (the ``nonzero_params`` and ``compact_macs``
    columns of a sweep's ``results.csv``) are left out.

    Args:
        results: A CSV path with the sweep's columns, a pandas-like frame, a
            mapping of columns, or rows of mappings.
        path (str or PathLike, optional): Save the figure there.

    Returns:
        The :class:`~matplotlib.figure.Figure`; each method's curve is an
        errorbar container labelled with the method.
    """
    from matplotlib.ticker import PercentFormatter

    stats = {column: aggregate_costs(results, column) for column, _ in COST_AXES}
    if not any(stats.values()):
        raise ValueError("plot_accuracy_vs_cost: no run with a test accuracy and "
                         f"costs ({', '.join(c for c, _ in COST_AXES)}) in the results")
    models = sorted({k[0] for st in stats.values() for k in st})
    fig = _new_figure((11.0, 4.2 * len(models) + 0.5))
    axes = fig.subplots(len(models), len(COST_AXES), squeeze=False)
    for row_axes, model in zip(axes, models):
        for ax, (column, label) in zip(row_axes, COST_AXES):
            mine = {k: v for k, v in stats[column].items() if k[0] == model}
            fraction = all(v[1] <= 1.0 for v in mine.values())
            pruned = sorted({k[1] for k in mine if k[2] > 0},
                            key=lambda m: (m != 'mp', m != 'tcmp', m))
            for k, method in enumerate(pruned):
                pts = np.array(sorted(v[:3] for key, v in mine.items()
                                      if key[1] == method and key[2] > 0), dtype=float)
                ax.errorbar(pts[:, 0], pts[:, 1], yerr=pts[:, 2], marker='o',
                            ms=4, capsize=3, lw=1.5,
                            color=METHOD_COLORS.get(method, f'C{k}'),
                            label=METHOD_LABELS.get(method, method))
            for method in sorted({k[1] for k in mine if k[2] == 0}):
                x, mean, std, _ = mine[(model, method, 0.0)]
                ax.errorbar(np.array([x]), np.array([mean]), yerr=np.array([std]),
                            marker='*', ms=10, capsize=3,
                            color='0.3', ls='none',
                            label=f'{METHOD_LABELS.get(method, method)} (no pruning)')
            ax.set_xscale('log')
            if mine and fraction:
                ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
            ax.set_xlabel(label, fontsize=9)
            ax.set_ylabel('test accuracy (mean ± std)')
            ax.set_title(model, fontsize=10)
            ax.grid(alpha=0.3, which='both')
    _shared_legend(fig, axes.flat)
    _save(fig, path)
    return fig

__all__ = [
    'COST_AXES', 'DEAD_COLOR', 'LIVE_COLOR', 'RESULT_COLUMNS', 'aggregate_costs',
    'aggregate_results', 'animate_sequence', 'format_rate',
    'plot_accuracy_vs_cost', 'plot_accuracy_vs_rate',
    'plot_layer_density', 'plot_mp_vs_tcmp', 'plot_skeleton',
    'plot_subnetwork', 'rest_pose',
]
