r"""Per-layer allocation of a budget of kept weights, and dense layers.

A magnitude method keeps the largest scores of each layer; what differs
between the classic baselines is how many each layer gets (its *quota*):

- ``'global'``: one top-:math:`k` over all scores together.
- ``'layer'``: the same kept fraction in every layer (Zhu & Gupta, 2017).
- ``'erk'``: Erdős–Rényi-kernel densities (RigL, `Evci et al., 2020
  <https://arxiv.org/abs/1911.11134>`_): the density of layer :math:`l` with
  weight shape :math:`(n_1, \dots, n_d)` is
  :math:`d_l = \min(1, \epsilon \frac{\sum_i n_i}{\prod_i n_i})`, with
  :math:`\epsilon` set so the kept weights meet the budget; a layer whose
  density would exceed 1 is made dense and :math:`\epsilon` found again over
  the others, until none exceeds 1.
- ``'lamp'``: layer-adaptive magnitude pruning (`Lee et al., ICLR 2021
  <https://arxiv.org/abs/2010.07611>`_): within a layer, the weight
  :math:`u` of rank :math:`r(u)` by decreasing magnitude scores
  :math:`\frac{w_u^2}{\sum_{r(v) \le r(u)} w_v^2}` (itself over itself and
  every larger weight of the layer); then one top-:math:`k` over these scores.

Fractional quotas are rounded by largest remainder (ties to the earlier
layer), so quotas add up to the budget exactly; within a layer the largest
scores are kept, ties broken by position, so every selection is deterministic.

Layers named in ``keep_dense`` keep every weight *inside* the budget: they get
their full size as quota and the rule shares the rest among the other layers.
Selections that rank all weights together (the consistent selection of TCMP
and ``mp-effective``) see them through :func:`dense_first`, scores above every
other one.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

from tcmp_pyg.pruning.connectivity import FlowLayer
from tcmp_pyg.pruning.select import top_order, topk_masks

ALLOCATIONS = ('global', 'layer', 'erk', 'lamp')


def largest_remainder(exact: Sequence[float], total: int,
                      caps: Sequence[int]) -> List[int]:
    """Integer counts adding up to ``total``, each at most its cap: the
    floors of ``exact`` plus one for the largest remainders (ties to the
    lower index).

    Args:
        exact (Sequence[float]): Fractional counts, adding up to ``total``.
        total (int): The sum to reach.
        caps (Sequence[int]): Upper bound of each count.
    """
    if total > sum(caps):
        raise ValueError(f"Cannot share {total} among counts capped at "
                         f"{list(caps)} (sum {sum(caps)})")
    counts = [max(0, min(int(math.floor(x)), c)) for x, c in zip(exact, caps)]
    order = sorted(range(len(counts)), key=lambda i: (counts[i] - exact[i], i))
    left = total - sum(counts)
    while left > 0:  # one pass unless rounding errors or caps intervene
        for i in order:
            if left > 0 and counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
    for i in reversed(order):  # float error only: the smallest remainders go
        while left < 0 and counts[i] > 0:
            counts[i] -= 1
            left += 1
    return counts


def layer_quotas(sizes: Sequence[int], budget: int) -> List[int]:
    """The same kept fraction of every layer (Zhu & Gupta), exactly
    ``budget`` in all."""
    total = sum(sizes)
    if total == 0:
        return [0] * len(sizes)
    return largest_remainder([budget * s / total for s in sizes], budget, sizes)


def erk_densities(shapes: Sequence[Sequence[int]], budget: int) -> List[float]:
    r"""Erdős–Rényi-kernel densities meeting ``budget`` kept weights:
    :math:`\min(1, \epsilon \sum_i n_i / \prod_i n_i)` per weight shape, layers
    over 1 made dense and :math:`\epsilon` found again (RigL).

    Args:
        shapes (Sequence[Sequence[int]]): The weight shape of every layer.
        budget (int): Kept weights in all, at most the total size.

    Returns:
        One density in ``[0, 1]`` per layer.
    """
    sizes = [math.prod(s) for s in shapes]
    if budget >= sum(sizes):
        return [1.0] * len(shapes)
    dense = [False] * len(shapes)
    while True:
        rest = budget - sum(n for n, d in zip(sizes, dense) if d)
        # sum_l eps * (sum(shape) / prod(shape)) * prod(shape) = rest
        divisor = sum(sum(s) for s, d in zip(shapes, dense) if not d)
        eps = rest / divisor if divisor > 0 else 0.0
        over = [not d and eps * sum(s) > n
                for s, n, d in zip(shapes, sizes, dense)]
        if not any(over):
            break
        # Capping raises eps for the others, so every layer over 1 stays over.
        dense = [d or o for d, o in zip(dense, over)]
    return [1.0 if d else eps * sum(s) / n if n else 0.0
            for s, n, d in zip(shapes, sizes, dense)]


def erk_quotas(shapes: Sequence[Sequence[int]], budget: int) -> List[int]:
    """Erdős–Rényi-kernel quotas (:func:`erk_densities` times the layer
    sizes), exactly ``budget`` in all."""
    sizes = [math.prod(s) for s in shapes]
    dens = erk_densities(shapes, budget)
    return largest_remainder([d * n for d, n in zip(dens, sizes)], budget, sizes)


def lamp_scores(scores: Sequence[Tensor]) -> List[Tensor]:
    r"""LAMP scores: in each layer, :math:`s_u^2` over the sum of :math:`s_v^2`
    for :math:`v` ranked at or above :math:`u` (by decreasing score, ties by
    position); the largest score of a layer gets 1, zeros get 0.

    Args:
        scores (Sequence[Tensor]): Non-negative scores (e.g. :math:`|w|`), one
            tensor per layer.

    Returns:
        Float64 tensors of the same shapes, each decreasing with the rank of
        its entry in its layer.
    """
    out = []
    for s in scores:
        sq = s.detach().reshape(-1).double() ** 2
        order = torch.argsort(sq, descending=True, stable=True)
        sorted_sq = sq[order]
        denom = torch.cumsum(sorted_sq, 0)  # itself and every larger one
        lamp = torch.where(denom > 0, sorted_sq / denom.clamp_min(1e-300),
                           torch.zeros_like(denom))
        out.append(torch.empty_like(sq).scatter_(0, order, lamp).view(s.shape))
    return out


def _global_counts(scores: Sequence[Tensor], budget: int) -> List[int]:
    """How many of each layer's entries are among the ``budget`` best of all."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    bounds = torch.tensor([0] + [s.numel() for s in scores]).cumsum(0)
    layer = torch.bucketize(top_order(flat, budget), bounds[1:].to(flat.device),
                            right=True)
    return torch.bincount(layer.cpu(), minlength=len(scores)).tolist()


