"""The prunable-weight mechanism and the channel-flow declarations.

Every weight that pruning may touch is a ``weight`` parameter with a
``weight_mask`` buffer of the same shape, applied inside ``forward``
(``weight * weight_mask``). A pruning method only writes masks (through
:meth:`PrunableModule.set_mask`); it never needs to know the layer type,
because each layer declares which weight axes index its input and output
channels, and each block declares how channels flow through it
(:class:`ChannelFlow`). The connectivity analysis reads both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


def masked_weight(weight: Tensor, mask: Tensor,
                  straight_through: bool = False) -> Tensor:
    r"""``weight * mask``; with ``straight_through`` the gradient reaches every
    latent weight as if the mask were all ones (the value is unchanged)."""
    if straight_through:
        return weight - (weight * (1 - mask)).detach()
    return weight * mask


class PrunableModule(nn.Module):
    r"""Base of every layer with one prunable ``weight``.

    Subclasses create ``self.weight`` and call :meth:`_init_mask`, set
    :attr:`in_axis` / :attr:`out_axis` (the weight axes indexing input and
    output channels; every other axis is a kernel axis such as partitions,
    time taps or nodes) and use :meth:`masked_weight` in ``forward``.

    Pruning methods set :attr:`straight_through` to route gradients to pruned
    latent weights; it is a training-time setting and is not saved.
    """
    in_axis: int = 1
    out_axis: int = 0
    straight_through: bool = False
    weight: nn.Parameter
    weight_mask: Tensor

    def _init_mask(self) -> None:
        self.register_buffer('weight_mask', torch.ones_like(self.weight))

    @property
    def num_in(self) -> int:
        """Number of input channels the weight connects."""
        return self.weight.size(self.in_axis)

    @property
    def num_out(self) -> int:
        """Number of output channels the weight connects."""
        return self.weight.size(self.out_axis)

    def masked_weight(self) -> Tensor:
        return masked_weight(self.weight, self.weight_mask,
                             self.straight_through)

    def set_mask(self, mask: Tensor) -> None:
        """Validates and stores a mask (bool or float in [0, 1]).

        A mask with a ``grad_fn`` (a relaxed mask) is stored as is, so its
        graph reaches the loss; everything else is copied in place.
        """
        if not isinstance(mask, Tensor):
            raise TypeError(f"{type(self).__name__}: expected the mask to be a "
                            f"Tensor (got {type(mask).__name__})")
        if mask.shape != self.weight.shape:
            raise ValueError(f"{type(self).__name__}: expected a mask of shape "
                             f"{tuple(self.weight.shape)} (got "
                             f"{tuple(mask.shape)})")
        if not (mask.dtype == torch.bool or mask.is_floating_point()):
            raise TypeError(f"{type(self).__name__}: expected a bool or float "
                            f"mask (got {mask.dtype})")
        mask = mask.to(device=self.weight.device, dtype=self.weight.dtype)
        if mask.requires_grad:
            self.weight_mask = mask
        elif self.weight_mask.requires_grad:  # replacing a relaxed mask
            self.weight_mask = mask.clone()
        else:
            with torch.no_grad():
                self.weight_mask.copy_(mask)

    def channel_connections(self, mask: Optional[Tensor] = None) -> Tensor:
        r"""Which input channel reaches which output channel through a kept
        entry: a bool matrix of shape ``[num_in, num_out]``.

        Args:
            mask (Tensor, optional): Another mask of the weight's shape.
                (default: the current ``weight_mask``)
        """
        m = (self.weight_mask if mask is None else mask) != 0
        m = m.movedim((self.in_axis, self.out_axis), (0, 1))
        return m.reshape(m.size(0), m.size(1), -1).any(dim=-1)

    def expand_channels(self, in_vec: Tensor, out_vec: Tensor) -> Tensor:
        r"""The weight-shaped outer product ``in_vec[i] * out_vec[o]`` (kernel
        axes broadcast): the factor ``a_{l-1} c_l^T`` of TCMP's effective
        mask."""
        shape_in = [1] * self.weight.dim()
        shape_in[self.in_axis] = -1
        shape_out = [1] * self.weight.dim()
        shape_out[self.out_axis] = -1
        return (in_vec.view(shape_in) * out_vec.view(shape_out)).expand(
            self.weight.shape)

    def remove_mask(self) -> None:
        """Makes pruning permanent: ``weight <- weight * weight_mask``, mask
        reset to ones."""
        with torch.no_grad():
            self.weight.mul_(self.weight_mask)
            self.weight_mask = torch.ones_like(self.weight)


class ChannelGate(nn.Module):
    r"""Multiplies the channel (last) dimension by a 0/1 ``gate`` buffer.

    A channel that is not both accessible and co-accessible still carries a
    constant (bias, normalisation shift); closing its gate makes it output
    exactly zero, so removing its dead weights cannot change the output.
    """
    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.register_buffer('gate', torch.ones(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate

    def extra_repr(self) -> str:
        return f'{self.gate.numel()}'


@dataclass
class FlowNode:
    """A group of channels: a layer's output, a residual sum, a concatenation."""
    name: str
    size: int
    gate: Optional[ChannelGate] = None


