"""Connectivity analysis: which kept weights can change the prediction.

The network is a graph of channels (:class:`~tcmp_pyg.nn.ChannelFlow`): a kept
weight entry links an input channel of its layer to an output channel;
residual identities, BatchNorm and activations keep channels one to one.
A channel is *accessible* when a path of kept connections reaches it from the
model's input, *co-accessible* when such a path leads from it to the output
(the logits). A kept weight is *live* when its input channel is accessible
and its output channel co-accessible; otherwise it is *dead*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.prunable import ChannelFlow, ChannelGate, FlowEdge, PrunableModule


@dataclass
class FlowLayer:
    """A prunable layer of a flow: its name, module and flow edge."""
    name: str
    module: PrunableModule
    edge: FlowEdge


def flow_layers(model: nn.Module, flow: Optional[ChannelFlow] = None
                ) -> Tuple[ChannelFlow, List[FlowLayer]]:
    r"""The model's channel flow and its prunable layers, in flow order.

    Raises:
        TypeError: if the model does not declare its channel flow, or has a
            prunable layer outside it.
    """
    if flow is None:
        if not hasattr(model, 'channel_flow'):
            raise TypeError(
                f"{type(model).__name__} does not declare how channels flow "
                f"through it (no 'channel_flow()' method), so its connectivity "
                f"is unknown. Subclass tcmp_pyg.nn.FlowModel and describe the "
                f"blocks with ChannelFlow.layer/add/concat.")
        flow = model.channel_flow()
    names = {id(m): n for n, m in model.named_modules()}
    layers = []
    for edge, module in flow.layers():
        if id(module) not in names:
            raise ValueError(f"{type(model).__name__}.channel_flow() names a "
                             f"layer that is not a submodule: {module}")
        layers.append(FlowLayer(names[id(module)], module, edge))
    in_flow = {id(layer.module) for layer in layers}
    for name, module in model.named_modules():
        if isinstance(module, PrunableModule) and id(module) not in in_flow:
            raise ValueError(f"{type(model).__name__}: prunable layer '{name}' "
                             f"({type(module).__name__}) is missing from "
                             f"channel_flow(), so its connectivity is unknown")
    if flow.output < 0:
        raise ValueError(f"{type(model).__name__}.channel_flow() sets no "
                         f"output node")
    if not layers:
        raise ValueError(f"{type(model).__name__} has no prunable weight")
    return flow, layers


def reachability(flow: ChannelFlow, connections: Sequence[Tensor]
                 ) -> Tuple[List[Tensor], List[Tensor]]:
    r"""Accessible and co-accessible channels of every node.

    The forward pass is :math:`a_{dst} \mathrel{|}= h(C^\top a_{src})` over
    prunable edges and a copy over identity edges, from :math:`a_0 = 1`; the
    backward pass is :math:`c_{src} \mathrel{|}= h(C c_{dst})` from
    :math:`c_L = 1`.

    Args:
        flow (ChannelFlow): The channel flow.
        connections (Sequence[Tensor]): One bool ``[C_in, C_out]`` matrix per
            prunable edge, in :meth:`ChannelFlow.layers` order.

    Returns:
        ``(accessible, co_accessible)``: one bool vector per node.
    """
    device = connections[0].device if len(connections) else torch.device('cpu')
    conn = {}
    it = iter(connections)
    for i, e in enumerate(flow.edges):
        if e.module is not None:
            conn[i] = next(it).float()
    acc = [torch.zeros(n.size, dtype=torch.bool, device=device) for n in flow.nodes]
    co = [torch.zeros(n.size, dtype=torch.bool, device=device) for n in flow.nodes]
    acc[0][:] = True
    co[flow.output][:] = True
    incoming: List[List[int]] = [[] for _ in flow.nodes]
    outgoing: List[List[int]] = [[] for _ in flow.nodes]
    for i, e in enumerate(flow.edges):
        incoming[e.dst].append(i)
        outgoing[e.src].append(i)
    for v in range(1, len(flow.nodes)):
        for i in incoming[v]:
            e = flow.edges[i]
            if e.module is not None:
                acc[v] |= (acc[e.src].float() @ conn[i]) > 0
            else:
                acc[v][e.dst_index.to(device)] |= acc[e.src][e.src_index.to(device)]
    for v in range(len(flow.nodes) - 1, -1, -1):
        for i in outgoing[v]:
            e = flow.edges[i]
            if e.module is not None:
                co[v] |= (conn[i] @ co[e.dst].float()) > 0
            else:
                co[v][e.src_index.to(device)] |= co[e.dst][e.dst_index.to(device)]
    return acc, co


@dataclass
class LayerRow:
    """Connectivity of one prunable layer (channels: its output node)."""
    name: str
    weights: int
    kept: int
    live: int
    dead: int
    channels: int
    accessible: int
    co_accessible: int
    both: int

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ConnectivityReport:
    r"""Result of :func:`connectivity`.

    Attributes:
        layers: One :class:`LayerRow` per prunable layer, in flow order.
        flow: The channel flow analysed.
        accessible, co_accessible: Per flow node, bool channel vectors.
    """
    layers: List[LayerRow]
    flow: ChannelFlow = field(repr=False)
    accessible: List[Tensor] = field(repr=False)
    co_accessible: List[Tensor] = field(repr=False)

    @property
    def weights(self) -> int:
        return sum(r.weights for r in self.layers)

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.layers)

    @property
    def live(self) -> int:
        return sum(r.live for r in self.layers)

    @property
    def dead(self) -> int:
        return sum(r.dead for r in self.layers)

    @property
    def nominal_sparsity(self) -> float:
        """Fraction of prunable weights masked out."""
        return 1.0 - self.kept / max(self.weights, 1)

    @property
    def effective_sparsity(self) -> float:
        """Fraction of prunable weights that cannot change the output."""
        return 1.0 - self.live / max(self.weights, 1)

    @property
    def is_consistent(self) -> bool:
        """No kept weight is dead."""
        return self.dead == 0

    @property
    def disconnected(self) -> bool:
        """No path of kept weights leads from the input to the output."""
        return not bool(self.accessible[self.flow.output].any())

    def to_dict(self) -> Dict[str, Any]:
        return dict(weights=self.weights, kept=self.kept, live=self.live,
                    dead=self.dead, nominal_sparsity=self.nominal_sparsity,
                    effective_sparsity=self.effective_sparsity,
                    is_consistent=self.is_consistent,
                    disconnected=self.disconnected,
                    layers=[r.to_dict() for r in self.layers])

    def __str__(self) -> str:
        head = ('layer', 'weights', 'kept', 'live', 'dead', 'channels', 'acc',
                'co-acc', 'both')
        rows = [(r.name, r.weights, r.kept, r.live, r.dead, r.channels,
                 r.accessible, r.co_accessible, r.both) for r in self.layers]
        rows.append(('total', self.weights, self.kept, self.live, self.dead,
                     '', '', '', ''))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        fmt = lambda row: '  '.join(  # noqa: E731
            str(x).ljust(w) if i == 0 else str(x).rjust(w)
            for i, (x, w) in enumerate(zip(row, widths)))
        lines = [fmt(head), fmt(['-' * w for w in widths])]
        lines += [fmt(r) for r in rows]
        lines.append(f'nominal sparsity {self.nominal_sparsity:.4%}, effective '
                     f'sparsity {self.effective_sparsity:.4%}, '
                     f"{'consistent' if self.is_consistent else 'NOT consistent'}"
                     f"{', DISCONNECTED' if self.disconnected else ''}")
        return '\n'.join(lines)


def connectivity(model: nn.Module, masks: Optional[Sequence[Tensor]] = None
                 ) -> ConnectivityReport:
    r"""Analyses which kept weights of ``model`` are live.

    Args:
        model (nn.Module): A model declaring its channel flow.
        masks (Sequence[Tensor], optional): Masks to analyse instead of the
            ``weight_mask`` buffers, one per prunable layer in flow order.

    Returns:
        :class:`ConnectivityReport`, printable as a table.
    """
    flow, layers = flow_layers(model)
    if masks is None:
        masks = [layer.module.weight_mask for layer in layers]
    if len(masks) != len(layers):
        raise ValueError(f"Expected {len(layers)} masks (got {len(masks)})")
    masks = [m.detach() != 0 for m in masks]
    conns = [layer.module.channel_connections(m) for layer, m in zip(layers, masks)]
    acc, co = reachability(flow, conns)
    rows = []
    for layer, m in zip(layers, masks):
        e = layer.edge
        live_factor = layer.module.expand_channels(acc[e.src], co[e.dst])
        kept = int(m.sum())
        live = int((m & live_factor).sum())
        a, c = acc[e.dst], co[e.dst]
        rows.append(LayerRow(layer.name, m.numel(), kept, live, kept - live,
                             a.numel(), int(a.sum()), int(c.sum()),
                             int((a & c).sum())))
    return ConnectivityReport(rows, flow, acc, co)


def live_masks(model: nn.Module) -> Dict[str, Tensor]:
    r"""The masks with every dead entry removed (the *effective* masks of
    Vysogorets & Kempe, "Connectivity matters", 2023), by layer name."""
    flow, layers = flow_layers(model)
    report = connectivity(model)
    out = {}
    for layer in layers:
        e = layer.edge
        factor = layer.module.expand_channels(report.accessible[e.src],
                                              report.co_accessible[e.dst])
        out[layer.name] = layer.module.weight_mask.detach() * factor
    return out


def gate_dead_channels(model: nn.Module,
                       report: Optional[ConnectivityReport] = None) -> int:
    r"""Closes the gate of every channel that is not both accessible and
    co-accessible, so it outputs exactly zero (constants included).

    Returns:
        The number of gated channels.
    """
    report = report or connectivity(model)
    closed = 0
    for node, a, c in zip(report.flow.nodes, report.accessible,
                          report.co_accessible):
        if node.gate is not None:
            keep = (a & c).to(node.gate.gate.dtype)
            node.gate.gate.copy_(keep)
            closed += int((keep == 0).sum())
    return closed


def open_gates(model: nn.Module) -> None:
    """Opens every channel gate of ``model``."""
    for module in model.modules():
        if isinstance(module, ChannelGate):
            module.gate.fill_(1.0)


def shortest_path_weights(model: nn.Module) -> int:
    r"""The fewest weights any input-to-output path of ``model`` needs (one per
    prunable layer on the path; identity residuals cost nothing)."""
    flow, _ = flow_layers(model)
    inf = float('inf')
    cost = [inf] * len(flow.nodes)
    cost[0] = 0
    for v in range(1, len(flow.nodes)):
        for e in flow.edges:
            if e.dst == v:
                cost[v] = min(cost[v], cost[e.src] + (e.module is not None))
    return int(cost[flow.output])
