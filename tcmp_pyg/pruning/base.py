"""Budgets, the cubic schedule and the training-loop hook every method shares."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from tcmp_pyg.pruning.allocation import (check_dense_budget, dense_first,
                                         dense_layers)
from tcmp_pyg.pruning.connectivity import (LayerView, coverage_weights,
                                           flow_layers, open_gates,
                                           shortest_path_weights)

Amount = Union[int, float]


def budget_from_amount(amount: Amount, total: int) -> int:
    r"""The number of weights kept when removing ``amount`` of ``total``.

    Follows :mod:`torch.nn.utils.prune`: a float in ``[0, 1)`` is the fraction
    removed (rounded), an int is a count.
    """
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"Expected 'amount' to be an int (a count) or a float "
                        f"(a fraction) (got {type(amount).__name__})")
    if isinstance(amount, float):
        if not 0.0 <= amount < 1.0 or math.isnan(amount):
            extra = (" amount=1.0 would remove every weight and leave no "
                     "network; use e.g. 0.999 (99.9 %)" if amount == 1.0 else "")
            raise ValueError(f"Expected a float 'amount' in [0, 1) (got "
                             f"{amount}).{extra}")
        removed = int(round(amount * total))
    else:
        if not 0 <= amount < total:
            raise ValueError(f"Expected an int 'amount' in [0, {total}) (the "
                             f"model has {total} prunable weights; removing all "
                             f"of them leaves no network) (got {amount})")
        removed = int(amount)
    return total - removed


def check_budget(model: nn.Module, budget: int, amount: Amount,
                 cover_outputs: bool = False) -> None:
    r"""Refuses a budget below the shortest input-to-output path, and with
    ``cover_outputs`` one too small to reach every output channel
    (:func:`~tcmp_pyg.pruning.coverage_weights`).

    Args:
        model (nn.Module): The model to prune.
        budget (int): Weights kept.
        amount (int or float): The amount the budget came from (for the
            message).
        cover_outputs (bool, optional): Require every class to stay
            reachable, as the consistent methods (TCMP, mp-effective)
            promise. Methods without that promise (``mp``, ``random``) may
            disconnect outputs: that is what they are compared on.
            (default: :obj:`False`)

    Raises:
        ValueError: naming the minimum number of weights.
    """
    need = shortest_path_weights(model)
    name = type(model).__name__
    if budget < need:
        raise ValueError(
            f"amount={amount} keeps {budget} weights, but the shortest "
            f"input-to-output path of {name} needs {need} "
            f"(one weight per prunable layer on it): no connected subnetwork "
            f"fits. Keep at least {need} weights.")
    if not cover_outputs:
        return
    need = coverage_weights(model)
    if budget < need:
        flow, layers = flow_layers(model)
        total = sum(layer.module.weight.numel() for layer in layers)
        num_out = flow.nodes[flow.output].size
        largest = math.floor((total - need) / total * 1e6) / 1e6  # rounded down
        raise ValueError(
            f"amount={amount} keeps {budget} weights, but reaching all "
            f"{num_out} outputs of {name} from its input needs at least {need} "
            f"(a shortest path to one classifier input, then one weight per "
            f"output), and this method keeps every class reachable. Keep at "
            f"least {need} weights (amount <= {total - need} as a count, or "
            f"<= {largest:g} as a fraction).")


def cubic_schedule(step: int, start: int, end: int, final_keep: float) -> float:
    r"""Kept fraction at ``step`` (Zhu & Gupta, 2017): dense until ``start``,
    :math:`s_t = s_f (1 - (1 - \frac{t - t_0}{t_1 - t_0})^3)` of the weights
    removed in between, the target from ``end`` on."""
    if step < start:
        return 1.0
    if step >= end or end <= start:
        return final_keep
    progress = (step - start) / (end - start)
    return 1.0 - (1.0 - final_keep) * (1.0 - (1.0 - progress) ** 3)


class PruningMethod:
    r"""Base of the methods called by the training loop.

    The loop calls :meth:`setup` once with the number of steps, :meth:`step`
    before every forward pass, adds :meth:`penalty` to the loss and calls
    :meth:`finalize` at the end. Masks are written only through
    :meth:`~tcmp_pyg.nn.PrunableModule.set_mask`; a method never looks at
    layer types.

    Args:
        model (nn.Module): The model to prune.
        amount (int or float): Weights to remove (count or fraction).
        start (float, optional): Fraction of training before pruning starts.
            (default: :obj:`0.1`)
        end (float, optional): Fraction of training at which the target is
            reached; masks are frozen afterwards. (default: :obj:`0.6`)
        update_every (int, optional): Steps between mask updates.
            (default: :obj:`1`)
        keep_dense (Sequence[str], optional): Names of prunable layers
            (``FlowLayer.name``, e.g. ``'fc'``) that keep every weight; their
            weights count inside the budget, as they are selected before any
            other. In a consistent selection (TCMP, ``mp-effective``) they
            keep every weight that is live. (default: :obj:`()`)

    Raises:
        TypeError: At construction, if the model declares no channel flow or
            has a layer whose mask this toolkit cannot write (a plain torch
            layer of an :class:`nn.Sequential`).
        ValueError: At construction, if ``keep_dense`` names no prunable
            layer or its layers alone exceed the budget.
    """
    name = 'base'
    consistent = False

    def __init__(self, model: nn.Module, amount: Amount, *, start: float = 0.1,
                 end: float = 0.6, update_every: int = 1,
                 keep_dense: Sequence[str] = ()) -> None:
        self.model = model
        self.flow, self.layers = flow_layers(model)
        for layer in self.layers:  # refused here rather than at setup()/step()
            if isinstance(layer.module, LayerView) and not layer.module.writable:
                raise TypeError(f"{type(self).__name__} cannot prune layer "
                                f"'{layer.name}': "
                                f"{layer.module.read_only_message()}")
        self.total = sum(layer.module.weight.numel() for layer in self.layers)
        self.amount = amount
        self.budget = budget_from_amount(amount, self.total)
        check_budget(model, self.budget, amount, cover_outputs=self.consistent)
        self.keep_dense = ((keep_dense,) if isinstance(keep_dense, str)
                           else tuple(keep_dense))
        self.dense = dense_layers(self.layers, self.keep_dense,
                                  type(model).__name__)
        check_dense_budget(self.dense, [layer.module.weight.numel()
                                        for layer in self.layers],
                           self.budget, amount, self.keep_dense)
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"Expected 0 <= start <= end <= 1 (got start="
                             f"{start}, end={end})")
        if int(update_every) < 1:
            raise ValueError(f"Expected 'update_every' >= 1 (got {update_every})")
        self.start, self.end = start, end
        self.update_every = int(update_every)
        self.start_step = 0
        self.end_step = 0
        self.frozen = False
        self.updates = 0

    # -- hook protocol -------------------------------------------------------
    def setup(self, total_steps: int) -> None:
        """Places the schedule over ``total_steps`` training steps."""
        self.start_step = int(round(self.start * total_steps))
        self.end_step = max(self.start_step, int(round(self.end * total_steps)))
        for layer in self.layers:
            layer.module.straight_through = True

    def step(self, step: int) -> None:
        """Updates the masks when due (before the forward pass of ``step``)."""
        if self.frozen or step < self.start_step:
            return
        final = step >= self.end_step
        if final or (step - self.start_step) % self.update_every == 0:
            self.update(self.kept_at(step), final=final)
            self.updates += 1
        if final:
            self.freeze()

    def penalty(self) -> Optional[Tensor]:
        """An extra loss term (None for most methods)."""
        return None

    def finalize(self) -> None:
        """Reaches the target budget if training ended early, and freezes."""
        if not self.frozen:
            self.update(self.budget, final=True)
            self.freeze()

    # -- method-specific -----------------------------------------------------
    def update(self, kept: int, final: bool = False) -> None:
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------
    def kept_at(self, step: int) -> int:
        frac = cubic_schedule(step, self.start_step, self.end_step,
                              self.budget / self.total)
        return max(self.budget, int(round(frac * self.total)))

    def freeze(self) -> None:
        self.frozen = True
        for layer in self.layers:
            layer.module.straight_through = False

    def scores(self) -> List[Tensor]:
        return [layer.module.weight.detach().abs() for layer in self.layers]

    def selection_scores(self) -> List[Tensor]:
        """:meth:`scores` with the ``keep_dense`` layers above every other
        weight, for selections that rank all layers together."""
        return dense_first(self.scores(), self.dense)

    def write_masks(self, masks: List[Tensor]) -> None:
        for layer, m in zip(self.layers, masks):
            layer.module.set_mask(m)

    def state_dict(self) -> Dict[str, Any]:
        return dict(frozen=self.frozen, updates=self.updates,
                    start_step=self.start_step, end_step=self.end_step)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.frozen = bool(state['frozen'])
        self.updates = int(state['updates'])
        self.start_step = int(state['start_step'])
        self.end_step = int(state['end_step'])
        for layer in self.layers:
            layer.module.straight_through = not self.frozen

    def __repr__(self) -> str:
        dense = f', keep_dense={list(self.keep_dense)}' if self.keep_dense else ''
        return (f'{type(self).__name__}(amount={self.amount}{dense}, budget='
                f'{self.budget}/{self.total})')


def reset_masks(model: nn.Module) -> None:
    """All masks to ones and all gates open."""
    _, layers = flow_layers(model)
    for layer in layers:
        layer.module.set_mask(torch.ones_like(layer.module.weight))
    open_gates(model)