@dataclass
class FlowEdge:
    """Channels of ``src`` feed channels of ``dst``: through a prunable layer
    (``module``), or one to one (``module is None``): channel
    ``src_index[j]`` of ``src`` onto channel ``dst_index[j]`` of ``dst``."""
    src: int
    dst: int
    module: Optional[PrunableModule] = None
    src_index: Optional[Tensor] = None
    dst_index: Optional[Tensor] = None


@dataclass
class ChannelFlow:
    r"""How channels flow through a model, from its input node to its output
    node, as a DAG whose nodes are created in topological order.

    Blocks describe themselves with :meth:`layer`, :meth:`add` and
    :meth:`concat`; a new layer type only declares its channel axes.
    """
    nodes: List[FlowNode] = field(default_factory=list)
    edges: List[FlowEdge] = field(default_factory=list)
    output: int = -1

    def input(self, name: str, size: int) -> int:
        if self.nodes:
            raise ValueError("ChannelFlow: the input must be the first node")
        return self._node(name, size, None)

    def layer(self, src: int, module: PrunableModule, name: str,
              gate: Optional[ChannelGate] = None) -> int:
        """A node fed by a prunable layer from ``src``."""
        if module.num_in != self.nodes[src].size:
            raise ValueError(f"ChannelFlow: layer '{name}' takes "
                             f"{module.num_in} channels but node "
                             f"'{self.nodes[src].name}' has "
                             f"{self.nodes[src].size}")
        dst = self._node(name, module.num_out, gate)
        self.edges.append(FlowEdge(src, dst, module))
        return dst

    def add(self, srcs: Sequence[int], name: str,
            gate: Optional[ChannelGate] = None) -> int:
        """A node summing equally sized nodes channel by channel (residuals)."""
        sizes = {self.nodes[s].size for s in srcs}
        if len(sizes) != 1:
            raise ValueError(f"ChannelFlow: cannot add nodes of sizes "
                             f"{sorted(sizes)} in '{name}'")
        size = sizes.pop()
        return self.merge(name, size, [(s, None, range(size)) for s in srcs], gate)

    def concat(self, srcs: Sequence[int], name: str,
               gate: Optional[ChannelGate] = None) -> int:
        """A node concatenating nodes along the channel axis."""
        parts, offset = [], 0
        for s in srcs:
            n = self.nodes[s].size
            parts.append((s, None, range(offset, offset + n)))
            offset += n
        return self.merge(name, offset, parts, gate)

    def merge(self, name: str, size: int,
              parts: Sequence[Tuple[int, Optional[Sequence[int]], Sequence[int]]],
              gate: Optional[ChannelGate] = None) -> int:
        """A node of ``size`` channels receiving, one to one, channels
        ``src_index`` of each part's node (all when None) at ``dst_index``
        (a residual sum onto a subset of channels, a concatenation...)."""
        dst = self._node(name, size, gate)
        for src, src_index, dst_index in parts:
            src_index = (torch.arange(self.nodes[src].size) if src_index is None
                         else torch.as_tensor(list(src_index), dtype=torch.long))
            dst_index = torch.as_tensor(list(dst_index), dtype=torch.long)
            if src_index.numel() != dst_index.numel() or (
                    dst_index.numel() and int(dst_index.max()) >= size):
                raise ValueError(f"ChannelFlow: part of node '{name}' maps "
                                 f"{src_index.numel()} channels onto "
                                 f"{dst_index.numel()} of {size}")
            self.edges.append(FlowEdge(src, dst, None, src_index, dst_index))
        return dst

    def set_output(self, node: int) -> None:
        self.output = node

    def layers(self) -> Iterator[Tuple[FlowEdge, PrunableModule]]:
        for e in self.edges:
            if e.module is not None:
                yield e, e.module

    def _node(self, name: str, size: int, gate: Optional[ChannelGate]) -> int:
        if gate is not None and gate.gate.numel() != size:
            raise ValueError(f"ChannelFlow: gate of node '{name}' has "
                             f"{gate.gate.numel()} channels, expected {size}")
        self.nodes.append(FlowNode(name, int(size), gate))
        return len(self.nodes) - 1


class FlowModel(nn.Module):
    r"""A model whose channel flow is known: implements :meth:`channel_flow`."""

    def channel_flow(self) -> ChannelFlow:
        raise NotImplementedError


def prunable_weights(model: nn.Module) -> Iterator[Tuple[str, PrunableModule]]:
    r"""Yields ``(name, module)`` for every prunable weight of ``model`` in
    definition order.

    Only the ``weight`` of a :class:`PrunableModule` is prunable: biases,
    normalisation parameters, learnable edge importance and attention
    matrices are never pruned (they do not connect channels).
    """
    for name, module in model.named_modules():
        if isinstance(module, PrunableModule):
            yield name, module
