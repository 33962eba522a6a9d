"""Magnitude-pruning baselines: one-shot, gradual, random and the post-hoc
effective-sparsity correction."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor, nn

from tcmp_pyg.pruning.allocation import (ALLOCATIONS, allocation_masks,
                                         check_dense_budget, dense_layers)
from tcmp_pyg.pruning.base import (Amount, PruningMethod, budget_from_amount,
                                   check_budget)
from tcmp_pyg.pruning.connectivity import flow_layers, gate_dead_channels
from tcmp_pyg.pruning.select import consistent_masks


def magnitude_prune(model: nn.Module, amount: Amount, scope: str = 'global',
                    keep_dense: Sequence[str] = ()) -> int:
    r"""One-shot magnitude pruning: keeps the largest :math:`|w|` of each layer
    up to the layer's quota under an allocation rule.

    Args:
        model (nn.Module): A model with prunable weights.
        amount (int or float): Weights to remove (count or fraction).
        scope (str, optional): The allocation (see
            :mod:`~tcmp_pyg.pruning.allocation`): ``'global'`` ranks all
            weights together; ``'layer'`` removes the same fraction from every
            layer; ``'erk'`` gives Erdős–Rényi-kernel quotas; ``'lamp'`` ranks
            layer-adaptive magnitude scores together.
            (default: :obj:`'global'`)
        keep_dense (Sequence[str], optional): Names of prunable layers that
            keep every weight, counted inside the budget. (default: :obj:`()`)

    Returns:
        The number of kept weights, exactly the budget (ties are broken by
        position).
    """
    if scope not in ALLOCATIONS:
        raise ValueError(f"Expected 'scope' to be one of {ALLOCATIONS} (got "
                         f"{scope!r})")
    _, layers = flow_layers(model)
    scores = [layer.module.weight.detach().abs() for layer in layers]
    total = sum(s.numel() for s in scores)
    budget = budget_from_amount(amount, total)
    check_budget(model, budget, amount)
    keep_dense = (keep_dense,) if isinstance(keep_dense, str) else tuple(keep_dense)
    dense = dense_layers(layers, keep_dense, type(model).__name__)
    check_dense_budget(dense, [s.numel() for s in scores], budget, amount,
                       keep_dense)
    masks = allocation_masks(scores, budget, scope, dense)
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

    Args:
        model (nn.Module): The model to prune.
        amount (int or float): Weights to remove (count or fraction).
        allocation (str, optional): How each mask update shares the kept
            weights among layers (see :mod:`~tcmp_pyg.pruning.allocation`):
            ``'global'`` (one top-k over all :math:`|w|`, the CLI's ``mp``),
            ``'layer'`` (``mp-layer``), ``'erk'`` (``mp-erk``) or ``'lamp'``
            (``mp-lamp``). (default: :obj:`'global'`)
        **kwargs: ``start``, ``end``, ``update_every`` and ``keep_dense`` of
            :class:`~tcmp_pyg.pruning.base.PruningMethod`.
    """
    name = 'mp'

    def __init__(self, model: nn.Module, amount: Amount, *,
                 allocation: str = 'global', **kwargs) -> None:
        if allocation not in ALLOCATIONS:
            raise ValueError(f"Expected 'allocation' to be one of {ALLOCATIONS} "
                             f"(got {allocation!r})")
        super().__init__(model, amount, **kwargs)
        self.allocation = allocation

    def update(self, kept: int, final: bool = False) -> None:
        self.write_masks(allocation_masks(self.scores(), kept, self.allocation,
                                          self.dense))

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.allocation == 'global':
            return text
        return text.replace('(', f"(allocation='{self.allocation}', ", 1)


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
    freeze. The allocation is global (the correction ranks all layers
    together)."""
    name = 'mp-effective'
    consistent = True

    def __init__(self, model: nn.Module, amount: Amount, **kwargs) -> None:
        if kwargs.get('allocation', 'global') != 'global':
            raise ValueError(f"EffectivePruning ranks all layers together "
                             f"(allocation='global'); got allocation="
                             f"{kwargs['allocation']!r}")
        super().__init__(model, amount, **kwargs)

    def update(self, kept: int, final: bool = False) -> None:
        if not final:
            return super().update(kept)
        masks, _ = consistent_masks(self.flow, self.layers,
                                    self.selection_scores(), kept)
        self.write_masks(masks)
        gate_dead_channels(self.model)
