"""TCMP: end-to-end topologically consistent magnitude pruning (Sahbi, ICASSP
2024; `arXiv:2306.17590 <https://arxiv.org/abs/2306.17590>`_)."""
from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.prunable import ChannelFlow
from tcmp_pyg.pruning.base import Amount, PruningMethod
from tcmp_pyg.pruning.connectivity import FlowLayer, close_gates, reachability
from tcmp_pyg.pruning.select import consistent_masks, top_order


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

    Args:
        model (nn.Module): A model declaring its channel flow.
        amount (int or float): Weights to remove (count or fraction).
        mode (str, optional): ``'hard'`` or ``'relaxed'``.
            (default: :obj:`'hard'`)
        budget_weight (float, optional): :math:`\lambda` of the relaxed budget
            loss. (default: :obj:`1.0`)
        temperature (float, optional): Initial relaxed temperature, relative
            to the threshold. (default: :obj:`0.5`)
        **kwargs: Schedule options and ``keep_dense`` of
            :class:`~tcmp_pyg.pruning.base.PruningMethod`.
    """
    name = 'tcmp'
    consistent = True

    def __init__(self, model: nn.Module, amount: Amount, *, mode: str = 'hard',
                 budget_weight: float = 1.0, temperature: float = 0.5,
                 **kwargs) -> None:
        if mode not in ('hard', 'relaxed'):
            raise ValueError(f"Expected 'mode' to be 'hard' or 'relaxed' (got "
                             f"'{mode}')")
        super().__init__(model, amount, **kwargs)
        self.mode = mode
        self.budget_weight = float(budget_weight)
        self.temperature = float(temperature)
        self.live = self.total
        self._support: Optional[List[Tensor]] = None
        self._penalty: Optional[Tensor] = None
        self._step = 0
        self._hint: dict = {}  # search state of consistent_masks
        self._theta: Optional[tuple] = None

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
        fresh, self._theta = self._theta, None
        if fresh is not None and fresh[0] == kept and fresh[1] is not None:
            theta = fresh[1]  # the mask was selected this very step
        else:
            flat = torch.cat([s.reshape(-1) for s in self.selection_scores()])
            order = top_order(flat, kept)
            theta = float(flat[order[-1]] if order.numel() else flat.max())
        span = max(self.end_step - self.start_step, 1)
        progress = min(max((self._step - self.start_step) / span, 0.0), 1.0)
        tau = float(theta) * self.temperature * math.pow(0.01, progress) + 1e-12
        # keep_dense layers are selected whatever their magnitudes.
        soft = [torch.ones_like(w) if dense else torch.sigmoid((w.abs() - theta) / tau)
                for w, dense in zip(weights, self.dense)]
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
        return (f"{type(self).__name__}(amount={self.amount}, mode='{self.mode}'"
                f'{dense}, budget={self.budget}/{self.total})')