def allocation_quotas(scores: Sequence[Tensor], budget: int,
                      allocation: str = 'global',
                      dense: Optional[Sequence[bool]] = None) -> List[int]:
    """Kept weights per layer under an allocation rule, exactly ``budget``.

    Args:
        scores (Sequence[Tensor]): One score tensor per layer, of the layer's
            weight shape (magnitudes for ``'global'`` and ``'lamp'``; only
            the sizes or shapes matter to ``'layer'`` and ``'erk'``).
        budget (int): Kept weights in all.
        allocation (str, optional): One of :obj:`ALLOCATIONS`.
            (default: :obj:`'global'`)
        dense (Sequence[bool], optional): Layers kept whole; their sizes count
            inside ``budget`` and the rule shares the rest among the others.

    Returns:
        One count per layer, adding up to ``min(budget, total)``.
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"Expected 'allocation' to be one of {ALLOCATIONS} "
                         f"(got {allocation!r})")
    dense = list(dense) if dense is not None else [False] * len(scores)
    if len(dense) != len(scores):
        raise ValueError(f"Expected one 'dense' flag per layer ({len(scores)}) "
                         f"(got {len(dense)})")
    sizes = [s.numel() for s in scores]
    budget = min(int(budget), sum(sizes))
    rest = budget - sum(n for n, d in zip(sizes, dense) if d)
    if rest < 0:
        raise ValueError(f"The dense layers hold {budget - rest} weights, more "
                         f"than the budget of {budget}")
    free = [i for i, d in enumerate(dense) if not d]
    sub = [scores[i] for i in free]
    if not free:
        counts: List[int] = []
    elif allocation == 'global':
        counts = _global_counts([s.detach().float() for s in sub], rest)
    elif allocation == 'layer':
        counts = layer_quotas([sizes[i] for i in free], rest)
    elif allocation == 'erk':
        counts = erk_quotas([tuple(s.shape) for s in sub], rest)
    else:
        counts = _global_counts(lamp_scores(sub), rest)
    quotas = list(sizes)
    for i, c in zip(free, counts):
        quotas[i] = c
    return quotas


def allocation_masks(scores: Sequence[Tensor], budget: int,
                     allocation: str = 'global',
                     dense: Optional[Sequence[bool]] = None) -> List[Tensor]:
    """Bool masks keeping, in each layer, its largest scores up to its quota
    (:func:`allocation_quotas`): exactly ``budget`` in all.

    Args: see :func:`allocation_quotas`.

    Returns:
        One bool mask per layer, of the score's shape.
    """
    if allocation == 'global':  # one pass: the same masks as the quotas give
        if dense is not None and len(dense) != len(scores):
            raise ValueError(f"Expected one 'dense' flag per layer "
                             f"({len(scores)}) (got {len(dense)})")
        lifted = dense_first(scores, dense) if dense is not None else scores
        return topk_masks(lifted, budget)
    quotas = allocation_quotas(scores, budget, allocation, dense)
    return [topk_masks([s], q)[0] for s, q in zip(scores, quotas)]


def dense_first(scores: Sequence[Tensor], dense: Sequence[bool]) -> List[Tensor]:
    """``scores`` with every entry of the dense layers above every other
    score (finite: ``2 * max + 1``), so a selection over all layers takes
    them first."""
    if not any(dense):
        return list(scores)
    others = [s.detach().max() for s, d in zip(scores, dense) if not d and s.numel()]
    top = float(torch.stack(others).max()) if others else 0.0
    lift = 2.0 * max(top, 0.0) + 1.0
    return [torch.full_like(s, lift) if d else s for s, d in zip(scores, dense)]


def dense_layers(layers: Sequence[FlowLayer],
                 names: Union[str, Sequence[str]], owner: str = 'model'
                 ) -> List[bool]:
    """Flags of the flow layers named in ``names`` (``FlowLayer.name``).

    Args:
        layers (Sequence[FlowLayer]): The model's prunable layers.
        names (str or Sequence[str]): Layer names to keep dense.
        owner (str, optional): The model's name, for errors.

    Raises:
        ValueError: if a name is not a prunable layer (the message lists the
            names there are).
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    known = [layer.name for layer in layers]
    for name in names:
        if name not in known:
            raise ValueError(
                f"keep_dense: {owner} has no prunable layer named {name!r}; its "
                f"prunable layers are: {', '.join(dict.fromkeys(known))}")
    return [layer.name in names for layer in layers]


def check_dense_budget(dense: Sequence[bool], sizes: Sequence[int], budget: int,
                       amount, names: Sequence[str]) -> None:
    """Refuses a budget smaller than the dense layers alone, naming the
    largest ``amount`` that fits them."""
    need = sum(n for n, d in zip(sizes, dense) if d)
    if need <= budget:
        return
    total = sum(sizes)
    largest = math.floor((total - need) / total * 1e6) / 1e6
    raise ValueError(
        f"keep_dense={list(names)} keeps {need} weights, but amount={amount} "
        f"keeps only {budget} of {total}: the dense layers alone exceed the "
        f"budget. Keep at least {need} weights (amount <= {largest:g}, or an "
        f"int amount <= {total - need}) or keep fewer layers dense.")
