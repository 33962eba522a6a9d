"""What every plot of :mod:`tcmp_pyg.visualization` shares: the colours
(one meaning everywhere), the method labels, and figure creation and saving.

:obj:`LIVE_COLOR` marks live weights and channels (accessible from the input
*and* co-accessible to the output), :obj:`DEAD_COLOR` dead ones (kept, yet
unable to change the output).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # only for annotations: matplotlib stays a lazy import
    from matplotlib.figure import Figure

PathLike = Union[str, os.PathLike]


LIVE_COLOR = '#1b9e77'      # live weights and channels
DEAD_COLOR = '#d62728'      # dead weights, and channels holding them
IDLE_COLOR = '#b0b0b0'      # channels with no kept weight at all
IDENTITY_COLOR = '#707070'  # residual / identity paths (no weights)
KEPT_COLOR = '#8da0cb'      # nominal kept weights (live or not)

METHOD_LABELS = {'mp': 'MP', 'tcmp': 'TCMP', 'random': 'random',
                 'mp-effective': 'MP + effective correction',
                 'mp-layer': 'MP, uniform per layer', 'mp-erk': 'MP, ERK',
                 'mp-lamp': 'MP, LAMP', 'synflow': 'SynFlow',
                 'channel': 'channel pruning (L1)',
                 'oneshot-lamp': 'one-shot LAMP + fine-tune',
                 'oneshot-tcmp': 'one-shot TCMP + fine-tune',
                 'dense': 'dense'}
METHOD_COLORS = {'tcmp': LIVE_COLOR, 'mp': '#d95f02', 'random': '#e7298a',
                 'mp-effective': '#7570b3', 'mp-layer': '#a6761d',
                 'mp-erk': '#e6ab02', 'mp-lamp': '#66a61e', 'synflow': '#1f78b4',
                 'channel': '#6a3d9a', 'oneshot-lamp': '#b15928',
                 'oneshot-tcmp': '#0b4f3f'}


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
