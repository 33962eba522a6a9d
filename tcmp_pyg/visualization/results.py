"""Sweep results: accuracy against the pruning rate and against the
absolute cost (nonzero parameters, compacted MACs) of the models."""
from __future__ import annotations

import csv
import math
import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from tcmp_pyg.visualization._common import (METHOD_COLORS, METHOD_LABELS, PathLike,
                                            format_rate, _new_figure, _save)

if TYPE_CHECKING:  # only for annotations: matplotlib stays a lazy import
    from matplotlib.figure import Figure


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
            full = method == 'dense'  # else a narrow dense rival, dense-wX
            if full:
                ax.axhspan(mean - std, mean + std, color='0.85', zorder=0)
            ax.axhline(mean, color='0.3' if full else '0.55', ls='--' if full else ':',
                       lw=1, label=f'{METHOD_LABELS.get(method, method)} (no '
                                   f'pruning{"; band: ± std" if full else ""})')
        for k, method in enumerate(methods):
            pts = np.array([(a, *mine[(model, method, a)][:2]) for a in rates
                            if (model, method, a) in mine], dtype=float)
            color = METHOD_COLORS.get(method, f'C{k}')
            ax.errorbar(1.0 - pts[:, 0], pts[:, 1], yerr=pts[:, 2],
                        marker='o', ms=4, capsize=3, lw=1.5, color=color,
                        label=METHOD_LABELS.get(method, method))
        if rates:
            lo, hi = 1.0 - max(rates), 1.0 - min(rates)
            # Limits before the log scale: one rate is a singular range.
            ax.set_xlim(hi * 1.5, lo / 1.5)  # reversed: more pruning rightwards
            ax.set_xscale('log')
            ax.set_xticks([1.0 - a for a in rates])
            ax.set_xticklabels([format_rate(a) for a in rates],
                               rotation=45 if len(rates) > 5 else 0)
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


def _is_narrow(method: str) -> bool:
    return method.startswith('dense-w')


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
    folds and seeds at the mean cost); the dense model is one marker, and the
    narrow dense rivals (methods ``dense-wX``, the preset at width ``X``
    trained from scratch) one dashed line through their widths. Runs without costs (the ``nonzero_params`` and ``compact_macs``
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
            if (model, 'dense', 0.0) in mine:
                x, mean, std, _ = mine[(model, 'dense', 0.0)]
                ax.errorbar(np.array([x]), np.array([mean]), yerr=np.array([std]),
                            marker='*', ms=10, capsize=3, color='0.3', ls='none',
                            label='dense (no pruning)')
            # The narrow dense rivals (dense-wX, trained from scratch): one
            # curve through the widths, the full width included.
            narrow = [v[:3] for key, v in mine.items()
                      if key[2] == 0 and _is_narrow(key[1])]
            if narrow:
                if (model, 'dense', 0.0) in mine:
                    narrow.append(mine[(model, 'dense', 0.0)][:3])
                pts = np.array(sorted(narrow), dtype=float)
                ax.errorbar(pts[:, 0], pts[:, 1], yerr=pts[:, 2], marker='s', ms=4,
                            capsize=3, lw=1.2, ls='--', color='0.3',
                            label='dense, narrower (from scratch)')
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
