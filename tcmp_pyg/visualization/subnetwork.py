"""Surviving subnetworks (live and dead weights between channels) and
per-layer densities of a pruned model."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import numpy as np
from torch import nn

from tcmp_pyg.pruning.connectivity import (ConnectivityReport, connectivity,
                                           flow_layers)
from tcmp_pyg.visualization._common import (DEAD_COLOR, IDENTITY_COLOR, IDLE_COLOR,
                                            KEPT_COLOR, LIVE_COLOR, PathLike,
                                            format_rate, _arc, _check_positive_int,
                                            _new_figure, _save)

if TYPE_CHECKING:  # only for annotations: matplotlib stays a lazy import
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
