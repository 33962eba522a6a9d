"""Connectivity analysis: which kept weights can change the prediction.

The network is a graph of channels (:class:`~tcmp_pyg.nn.ChannelFlow`): a kept
weight entry links an input channel of its layer to an output channel;
residual identities, BatchNorm and activations keep channels one to one.
A channel is *accessible* when a path of kept connections reaches it from the
model's input, *co-accessible* when such a path leads from it to the output
(the logits). A kept weight is *live* when its input channel is accessible
and its output channel co-accessible; otherwise it is *dead*. An output
channel (a class logit) is *reachable* when it is accessible: a network can be
consistent (no dead weight) and still leave classes unreachable, so the report
counts both.

Models declare their flow (``channel_flow()``); a plain :class:`nn.Sequential`
of Linear / Conv layers gets one automatically (:func:`channel_flow_of`),
masks made by :mod:`torch.nn.utils.prune` included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.prunable import ChannelFlow, ChannelGate, FlowEdge, PrunableModule


@dataclass
class FlowLayer:
    """A prunable layer of a flow: its name, module and flow edge.

    ``module`` is the :class:`~tcmp_pyg.nn.PrunableModule` itself, or for a
    layer of an automatic flow (:func:`channel_flow_of`) that has no such
    class or whose input is flattened, a :class:`LayerView` of it.
    """
    name: str
    module: Union[PrunableModule, 'LayerView']
    edge: FlowEdge


def flow_layers(model: nn.Module, flow: Optional[ChannelFlow] = None
                ) -> Tuple[ChannelFlow, List[FlowLayer]]:
    r"""The model's channel flow and its prunable layers, in flow order.

    A model declares its flow with ``channel_flow()``; an :class:`nn.Sequential`
    without one gets the automatic flow of :func:`channel_flow_of`.

    Raises:
        TypeError: if the model does not declare its channel flow (and is not
            a supported :class:`nn.Sequential`), or has a prunable layer
            outside it.
    """
    if flow is None:
        if hasattr(model, 'channel_flow'):
            flow = model.channel_flow()
        elif type(model) is nn.Sequential:  # a subclass may change forward()
            flow = channel_flow_of(model)
        else:
            raise TypeError(
                f"{type(model).__name__} does not declare how channels flow "
                f"through it (no 'channel_flow()' method), so its connectivity "
                f"is unknown. Subclass tcmp_pyg.nn.FlowModel and describe the "
                f"blocks with ChannelFlow.layer/add/concat.")
    names = {id(m): n for n, m in model.named_modules()}
    layers = []
    for edge, module in flow.layers():
        target = module.module if isinstance(module, LayerView) else module
        if id(target) not in names:
            raise ValueError(f"{type(model).__name__}.channel_flow() names a "
                             f"layer that is not a submodule: {module}")
        layers.append(FlowLayer(names[id(target)], module, edge))
    in_flow = {id(layer.module.module if isinstance(layer.module, LayerView)
                  else layer.module) for layer in layers}
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


# -- automatic flows of plain torch models ------------------------------------

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ELEMENTWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU,
    nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.FeatureAlphaDropout)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
          nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveMaxPool1d,
          nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool1d,
          nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_SUPPORTED = ("nn.Linear, nn.Conv1d/2d/3d (groups=1), tcmp_pyg.nn.Linear "
              "(nodes=None), BatchNorm, element-wise activations, Dropout, "
              "pooling, Flatten, a final Softmax/LogSoftmax and nested "
              "nn.Sequential")


class LayerView:
    r"""A layer of an automatic flow (:func:`channel_flow_of`) as the analysis
    sees it: a :class:`~tcmp_pyg.nn.PrunableModule`-like object with
    ``in_axis=1`` and ``out_axis=0``, wrapping

    - a plain :class:`nn.Linear` / :class:`nn.Conv1d` ... whose mask is
      :mod:`torch.nn.utils.prune`'s ``weight_mask`` buffer (all ones when the
      layer is not pruned); the latent weight is ``weight_orig``. Such a view
      is read-only: convert the model with
      :func:`~tcmp_pyg.pruning.from_torch_prune` (``convert=True``) to prune
      it with this toolkit;
    - or a prunable layer whose input is a flattened convolution output
      (``spread > 1``): the weight ``[out, C * S]`` is seen as
      ``[out, C, S]``, ``C`` convolution channels of ``S`` features each (the
      kernel-axis trick of :class:`~tcmp_pyg.nn.Linear` with ``nodes``).
      Reads and writes go to the layer.

    Args:
        module (nn.Module): The wrapped layer.
        spread (int, optional): Input features per channel. (default: :obj:`1`)
    """
    in_axis = 1
    out_axis = 0

    def __init__(self, module: nn.Module, spread: int = 1) -> None:
        self.module = module
        self.spread = int(spread)

    def _view(self, t: Tensor) -> Tensor:
        return t if self.spread == 1 else t.view(t.size(0), -1, self.spread)

    @property
    def weight(self) -> Tensor:
        """The latent (unmasked) weight."""
        m = self.module
        return self._view(m.weight_orig if hasattr(m, 'weight_orig') else m.weight)

    @property
    def weight_mask(self) -> Tensor:
        mask = getattr(self.module, 'weight_mask', None)
        return self._view(torch.ones_like(self.module.weight) if mask is None
                          else mask)

    @property
    def num_in(self) -> int:
        return self.weight.size(1)

    @property
    def num_out(self) -> int:
        return self.weight.size(0)

    # PrunableModule's versions read only weight, weight_mask and the axes.
    channel_connections = PrunableModule.channel_connections
    expand_channels = PrunableModule.expand_channels

    @property
    def writable(self) -> bool:
        """Whether this toolkit can write the mask: a prunable layer, not a
        plain torch one."""
        return isinstance(self.module, PrunableModule)

    def set_mask(self, mask: Tensor) -> None:
        """Writes the mask of a prunable layer (refused for a plain one)."""
        if not self.writable:
            raise TypeError(self.read_only_message())
        if not isinstance(mask, Tensor) or mask.shape != self.weight.shape:
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"{self}: expected a mask of shape "
                             f"{tuple(self.weight.shape)} (got {shape})")
        self.module.set_mask(mask.reshape(self.module.weight.shape))

    @property
    def straight_through(self) -> bool:
        return bool(getattr(self.module, 'straight_through', False))

    @straight_through.setter
    def straight_through(self, value: bool) -> None:
        if self.writable:
            self.module.straight_through = value
        elif value:
            raise TypeError(self.read_only_message())

    def read_only_message(self) -> str:
        """Why a plain torch layer cannot be pruned here, and what to do."""
        return (f"{type(self.module).__name__} is a plain torch layer: the "
                f"connectivity analysis reads its mask (torch.nn.utils.prune's "
                f"'weight_mask') but does not write it. Convert the model with "
                f"tcmp_pyg.pruning.from_torch_prune(model, convert=True) to "
                f"prune it with this toolkit.")

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.module}, spread={self.spread})'


def _leaves(seq: nn.Sequential, prefix: str) -> List[Tuple[str, nn.Module]]:
    out = []
    for name, child in seq.named_children():
        full = f'{prefix}{name}'
        if type(child) is nn.Sequential:
            out += _leaves(child, f'{full}.')
        else:
            out.append((full, child))
    return out


def channel_flow_of(model: nn.Sequential) -> ChannelFlow:
    r"""Derives the channel flow of a plain :class:`nn.Sequential`.

    Linear layers map the last axis of ``[B, features]`` tensors, convolutions
    the channel axis of ``[B, C, *spatial]`` tensors; BatchNorm, activations,
    Dropout and pooling keep channels one to one. A :class:`nn.Flatten` after
    a convolution turns channel ``c`` into the features ``c * S .. c * S +
    S - 1`` (channel-major, ``S`` spatial positions): the next Linear is seen
    through a :class:`LayerView` with its weight ``[out, C * S]`` viewed as
    ``[out, C, S]`` (the extra axis is a kernel axis). A Flatten before any
    weighted layer makes the flattened input features the input channels.

    Layers that are plain torch modules (pruned with
    :mod:`torch.nn.utils.prune` or not) are read through a :class:`LayerView`;
    prunable layers (:class:`~tcmp_pyg.nn.PrunableModule`, e.g. those made by
    :func:`~tcmp_pyg.pruning.from_torch_prune` with ``convert=True``) take
    part directly. Masks read or written through a view have the viewed
    shape (e.g. :func:`live_masks` of a Linear after a Flatten).

    Args:
        model (nn.Sequential): The model.

    Returns:
        :class:`~tcmp_pyg.nn.ChannelFlow` from the input of the first
        weighted layer to the output of the last one.

    Raises:
        TypeError: for a layer whose channel map is unknown (recurrent
            layers, attention, grouped or transposed convolutions, LayerNorm,
            reshapes, custom modules...), or a Linear that reads the spatial
            axis of a convolution output (no Flatten in between).
    """
    leaves = _leaves(model, '')
    weighted = [i for i, (_, m) in enumerate(leaves) if _is_weighted(m)]
    if not weighted:
        raise ValueError(f"{type(model).__name__} has no prunable weight (no "
                         f"Linear or Conv layer)")
    flow = ChannelFlow()
    node: Optional[int] = None
    axis = 'input'  # 'input' (nothing weighted yet), 'features', 'channels', 'flat'
    flat_channels = 0

    def refuse(name: str, module: nn.Module, why: str) -> TypeError:
        return TypeError(
            f"nn.Sequential does not declare how channels flow through it, and "
            f"its layer '{name}' ({type(module).__name__}) {why}. Automatic "
            f"flows support {_SUPPORTED}; for other models subclass "
            f"tcmp_pyg.nn.FlowModel and describe the blocks with "
            f"ChannelFlow.layer/add/concat.")

    for i, (name, m) in enumerate(leaves):
        if _is_weighted(m):
            is_conv = isinstance(m, _CONVS)
            if is_conv and m.groups != 1:
                raise refuse(name, m, 'is a grouped convolution')
            if is_conv and axis in ('features', 'flat'):
                raise refuse(name, m, 'is a convolution after a Linear layer '
                             'or a Flatten')
            if not is_conv and axis == 'channels':
                raise refuse(name, m, 'is a Linear layer on the spatial axis of '
                             'a convolution output; put a Flatten (after '
                             'pooling) in between')
            spread = 1
            if axis == 'flat':
                features = LayerView(m).num_in
                if features % flat_channels:
                    raise refuse(name, m, f'takes {features} features, not a '
                                 f'multiple of the {flat_channels} flattened '
                                 f'convolution channels')
                spread = features // flat_channels
            layer = (m if isinstance(m, PrunableModule) and spread == 1
                     else LayerView(m, spread))
            if node is None:
                node = flow.input('input', layer.num_in)
            node = flow.layer(node, layer, name)
            axis = 'channels' if is_conv else 'features'
        elif isinstance(m, _ELEMENTWISE):
            continue
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if axis in ('features', 'channels') and m.num_features != flow.nodes[node].size:
                raise refuse(name, m, f'normalises {m.num_features} channels '
                             f'but receives {flow.nodes[node].size}')
        elif isinstance(m, _POOLS):
            if axis in ('features', 'flat'):
                raise refuse(name, m, 'pools after a Linear layer or a Flatten')
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise refuse(name, m, 'flattens other axes than 1..-1')
            if axis == 'input':
                axis = 'features'
            elif axis == 'channels':
                axis, flat_channels = 'flat', flow.nodes[node].size
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            if i < weighted[-1]:
                raise refuse(name, m, 'mixes channels before a weighted layer '
                             '(only a final Softmax is supported)')
        else:
            raise refuse(name, m, 'has no known channel map')
    flow.set_output(node)
    return flow


def _is_weighted(module: nn.Module) -> bool:
    if isinstance(module, (nn.Linear,) + _CONVS):
        return True
    # tcmp_pyg.nn.Linear without nodes: a [out, in] prunable weight.
    return (isinstance(module, PrunableModule) and module.weight.dim() == 2
            and module.in_axis == 1 and module.out_axis == 0)


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
        """No kept weight is dead (topological consistency). It says nothing
        about the outputs: a consistent network may reach only some of them
        (see :attr:`covers_outputs`), or none when nothing is kept."""
        return self.dead == 0

    @property
    def num_outputs(self) -> int:
        """Channels of the output node (the class logits)."""
        return self.flow.nodes[self.flow.output].size

    @property
    def reachable_outputs(self) -> int:
        """Output channels that a path of kept weights reaches from the input;
        the others are constants (their bias) whatever the input."""
        return int(self.accessible[self.flow.output].sum())

    @property
    def covers_outputs(self) -> bool:
        """Every output channel is reachable from the input."""
        return self.reachable_outputs == self.num_outputs

    @property
    def disconnected(self) -> bool:
        """No path of kept weights leads from the input to the output."""
        return self.reachable_outputs == 0

    def to_dict(self) -> Dict[str, Any]:
        return dict(weights=self.weights, kept=self.kept, live=self.live,
                    dead=self.dead, nominal_sparsity=self.nominal_sparsity,
                    effective_sparsity=self.effective_sparsity,
                    is_consistent=self.is_consistent,
                    reachable_outputs=self.reachable_outputs,
                    num_outputs=self.num_outputs,
                    covers_outputs=self.covers_outputs,
                    disconnected=self.disconnected,
                    layers=[r.to_dict() for r in self.layers])

    def outputs_text(self) -> str:
        """``'k of n outputs reachable'``, flagged when some are not."""
        k, n = self.reachable_outputs, self.num_outputs
        text = f'{k} of {n} outputs reachable'
        if k == 0:
            return text + ', DISCONNECTED'
        return text if k == n else f'{text} ({n - k} UNREACHABLE)'

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
                     f", {self.outputs_text()}")
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
    return close_gates(report.flow, report.accessible, report.co_accessible)


def close_gates(flow: ChannelFlow, accessible: Sequence[Tensor],
                co_accessible: Sequence[Tensor]) -> int:
    """Sets the gate of every node of ``flow`` to its channels that are both
    accessible and co-accessible; returns the number of closed channels."""
    closed = 0
    for node, a, c in zip(flow.nodes, accessible, co_accessible):
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


def channel_distances(flow: ChannelFlow) -> List[Tensor]:
    r"""The fewest weights that make each channel accessible from the input,
    over the dense network (every entry kept).

    A prunable edge costs one weight per use, an identity edge nothing:
    :math:`d_{dst}[o] = \min_{i : C[i, o]} d_{src}[i] + 1` over the channel
    connections :math:`C` of the layer's all-ones mask.

    Returns:
        One float vector per node (``inf`` where no path exists).
    """
    inf = float('inf')
    dist = [torch.full((n.size,), inf, dtype=torch.float64) for n in flow.nodes]
    dist[0].zero_()
    for v in range(1, len(flow.nodes)):
        for e in flow.edges:
            if e.dst != v:
                continue
            if e.module is None:
                dist[v][e.dst_index] = torch.minimum(dist[v][e.dst_index],
                                                     dist[e.src][e.src_index])
                continue
            full = e.module.channel_connections(
                torch.ones_like(e.module.weight, dtype=torch.bool)).cpu()
            step = torch.where(full, 1.0, inf).to(torch.float64)
            dist[v] = torch.minimum(
                dist[v], (dist[e.src].view(-1, 1) + step).min(dim=0).values)
    return dist


def shortest_path_weights(model: nn.Module) -> int:
    r"""The fewest weights any input-to-output path of ``model`` needs (one per
    prunable layer on the path; identity residuals cost nothing)."""
    flow, _ = flow_layers(model)
    return int(channel_distances(flow)[flow.output].min())


def coverage_weights(model: nn.Module) -> int:
    r"""The fewest weights with which *every* output channel (class logit) of
    ``model`` is reachable from the input.

    When the output node is fed by one prunable layer (the classifier: every
    model of this toolkit and every automatic flow of an
    :class:`nn.Sequential`), each output needs its own classifier entry and
    the sources of those entries at least one accessible channel, so

    .. math::
        \min_{i} d_{src}[i] + n_{out},

    :math:`i` over the classifier inputs connected to every output, is
    **exact**: a shortest path to channel :math:`i` plus the entries
    :math:`(i, o)` reach all :math:`n_{out}` outputs. For any other output
    node (a residual sum or a concatenation at the very end) the value is a
    **lower bound**, the longest of the shortest paths to one output.

    Returns:
        The number of weights (at least :func:`shortest_path_weights`).
    """
    flow, _ = flow_layers(model)
    dist = channel_distances(flow)
    incoming = [e for e in flow.edges if e.dst == flow.output]
    num_out = flow.nodes[flow.output].size
    if len(incoming) == 1 and incoming[0].module is not None:
        e = incoming[0]
        full = e.module.channel_connections(
            torch.ones_like(e.module.weight, dtype=torch.bool)).cpu()
        feeds_all = full.all(dim=1)
        src = dist[e.src]
        if bool(feeds_all.any()) and bool(torch.isfinite(src[feeds_all]).any()):
            return int(src[feeds_all].min()) + num_out
        return int(src.min()) + num_out  # a sparse classifier: lower bound
    return int(dist[flow.output].max())


def channel_groups(flow: ChannelFlow) -> Tuple[List[int], Tensor]:
    r"""Channels that are one channel for pruning: those joined one to one by
    identity edges (residual sums, concatenations).

    Args:
        flow (ChannelFlow): The channel flow.

    Returns:
        ``(offsets, group)``: where each node's channels start in the
        concatenation of all nodes' channels (one more entry for the end), and
        a group id per channel of that concatenation: the smallest id of its
        group.
    """
    offsets = [0]
    for node in flow.nodes:
        offsets.append(offsets[-1] + node.size)
    parent = list(range(offsets[-1]))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in flow.edges:
        if e.module is None:
            for i, o in zip(e.src_index.tolist(), e.dst_index.tolist()):
                a, b = find(offsets[e.src] + i), find(offsets[e.dst] + o)
                if a != b:  # the smallest id is the root
                    parent[max(a, b)] = min(a, b)
    return offsets, torch.tensor([find(x) for x in range(offsets[-1])],
                                 dtype=torch.long)
