"""TCMP: end-to-end topologically consistent magnitude pruning (Sahbi, ICASSP
2024; `arXiv:2306.17590 <https://arxiv.org/abs/2306.17590>`_)."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.prunable import ChannelFlow
from tcmp_pyg.pruning.allocation import dense_first
from tcmp_pyg.pruning.base import Amount, PruningMethod
from tcmp_pyg.pruning.connectivity import (FlowLayer, channel_groups, close_gates,
                                           reachability)
from tcmp_pyg.pruning.select import consistent_masks, top_order


def channel_importance(flow: ChannelFlow, layers: Sequence[FlowLayer],
                       groups: Optional[Tuple[List[int], Tensor]] = None
                       ) -> List[Tensor]:
    r"""The importance :math:`g_c` of every channel: the sum of
    :math:`|\hat{w}|` over every prunable entry that reads or writes it (in
    any layer: the channel is an output of one layer and an input of the
    next), channels of one :func:`channel_groups` group adding up.

    Only ``weight``, ``in_axis`` and ``out_axis`` of the layers are read.

    Args:
        flow (ChannelFlow): The channel flow.
        layers (Sequence[FlowLayer]): Its prunable layers.
        groups (tuple, optional): :func:`channel_groups` of ``flow``
            (computed when not given).

    Returns:
        One float64 vector per node of ``flow``.
    """
    offsets, group = channel_groups(flow) if groups is None else groups
    device = layers[0].module.weight.device if len(layers) else None
    total = torch.zeros(offsets[-1], dtype=torch.float64, device=device)
    for fl in layers:
        w = fl.module.weight.detach().abs().double()
        for node, axis in ((fl.edge.src, fl.module.in_axis),
                           (fl.edge.dst, fl.module.out_axis)):
            per = w.movedim(axis, 0)
            total[offsets[node]:offsets[node + 1]] += per.reshape(per.size(0), -1).sum(1)
    group = group.to(total.device)
    total = torch.zeros_like(total).index_add_(0, group, total)[group]
    return [total[offsets[v]:offsets[v + 1]] for v in range(len(flow.nodes))]


def channel_focus_scores(flow: ChannelFlow, layers: Sequence[FlowLayer],
                         focus: float,
                         groups: Optional[Tuple[List[int], Tensor]] = None
                         ) -> List[Tensor]:
    r"""Every layer's magnitudes reordered towards strong channels.

    Within a layer, the entry from input channel :math:`i` to output channel
    :math:`o` is ranked by :math:`|\hat{w}| \, (g_i \, g_o)^a`
    (:func:`channel_importance`, :math:`a` = ``focus``), and the layer's own
    magnitudes, sorted, are handed out in that order: the largest
    :math:`|\hat{w}|` of the layer goes to its best-ranked entry, and so on
    (ties by position). Each layer keeps exactly the scores it had, so the
    ranking across layers (how much of the budget each layer gets before
    consistency) is unchanged; only which of its entries win moves to the
    channels that are strong on both sides. ``focus=0`` gives
    :math:`|\hat{w}|` unchanged.

    Args:
        flow (ChannelFlow): The channel flow.
        layers (Sequence[FlowLayer]): Its prunable layers.
        focus (float): The exponent :math:`a \ge 0`.
        groups (tuple, optional): :func:`channel_groups` of ``flow``.

    Returns:
        One detached score tensor per layer, of its weight's shape and dtype.
    """
    magnitudes = [fl.module.weight.detach().abs() for fl in layers]
    if focus == 0.0:
        return magnitudes
    importance = channel_importance(flow, layers, groups)
    scores = []
    for fl, m in zip(layers, magnitudes):
        # In logs: no overflow whatever the exponent; a zero gives -inf.
        log_in = importance[fl.edge.src].log().to(m.dtype)
        log_out = importance[fl.edge.dst].log().to(m.dtype)
        pair = (fl.module.expand_channels(log_in, torch.ones_like(log_out))
                + fl.module.expand_channels(torch.ones_like(log_in), log_out))
        key = (m.log() + focus * pair).reshape(-1)
        order = torch.argsort(key, descending=True, stable=True)
        flat = torch.empty_like(m.reshape(-1))
        flat[order] = torch.sort(m.reshape(-1), descending=True).values
        scores.append(flat.view_as(m))
    return scores


def _soft_or(x: Tensor, dim: int = -1) -> Tensor:
    # Relaxed step h: 0 stays 0, any positive evidence saturates to 1.
    return 1.0 - torch.exp(-x.sum(dim=dim))


def relaxed_reachability(flow: ChannelFlow, layers: List[FlowLayer],
                         soft: List[Tensor]):
    r"""Differentiable accessibility / co-accessibility: the passes of
    :func:`~tcmp_pyg.pruning.connectivity.reachability` with the step
    :math:`h(x) = 1 - e^{-x}` on soft channel connections
    (summed soft masks over kernel axes)."""
    conn = {}
    for fl, s in zip(layers, soft):
        m = s.movedim((fl.module.in_axis, fl.module.out_axis), (0, 1))
        conn[id(fl.edge)] = m.reshape(m.size(0), m.size(1), -1).sum(-1)
    dev = soft[0].device
    acc: List[Optional[Tensor]] = [None] * len(flow.nodes)
    acc[0] = torch.ones(flow.nodes[0].size, device=dev)
    for v in range(1, len(flow.nodes)):
        total = torch.zeros(flow.nodes[v].size, device=dev)
        for e in flow.edges:
            if e.dst != v:
                continue
            if e.module is not None:
                total = total + acc[e.src] @ conn[id(e)]
            else:  # probabilistic OR: evidence -log(1 - a) adds up
                evidence = -torch.log1p(-acc[e.src][e.src_index.to(dev)].clamp(max=1 - 1e-6))
                total = total.index_add(0, e.dst_index.to(dev), evidence)
        acc[v] = 1.0 - torch.exp(-total)
    co: List[Optional[Tensor]] = [None] * len(flow.nodes)
    co[flow.output] = torch.ones(flow.nodes[flow.output].size, device=dev)
    for v in range(len(flow.nodes) - 1, -1, -1):
        if v == flow.output:
            continue
        total = torch.zeros(flow.nodes[v].size, device=dev)
        for e in flow.edges:
            if e.src != v or co[e.dst] is None:
                continue
            if e.module is not None:
                total = total + conn[id(e)] @ co[e.dst]
            else:
                c = co[e.dst][e.dst_index.to(dev)]
                total = total.index_add(0, e.src_index.to(dev),
                                        -torch.log1p(-c.clamp(max=1 - 1e-6)))
        co[v] = 1.0 - torch.exp(-total)
    return acc, co


class TCMP(PruningMethod):
    r"""Topologically consistent magnitude pruning, end to end.

    Every prunable weight is reparametrised as :math:`w = \hat{w} \odot m`
    where the mask keeps the largest :math:`|\hat{w}|` *and* only connections
    that are accessible (forward pass over the masks from the input,
    :math:`a_l = h(M_l^\top a_{l-1})`, :math:`a_0 = 1`) and co-accessible
    (backward pass from the output, :math:`c_{l-1} = h(M_l c_l)`,
    :math:`c_L = 1`): the effective mask is
    :math:`M_l \odot (a_{l-1} c_l^\top)`. Residual identities and
    multi-partition kernels are handled by the model's channel flow. At every
    mask update the selection is consistent and its live count equals the
    scheduled budget, with every output (class logit) reachable (see
    :func:`~tcmp_pyg.pruning.select.consistent_masks`; a budget below
    :func:`~tcmp_pyg.pruning.coverage_weights` is refused); dead channels are
    gated, so what is trained is what is kept.

    Two ways to train through the selection:

    - ``mode='hard'``: the consistent top-k with straight-through gradients
      to every latent weight (the only difference from
      :class:`MagnitudePruning` is consistency).
    - ``mode='relaxed'``: the forward pass uses the same crisp consistent
      mask, but gradients flow through its relaxation: a sigmoid of
      :math:`(|\hat{w}| - \theta) / \tau` (:math:`\tau` annealed from
      ``temperature`` to ``temperature * 0.01`` of :math:`\theta` over the
      schedule) times relaxed passes with :math:`h(x) = 1 - e^{-x}`, and the
      loss gets :math:`\lambda ((\sum m_{\text{eff}} - B) / B)^2`.

    With ``channel_focus`` :math:`a > 0` the selection ranks
    :func:`channel_focus_scores` instead of :math:`|\hat{w}|`: within each
    layer, entries are ordered by :math:`|\hat{w}| (g_i g_o)^a`, where
    :math:`g_c` is the total :math:`|\hat{w}|` touching channel :math:`c`
    in every layer (recomputed from the latent weights at every update), and
    receive the layer's own magnitudes in that order. The same budget is
    then spent on fewer, fuller channels, so the compacted model
    (:func:`~tcmp_pyg.pruning.compact`) is smaller, while each layer's scores,
    hence its share of the budget, stay those of :math:`|\hat{w}|`.
    ``keep_dense`` layers are still selected first. In ``'relaxed'`` mode the
    sigmoid compares the same reordered scores with the threshold, with the
    gradient of :math:`|\hat{w}|`.

    Args:
        model (nn.Module): A model declaring its channel flow.
        amount (int or float): Weights to remove (count or fraction).
        mode (str, optional): ``'hard'`` or ``'relaxed'``.
            (default: :obj:`'hard'`)
        budget_weight (float, optional): :math:`\lambda` of the relaxed budget
            loss. (default: :obj:`1.0`)
        temperature (float, optional): Initial relaxed temperature, relative
            to the threshold. (default: :obj:`0.5`)
        channel_focus (float, optional): The exponent :math:`a \ge 0` of the
            channel importance in the selection scores; :obj:`0.0` ranks by
            :math:`|\hat{w}|` alone. (default: :obj:`0.0`)
        **kwargs: Schedule options and ``keep_dense`` of
            :class:`~tcmp_pyg.pruning.base.PruningMethod`.
    """
    name = 'tcmp'
    consistent = True

    def __init__(self, model: nn.Module, amount: Amount, *, mode: str = 'hard',
                 budget_weight: float = 1.0, temperature: float = 0.5,
                 channel_focus: float = 0.0, **kwargs) -> None:
        if mode not in ('hard', 'relaxed'):
            raise ValueError(f"Expected 'mode' to be 'hard' or 'relaxed' (got "
                             f"'{mode}')")
        if (isinstance(channel_focus, bool)
                or not isinstance(channel_focus, (int, float))
                or not math.isfinite(channel_focus) or channel_focus < 0):
            raise ValueError(f"Expected 'channel_focus' to be a finite float "
                             f">= 0 (got {channel_focus!r})")
        super().__init__(model, amount, **kwargs)
        self.mode = mode
        self.channel_focus = float(channel_focus)
        self.budget_weight = float(budget_weight)
        self.temperature = float(temperature)
        self.live = self.total
        self._support: Optional[List[Tensor]] = None
        self._penalty: Optional[Tensor] = None
        self._step = 0
        self._hint: dict = {}  # search state of consistent_masks
        self._theta: Optional[tuple] = None
        self._groups: Optional[Tuple[List[int], Tensor]] = None

    def setup(self, total_steps: int) -> None:
        super().setup(total_steps)
        if self.mode == 'relaxed':
            for layer in self.layers:
                layer.module.straight_through = False

    def step(self, step: int) -> None:
        self._step = step
        super().step(step)
        if self.mode == 'relaxed' and not self.frozen and self._support is not None:
            self._relax(self.kept_at(step))

    def scores(self) -> List[Tensor]:
        r""":func:`channel_focus_scores` of the layers (:math:`|\hat{w}|`
        when ``channel_focus`` is 0), from the current latent weights."""
        if self.channel_focus and self._groups is None:
            self._groups = channel_groups(self.flow)  # the flow does not change
        return channel_focus_scores(self.flow, self.layers, self.channel_focus,
                                    self._groups)

    def update(self, kept: int, final: bool = False) -> None:
        masks, self.live = consistent_masks(self.flow, self.layers,
                                            self.selection_scores(), kept,
                                            self._hint)
        self._support = masks
        self._theta = (kept, self._hint.get('theta'))  # valid until weights move
        self.write_masks(masks)
        acc, co = reachability(self.flow, [
            fl.module.channel_connections(m) for fl, m in zip(self.layers, masks)])
        close_gates(self.flow, acc, co)

    def freeze(self) -> None:
        if self._support is not None:  # crisp, detached masks
            self.write_masks(self._support)
        self._penalty = None
        super().freeze()

    def penalty(self) -> Optional[Tensor]:
        return self._penalty

    def _relax(self, kept: int) -> None:
        weights = [layer.module.weight for layer in self.layers]
        scores = self.scores()  # what the selection ranks, computed once
        fresh, self._theta = self._theta, None
        if fresh is not None and fresh[0] == kept and fresh[1] is not None:
            theta = fresh[1]  # the mask was selected this very step
        else:
            flat = torch.cat([s.reshape(-1) for s in dense_first(scores, self.dense)])
            order = top_order(flat, kept)
            theta = float(flat[order[-1]] if order.numel() else flat.max())
        span = max(self.end_step - self.start_step, 1)
        progress = min(max((self._step - self.start_step) / span, 0.0), 1.0)
        tau = float(theta) * self.temperature * math.pow(0.01, progress) + 1e-12
        # The scores the selection ranked, with the gradient of |w|.
        ranked = [s + (w.abs() - w.abs().detach()) for s, w in zip(scores, weights)]
        # keep_dense layers are selected whatever their magnitudes.
        soft = [torch.ones_like(w) if dense else torch.sigmoid((r - theta) / tau)
                for w, r, dense in zip(weights, ranked, self.dense)]
        acc, co = relaxed_reachability(self.flow, self.layers, soft)
        eff = [s * fl.module.expand_channels(acc[fl.edge.src], co[fl.edge.dst])
               for s, fl in zip(soft, self.layers)]
        for fl, support, e in zip(self.layers, self._support, eff):
            # Value: the crisp consistent mask; gradient: the relaxation's.
            fl.module.set_mask(support.to(e.dtype) + (e - e.detach()))
        total = sum(e.sum() for e in eff)
        self._penalty = self.budget_weight * ((total - kept) / kept) ** 2

    def state_dict(self):
        state = super().state_dict()
        state['live'] = self.live
        return state

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        self.live = int(state.get('live', self.total))
        self._support = [layer.module.weight_mask.detach() != 0
                         for layer in self.layers]
        if self.mode == 'relaxed':
            for layer in self.layers:
                layer.module.straight_through = False

    def __repr__(self) -> str:
        dense = f', keep_dense={list(self.keep_dense)}' if self.keep_dense else ''
        focus = (f', channel_focus={self.channel_focus:g}'
                 if self.channel_focus else '')
        return (f"{type(self).__name__}(amount={self.amount}, mode='{self.mode}'"
                f'{focus}{dense}, budget={self.budget}/{self.total})')
