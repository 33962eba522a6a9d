"""Magnitude-pruning baselines: one-shot, gradual, random and the post-hoc
effective-sparsity correction."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from tcmp_pyg.pruning.base import (Amount, PruningMethod, budget_from_amount,
                                   check_budget)
from tcmp_pyg.pruning.connectivity import flow_layers, gate_dead_channels
from tcmp_pyg.pruning.select import consistent_masks, topk_masks


def _layer_counts(sizes: List[int], budget: int) -> List[int]:
    # The same fraction per layer, rounding by largest remainder so the counts
    # add up to the budget exactly.
    total = sum(sizes)
    exact = [budget * s / total for s in sizes]
    counts = [int(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[:budget - sum(counts)]:
        counts[i] += 1
    return counts


def magnitude_prune(model: nn.Module, amount: Amount, scope: str = 'global') -> int:
    r"""One-shot magnitude pruning: keeps the largest :math:`|w|`.

    Args:
        model (nn.Module): A model with prunable weights.
        amount (int or float): Weights to remove (count or fraction).
        scope (str, optional): ``'global'`` ranks all weights together;
            ``'layer'`` removes the same fraction from every layer.
            (default: :obj:`'global'`)

    Returns:
        The number of kept weights, exactly the budget (ties are broken by
        position).
    """
    _, layers = flow_layers(model)
    scores = [layer.module.weight.detach().abs() for layer in layers]
    total = sum(s.numel() for s in scores)
    budget = budget_from_amount(amount, total)
    check_budget(model, budget, amount)
    if scope == 'global':
        masks = topk_masks(scores, budget)
    elif scope == 'layer':
        counts = _layer_counts([s.numel() for s in scores], budget)
        masks = [topk_masks([s], k)[0] for s, k in zip(scores, counts)]
    else:
        raise ValueError(f"Expected 'scope' to be 'global' or 'layer' (got "
                         f"'{scope}')")
    for layer, m in zip(layers, masks):
        layer.module.set_mask(m)
    return budget


def effective_correction(model: nn.Module, amount: Amount) -> int:
    r"""Post-hoc effective-sparsity correction (Vysogorets & Kempe, 2023):
    prune by magnitude, drop dead weights, refill with the next magnitudes
    until the live count reaches the budget; then gate dead channels.

    Every class stays reachable: when magnitude leaves an output unreachable
    (e.g. it emptied the classifier), a path to every output is kept first
    and the rest is filled by magnitude (see
    :func:`~tcmp_pyg.pruning.select.consistent_masks`).

    Returns:
        The number of live (= kept) weights.

    Raises:
        ValueError: if the budget is below
            :func:`~tcmp_pyg.pruning.coverage_weights`.
    """
    flow, layers = flow_layers(model)
    scores = [layer.module.weight.detach().abs() for layer in layers]
    budget = budget_from_amount(amount, sum(s.numel() for s in scores))
    check_budget(model, budget, amount, cover_outputs=True)
    masks, live = consistent_masks(flow, layers, scores, budget)
    for layer, m in zip(layers, masks):
        layer.module.set_mask(m)
    gate_dead_channels(model)
    return live


class MagnitudePruning(PruningMethod):
    r"""Gradual magnitude pruning (Zhu & Gupta, 2017), the fair baseline of
    TCMP: the kept fraction follows the cubic schedule, masks are re-selected
    from the latent weights every ``update_every`` steps, and straight-through
    gradients reach every latent weight so pruned weights may come back.
    Masks freeze once the target is reached.

    Args: see :class:`~tcmp_pyg.pruning.base.PruningMethod`.
    """
    name = 'mp'

    def update(self, kept: int, final: bool = False) -> None:
        self.write_masks(topk_masks(self.scores(), kept))


class RandomPruning(MagnitudePruning):
    r"""The same schedule and budget with random scores (fixed at
    construction from ``seed``), so masks are nested as the budget shrinks."""
    name = 'random'

    def __init__(self, model: nn.Module, amount: Amount, *, seed: int = 0,
                 **kwargs) -> None:
        super().__init__(model, amount, **kwargs)
        gen = torch.Generator().manual_seed(seed)
        self._random = [torch.rand(layer.module.weight.shape, generator=gen).to(
            layer.module.weight.device) for layer in self.layers]

    def scores(self) -> List[Tensor]:
        return self._random


class EffectivePruning(MagnitudePruning):
    r"""Magnitude pruning with the post-hoc effective-sparsity correction at
    the end of the schedule: dead weights are dropped, the budget refilled
    with live ones (every class kept reachable, as in
    :func:`effective_correction`) and dead channels gated, then masks
    freeze."""
    name = 'mp-effective'
    consistent = True

    def update(self, kept: int, final: bool = False) -> None:
        if not final:
            return super().update(kept)
        masks, _ = consistent_masks(self.flow, self.layers, self.scores(), kept)
        self.write_masks(masks)
        gate_dead_channels(self.model)
