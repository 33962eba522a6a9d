r"""Structured channel pruning: L1-norm filter pruning (`Li et al., ICLR 2017
<https://arxiv.org/abs/1608.08710>`_) on the toolkit's channel flow.

A *channel unit* is a set of channels that stand or fall together: the
channels that the flow's identity edges tie one to one (a residual sum adds
channel ``j`` of each branch into channel ``j`` of the merge node, so all of
them are one unit; a plain layer output channel is a unit of its own).
Units that contain a channel of the input or the output node (the
coordinates, the class logits) are never removed. Units whose channels sit
at the same nodes form a *channel set* (the channels of one layer, or of one
residual stream), the granularity of the allocation.

Removing a unit zeroes every weight that produces it (its output rows in
the layers feeding it) and every weight that reads it (its input columns in
the layers it feeds), kernel axes included. Each layer's mask is thus the
outer product ``alive[src] x alive[dst]`` of the channels alive at its two
nodes: every kept weight joins two alive channels, no weight is dead, and
the compacted model (:func:`~tcmp_pyg.pruning.compact`) has exactly the kept
weights as prunable parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.prunable import ChannelFlow
from tcmp_pyg.pruning.base import Amount, PruningMethod
from tcmp_pyg.pruning.connectivity import FlowLayer, channel_groups, gate_dead_channels


@dataclass
class ChannelUnits:
    r"""The removable channel units of a flow (see the module docstring).

    Channels are numbered globally: ``node_offset[v] + c`` is channel ``c``
    of flow node ``v``.

    Attributes:
        node_offset: Start of each flow node in the global numbering.
        channel_unit: ``[num_channels]`` the unit of each channel, ``-1`` for
            the channels that stay (those tied to the input or the output).
        unit_set: ``[num_units]`` the channel set of each unit.
        unit_nodes: ``[num_units, num_nodes]`` how many channels of each node
            a unit holds.
        set_names: Per set, the names of its nodes joined by ``'+'``.
    """
    node_offset: List[int]
    channel_unit: Tensor
    unit_set: Tensor
    unit_nodes: Tensor
    set_names: List[str]

    @property
    def num_units(self) -> int:
        return self.unit_set.numel()

    @property
    def num_sets(self) -> int:
        return len(self.set_names)

    def members(self, unit: int) -> Tensor:
        """Global ids of the channels of ``unit``."""
        return (self.channel_unit == unit).nonzero().squeeze(1)


def channel_units(flow: ChannelFlow) -> ChannelUnits:
    r"""Groups the channels of ``flow`` into units tied by its identity edges
    (union-find over ``(node, channel)`` pairs), leaving out the units that
    reach the input or the output node; units are numbered by their
    smallest channel id."""
    offset, group = channel_groups(flow)
    num_nodes = len(flow.nodes)
    node_of = torch.repeat_interleave(torch.arange(num_nodes),
                                      torch.tensor([n.size for n in flow.nodes]))
    groups: Dict[int, List[int]] = {}
    for i, root in enumerate(group.tolist()):
        groups.setdefault(root, []).append(i)
    fixed = {0, flow.output}
    channel_unit = torch.full((offset[-1],), -1, dtype=torch.long)
    unit_set: List[int] = []
    set_ids: Dict[Tuple[int, ...], int] = {}
    set_names: List[str] = []
    for root in sorted(groups):
        ids = torch.tensor(groups[root])
        nodes = tuple(sorted(set(node_of[ids].tolist())))
        if fixed & set(nodes):
            continue
        if nodes not in set_ids:
            set_ids[nodes] = len(set_names)
            set_names.append('+'.join(flow.nodes[v].name for v in nodes))
        channel_unit[ids] = len(unit_set)
        unit_set.append(set_ids[nodes])
    removable = channel_unit >= 0
    unit_nodes = torch.zeros(len(unit_set), num_nodes, dtype=torch.long)
    unit_nodes.index_put_((channel_unit[removable], node_of[removable]),
                          torch.ones(int(removable.sum()), dtype=torch.long),
                          accumulate=True)
    return ChannelUnits(offset, channel_unit, torch.tensor(unit_set, dtype=torch.long),
                        unit_nodes, set_names)


def _l1_per_output(module) -> Tensor:
    """L1 norm of the weights producing each output channel (latent weights:
    a removed channel may come back while the schedule runs)."""
    w = module.weight.detach().abs().float()
    return w.movedim(module.out_axis, 0).reshape(w.size(module.out_axis), -1).sum(1)


def channel_scores(units: ChannelUnits, layers: Sequence[FlowLayer]) -> Tensor:
    r"""Score of each unit: the L1 norms of the weights producing its
    channels, each divided by the mean L1 norm of its layer's output
    channels (BatchNorm after each layer makes raw scales incomparable), and
    averaged over the unit's producing (layer, channel) pairs.

    Returns:
        ``[num_units]`` float scores.
    """
    off = units.node_offset
    score = torch.zeros(off[-1])
    count = torch.zeros(off[-1])
    for layer in layers:
        l1 = _l1_per_output(layer.module).cpu()
        dst = layer.edge.dst
        score[off[dst]:off[dst + 1]] += l1 / l1.mean().clamp_min(1e-12)
        count[off[dst]:off[dst + 1]] += 1
    keep = units.channel_unit >= 0
    unit = units.channel_unit[keep]
    totals = torch.zeros(units.num_units).index_add_(0, unit, score[keep])
    counts = torch.zeros(units.num_units).index_add_(0, unit, count[keep])
    return totals / counts.clamp_min(1)


def removal_order(units: ChannelUnits, scores: Tensor) -> Tensor:
    r"""The order in which units are removed: uniformly over the channel
    sets (the unit at position :math:`p` of the :math:`n` units of its set,
    weakest first, comes at :math:`(p + \frac{1}{2}) / n`, so every set loses
    the same share), ties by score then by unit id. The strongest unit of
    each set is never listed: no layer is emptied."""
    def stable(order: Tensor, key: Tensor) -> Tensor:
        return order[torch.sort(key[order], stable=True).indices]

    ids = torch.arange(units.num_units)
    by_set = stable(stable(ids, scores), units.unit_set)  # by set, weakest first
    sizes = torch.bincount(units.unit_set, minlength=units.num_sets)
    starts = sizes.cumsum(0) - sizes
    sets = units.unit_set[by_set]
    pos = torch.arange(by_set.numel()) - starts[sets]
    removable = pos < sizes[sets] - 1
    key = torch.empty(units.num_units, dtype=torch.float64)
    key[by_set] = (pos.double() + 0.5) / sizes[sets].double()
    order = stable(stable(by_set[removable], scores), key)
    return order


def _kept_curve(units: ChannelUnits, layers: Sequence[FlowLayer],
                order: Tensor) -> Tensor:
    """``kept[r]``: prunable weights kept once the first ``r`` units of
    ``order`` are removed, ``r = 0 .. len(order)``."""
    off = torch.tensor(units.node_offset)
    removed = torch.cat([torch.zeros(1, units.unit_nodes.size(1), dtype=torch.long),
                         units.unit_nodes[order].cumsum(0)])
    alive = (off[1:] - off[:-1]) - removed  # [R + 1, nodes]
    kept = torch.zeros(order.numel() + 1, dtype=torch.long)
    for layer in layers:
        m = layer.module
        kernel = m.weight.numel() // (m.num_in * m.num_out)
        kept += kernel * alive[:, layer.edge.src] * alive[:, layer.edge.dst]
    return kept


def select_channels(flow: ChannelFlow, layers: Sequence[FlowLayer],
                    units: ChannelUnits, budget: int
                    ) -> Tuple[List[Tensor], int, List[Tensor]]:
    r"""Removes units in :func:`removal_order` until at most ``budget``
    weights are kept.

    Returns:
        ``(masks, kept, alive)``: bool masks of the layers' weights, the
        number of kept weights (at most ``budget`` and less than ``budget``
        plus the weights of one unit; the fewest possible when the budget is
        below that), and the alive channels of every node.
    """
    order = removal_order(units, channel_scores(units, layers))
    kept = _kept_curve(units, layers, order)
    fits = (kept <= budget).nonzero()
    r = int(fits[0]) if fits.numel() else order.numel()
    dead_unit = torch.zeros(units.num_units + 1, dtype=torch.bool)
    dead_unit[order[:r]] = True  # index -1 (the channels that stay): False
    alive_flat = ~dead_unit[units.channel_unit]
    off = units.node_offset
    alive = [alive_flat[off[v]:off[v + 1]] for v in range(len(flow.nodes))]
    masks = []
    for layer in layers:
        e, m = layer.edge, layer.module
        device = m.weight.device
        masks.append(m.expand_channels(alive[e.src].to(device),
                                       alive[e.dst].to(device)).clone())
    return masks, int(kept[r]), alive


class ChannelPruning(PruningMethod):
    r"""Structured channel pruning: L1-norm filter pruning (Li et al., ICLR
    2017) on the channel flow, with the gradual schedule of
    :class:`~tcmp_pyg.pruning.MagnitudePruning` (the cubic schedule, masks
    re-selected from the latent weights every ``update_every`` steps with
    straight-through gradients, frozen once the target is reached; dead
    channels are then gated).

    Whole channel units are removed (:func:`channel_units`: channels tied by
    residual sums go together, the input and the class outputs stay), each
    removal taking the weights that produce the channel and those that read
    it: no kept weight is dead, and the compacted model keeps exactly the
    kept weights.

    **Allocation: uniform per channel set.** Every set (a layer's output
    channels, or a residual stream) loses the same share of its units, the
    weakest first by the L1 norm of the weights producing them (normalised
    per layer, which only matters across the producers of a residual stream
    and for ties). This is Li et al.'s per-layer pruning and the per-layer
    allocation of Zhu & Gupta; a global ranking of L1 norms across layers
    would compare scales that BatchNorm makes arbitrary (the failure of
    global magnitude pruning on these models). The strongest unit of each
    set always stays, so the network stays connected.

    **Budget.** At most the budget (:func:`~tcmp_pyg.pruning.budget_from_amount`)
    of weights is kept, as whole channels: units are removed one at a time
    until the kept count fits, so it lies within one unit's weights below
    the budget. :attr:`kept` reports it after each update. A budget below
    one channel per set (:attr:`minimum`) is refused.

    **Why not Torch-Pruning.** Torch-Pruning builds its dependency graph by
    tracing a forward pass through the autograd graph and maps the traced
    operations back to the layer types it knows (``nn.Conv*``,
    ``nn.Linear``, normalisation...), removing channels physically. The
    layers here are PyG ``MessagePassing`` graph convolutions with a
    ``[partitions, in, out]`` weight and einsum / sparse aggregation, and
    attention propagation per head; their channel axes would each need a
    custom pruner, the masks that the gradual schedule and the training loop
    rely on would be replaced by in-place surgery, and the channel coupling
    it would trace is what each model already declares exactly in its
    :class:`~tcmp_pyg.nn.ChannelFlow` (read here through the layers'
    ``in_axis`` / ``out_axis``). Torch-Pruning was not installed or run.

    Args: see :class:`~tcmp_pyg.pruning.base.PruningMethod`.

    Raises:
        ValueError: If the budget is below :attr:`minimum`.
    """
    name = 'channel'
    consistent = True

    def __init__(self, model: nn.Module, amount: Amount, **kwargs) -> None:
        super().__init__(model, amount, **kwargs)
        self.units = channel_units(self.flow)
        order = removal_order(self.units, channel_scores(self.units, self.layers))
        self.minimum = int(_kept_curve(self.units, self.layers, order)[-1])
        if self.budget < self.minimum:
            raise ValueError(
                f"amount={amount} keeps {self.budget} weights, but channel "
                f"pruning of {type(model).__name__} keeps whole channels and at "
                f"least one channel per layer: {self.minimum} weights. Keep at "
                f"least {self.minimum} weights.")
        self.kept = self.total

    def update(self, kept: int, final: bool = False) -> None:
        masks, self.kept, _ = select_channels(self.flow, self.layers, self.units,
                                              kept)
        self.write_masks(masks)
        if final:
            gate_dead_channels(self.model)
