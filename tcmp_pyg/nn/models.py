"""Skeleton action-recognition models with prunable weights.

All models take ``(in_channels, num_classes, layout, *, ...)`` and a PyG batch
of sequences of that layout (``batch.x: [B * M * V, T, C]``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmp_pyg.layouts import LayoutLike, SkeletonLayout, get_layout
from tcmp_pyg.nn.conv import (AttentionPropagation, Linear, STGraphConv,
                              TemporalConv)
from tcmp_pyg.nn.prunable import ChannelFlow, ChannelGate, FlowModel


def _bn(x: Tensor, bn: nn.BatchNorm1d) -> Tensor:
    # Channel-last BatchNorm: statistics over every node and frame.
    return bn(x.reshape(-1, x.size(-1))).view(x.shape)


def bn_affine(bn: nn.BatchNorm1d) -> Tuple[Tensor, Tensor]:
    r"""The eval-mode BatchNorm as ``x * scale + shift`` (running statistics,
    affine parameters when present), detached."""
    scale = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


class STGCNBlock(nn.Module):
    r"""An ST-GCN block: spatial graph convolution, BatchNorm, ReLU, temporal
    convolution, BatchNorm, then a residual sum and ReLU.

    The residual is absent (``residual=False``), the identity (same channels,
    stride 1) or a prunable 1x1 temporal projection with BatchNorm. Each
    branch ends with a :class:`ChannelGate` so that channels no input reaches
    can be switched off, constants included.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        layout (str or SkeletonLayout): The skeleton.
        stride (int, optional): Temporal stride. (default: :obj:`1`)
        residual (bool, optional): Add a residual branch. (default: :obj:`True`)
        partitions (int, optional): Spatial partitions. (default: :obj:`3`)
        kernel_size (int, optional): Temporal taps. (default: :obj:`9`)
        edge_importance (bool, optional): Learnable edge importance.
            (default: :obj:`False`)
        sparse (bool, optional): Sparse aggregation path. (default: :obj:`True`)
        dropout (float, optional): Dropout after the temporal BatchNorm.
            (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(N, T, C_{in})`, edge indices :math:`(2, E)`
        - **output:** :math:`(N, \lceil T / \mathrm{stride} \rceil, C_{out})`
    """
    def __init__(self, in_channels: int, out_channels: int, *,
                 layout: LayoutLike, stride: int = 1, residual: bool = True,
                 partitions: int = 3, kernel_size: int = 9,
                 edge_importance: bool = False, sparse: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.gcn = STGraphConv(in_channels, out_channels, layout=layout,
                               partitions=partitions,
                               edge_importance=edge_importance, sparse=sparse)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.gate1 = ChannelGate(out_channels)
        self.tcn = TemporalConv(out_channels, out_channels, kernel_size,
                                stride=stride)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.gate2 = ChannelGate(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.identity = residual and in_channels == out_channels and stride == 1
        if residual and not self.identity:
            self.proj = TemporalConv(in_channels, out_channels, 1, stride=stride)
            self.proj_bn = nn.BatchNorm1d(out_channels)
            self.proj_gate = ChannelGate(out_channels)
        else:
            self.proj = None

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.gate1(F.relu(_bn(self.gcn(x, edge_index), self.bn1)))
        h = self.gate2(self.dropout(_bn(self.tcn(h), self.bn2)))
        if self.identity:
            h = h + x
        elif self.proj is not None:
            h = h + self.proj_gate(_bn(self.proj(x), self.proj_bn))
        return F.relu(h)

    def trace_channels(self, flow: ChannelFlow, src: int, name: str) -> int:
        """Declares this block's channel flow from node ``src``; returns the
        output node."""
        g = flow.layer(src, self.gcn, f'{name}.gcn', self.gate1)
        t = flow.layer(g, self.tcn, f'{name}.tcn', self.gate2)
        if self.identity:
            return flow.add([t, src], f'{name}.out')
        if self.proj is not None:
            r = flow.layer(src, self.proj, f'{name}.proj', self.proj_gate)
            return flow.add([t, r], f'{name}.out')
        return t

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, '
                f'{self.out_channels}, stride={self.stride})')


class _SkeletonModel(FlowModel):
    """Shared input checks and the architecture description."""
    layout: SkeletonLayout
    in_channels: int
    num_classes: int

    def config(self) -> Dict[str, Any]:
        """Constructor arguments as plain data (rebuilds the model)."""
        raise NotImplementedError

    def forward(self, data: Any) -> Tensor:
        return self.forward_tensors(data.x, data.edge_index, data.num_graphs)

    def forward_tensors(self, x: Tensor, edge_index: Tensor,
                        num_graphs: int) -> Tensor:
        """:meth:`forward` on plain tensors."""
        raise NotImplementedError

    def _normalized(self, x: Tensor, num_graphs: int) -> Tensor:
        """``data_bn`` on ``[B * V, T, C]``: each (node, channel) pair
        normalised over samples and frames; returns ``[B, V, T, C]``."""
        V = self.layout.num_nodes
        _, T, C = x.shape
        h = x.view(num_graphs, V, T, C).permute(0, 1, 3, 2).reshape(
            num_graphs, V * C, T)
        return self.data_bn(h).view(num_graphs, V, C, T).permute(0, 1, 3, 2)

    def _check_batch(self, x: Tensor, edge_index: Tensor, num_graphs: int, *,
                     num_frames: Optional[int] = None) -> None:
        V = self.layout.num_nodes
        if x.dim() != 3 or x.size(-1) != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected 'x' of shape "
                             f"[B * {V}, T, {self.in_channels}] (got "
                             f"{tuple(x.shape)})")
        if x.size(0) != num_graphs * V:
            raise ValueError(
                f"{type(self).__name__}: the batch has {x.size(0)} nodes for "
                f"{num_graphs} graphs, but layout '{self.layout.name}' has "
                f"{V} nodes per graph ({self.layout.num_bodies} bodies x "
                f"{self.layout.num_joints} joints). Was the model built for "
                f"another dataset?")
        if num_frames is not None and x.size(1) != num_frames:
            raise ValueError(f"{type(self).__name__}: expected sequences of "
                             f"{num_frames} frames (got {x.size(1)}); resample "
                             f"the dataset with num_frames={num_frames}")


class STGCN(_SkeletonModel):
    r"""ST-GCN (`Yan et al., AAAI 2018 <https://arxiv.org/abs/1801.07455>`_)
    built from :class:`STGCNBlock` with prunable weights.

    The input is normalised per node and channel (``data_bn``), passes the
    blocks, is averaged over frames and over every node of a sample (all
    bodies), and a prunable linear layer gives the logits. The defaults are
    the standard 10-block model (about 3.1 M parameters for NTU).

    Args:
        in_channels (int): Coordinates per joint (``C``).
        num_classes (int): Number of classes.
        layout (str or SkeletonLayout): The skeleton.
        channels (Sequence[int], optional): Output channels of each block.
        strides (Sequence[int], optional): Temporal stride of each block.
            (default: 2 where the channels grow after the first block)
        partitions (int, optional): Spatial partitions. (default: :obj:`3`)
        kernel_size (int, optional): Temporal taps. (default: :obj:`9`)
        edge_importance (bool, optional): Learnable edge importance.
            (default: :obj:`False`)
        dropout (float, optional): Dropout before the classifier.
            (default: :obj:`0.0`)
        sparse (bool, optional): Sparse aggregation path. (default: :obj:`True`)

    Shapes:
        - **input:** a batch with ``x`` :math:`(B \cdot M \cdot V, T, C)`,
          ``edge_index`` and ``num_graphs``
        - **output:** logits :math:`(B, \mathrm{num\_classes})`
    """
    def __init__(self, in_channels: int, num_classes: int, layout: LayoutLike, *,
                 channels: Sequence[int] = (64, 64, 64, 64, 128, 128, 128, 256,
                                            256, 256),
                 strides: Optional[Sequence[int]] = None, partitions: int = 3,
                 kernel_size: int = 9, edge_importance: bool = False,
                 dropout: float = 0.0, sparse: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.layout = get_layout(layout)
        self.channels = tuple(int(c) for c in channels)
        if strides is None:
            strides = [2 if i > 0 and c > self.channels[i - 1] else 1
                       for i, c in enumerate(self.channels)]
        self.strides = tuple(int(s) for s in strides)
        if len(self.strides) != len(self.channels) or not self.channels:
            raise ValueError(f"Expected one stride per block (got "
                             f"{len(self.strides)} strides for "
                             f"{len(self.channels)} blocks)")
        if num_classes < 1:
            raise ValueError(f"Expected 'num_classes' >= 1 (got {num_classes})")
        self.partitions = partitions
        self.kernel_size = kernel_size
        self.edge_importance = edge_importance
        self.dropout_p = dropout
        self.sparse = sparse

        self.data_bn = nn.BatchNorm1d(self.layout.num_nodes * in_channels)
        blocks = []
        c_in = in_channels
        for i, (c, s) in enumerate(zip(self.channels, self.strides)):
            blocks.append(STGCNBlock(c_in, c, layout=self.layout, stride=s,
                                     residual=i > 0, partitions=partitions,
                                     kernel_size=kernel_size,
                                     edge_importance=edge_importance,
                                     sparse=sparse))
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = Linear(c_in, num_classes)

    def forward_tensors(self, x: Tensor, edge_index: Tensor,
                        num_graphs: int) -> Tensor:
        """:meth:`forward` on plain tensors."""
        self._check_batch(x, edge_index, num_graphs)
        B = num_graphs
        N, T, C = x.shape
        h = self._normalized(x, B).reshape(N, T, C)
        for block in self.blocks:
            h = block(h, edge_index)
        h = h.view(B, -1, h.size(-1)).mean(dim=1)  # over bodies, joints, frames
        return self.fc(self.dropout(h))

    def channel_flow(self) -> ChannelFlow:
        flow = ChannelFlow()
        node = flow.input('input', self.in_channels)
        for i, block in enumerate(self.blocks):
            node = block.trace_channels(flow, node, f'blocks.{i}')
        flow.set_output(flow.layer(node, self.fc, 'fc'))
        return flow

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, num_classes=self.num_classes,
                    layout=self.layout.to_dict(), channels=list(self.channels),
                    strides=list(self.strides), partitions=self.partitions,
                    kernel_size=self.kernel_size,
                    edge_importance=self.edge_importance,
                    dropout=self.dropout_p, sparse=self.sparse)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, {self.num_classes}, '
                f"layout='{self.layout.name}', blocks={len(self.blocks)})")


class AttentionGCN(_SkeletonModel):
    r"""The model family of TCMP (`Sahbi, ICASSP 2024
    <https://arxiv.org/abs/2306.17590>`_): multi-head attention over the
    skeleton graph, a graph convolution and fully connected layers, taking
    each joint's whole trajectory as its features.

    Each head :math:`h` is a learned node-to-node matrix
    :math:`\mathbf{A}_h = \mathrm{softmax}(\mathbf{S}_h)` (initialised on the
    skeleton's bones and self-loops); the graph convolution gives every head
    its own slice of a prunable weight:

    .. math::
        \mathbf{Z} = \mathrm{ReLU}\big(\mathrm{BN}\big(\big\Vert_{h}
        \mathbf{A}_h \mathbf{F} \mathbf{W}_h\big)\big), \quad
        \mathbf{F} \in \mathbb{R}^{V \times T C}

    followed by a prunable fully connected layer over all nodes, ReLU, dropout
    and a prunable classifier.

    Args:
        in_channels (int): Coordinates per joint (``C``).
        num_classes (int): Number of classes.
        layout (str or SkeletonLayout): The skeleton.
        num_frames (int, optional): Frames per sequence (fixed: the node
            features are whole trajectories). (default: :obj:`32`)
        heads (int, optional): Attention heads. (default: :obj:`8`)
        head_channels (int, optional): Graph-convolution channels per head.
            (default: :obj:`16`)
        hidden_channels (int, optional): Width of the fully connected layer.
            (default: :obj:`256`)
        dropout (float, optional): Dropout after it. (default: :obj:`0.5`)

    Shapes:
        - **input:** a batch with ``x`` :math:`(B \cdot M \cdot V, T, C)`
        - **output:** logits :math:`(B, \mathrm{num\_classes})`
    """
    def __init__(self, in_channels: int, num_classes: int, layout: LayoutLike, *,
                 num_frames: int = 32, heads: int = 8, head_channels: int = 16,
                 hidden_channels: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.layout = get_layout(layout)
        self.num_frames = num_frames
        self.heads = heads
        self.head_channels = head_channels
        self.hidden_channels = hidden_channels
        self.dropout_p = dropout
        V = self.layout.num_nodes
        width = heads * head_channels

        self.attention = nn.Parameter(torch.empty(heads, V, V))
        self.propagation = AttentionPropagation(V, heads)
        self.conv = Linear(num_frames * in_channels, width, bias=False)
        self.conv_bias = nn.Parameter(torch.zeros(width))
        self.conv_bn = nn.BatchNorm1d(width)
        self.conv_gate = ChannelGate(width)
        self.fc1 = Linear(width, hidden_channels, nodes=V)
        self.fc1_gate = ChannelGate(hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = Linear(hidden_channels, num_classes)
        self.reset_attention()

    def reset_attention(self) -> None:
        """Starts every head near the normalised skeleton adjacency."""
        V = self.layout.num_nodes
        adj = torch.eye(V)
        ei = self.layout.edge_index()
        adj[ei[1], ei[0]] = 1.0
        logits = torch.where(adj > 0, 0.0, -4.0)
        with torch.no_grad():
            self.attention.copy_(logits + 0.1 * torch.randn(self.heads, V, V))

    def forward_tensors(self, x: Tensor, edge_index: Tensor,
                        num_graphs: int) -> Tensor:
        """:meth:`forward` on plain tensors."""
        self._check_batch(x, edge_index, num_graphs, num_frames=self.num_frames)
        B, V = num_graphs, self.layout.num_nodes
        f = x.reshape(B, V, -1)  # [B, V, T*C] trajectories
        z = self.conv(f).view(B * V, self.heads, self.head_channels)
        att = torch.softmax(self.attention, dim=-1)  # [H, V, V]
        z = self.propagation(z, att).reshape(B, V, -1)
        z = z + self.conv_bias
        z = self.conv_gate(F.relu(_bn(z, self.conv_bn)))
        h = self.fc1_gate(F.relu(self.fc1(z)))
        return self.fc2(self.dropout(h))

    def channel_flow(self) -> ChannelFlow:
        flow = ChannelFlow()
        node = flow.input('input', self.num_frames * self.in_channels)
        node = flow.layer(node, self.conv, 'conv', self.conv_gate)
        node = flow.layer(node, self.fc1, 'fc1', self.fc1_gate)
        flow.set_output(flow.layer(node, self.fc2, 'fc2'))
        return flow

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, num_classes=self.num_classes,
                    layout=self.layout.to_dict(), num_frames=self.num_frames,
                    heads=self.heads, head_channels=self.head_channels,
                    hidden_channels=self.hidden_channels, dropout=self.dropout_p)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, {self.num_classes}, '
                f"layout='{self.layout.name}', heads={self.heads})")


MODEL_NAMES = ('stgcn', 'stgcn-compact', 'attention-gcn', 'sahbi-gcn')
STGCN_CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
COMPACT_CHANNELS = (32, 32, 64, 64)


def scale_channels(channels: int, width: float) -> int:
    r"""``channels * width`` rounded half up, at least 1 (the hidden channel
    counts of a preset at ``width``)."""
    return max(1, int(math.floor(channels * width + 0.5)))


def _stgcn_preset(channels: Sequence[int], width: float) -> Dict[str, Any]:
    # The strides are those of the full-width preset: rounding may make two
    # narrow blocks equally wide where the preset grows (and halves the frames).
    strides = [2 if i > 0 and c > channels[i - 1] else 1
               for i, c in enumerate(channels)]
    return dict(channels=[scale_channels(c, width) for c in channels],
                strides=strides)


def _check_width(width: float) -> float:
    if (isinstance(width, bool) or not isinstance(width, (int, float))
            or not math.isfinite(width) or width <= 0):
        raise ValueError(f"Expected 'width' to be a positive number (got "
                         f"{width!r})")
    return float(width)


def build_model(name: str, in_channels: int, num_classes: int,
                layout: LayoutLike, *, num_frames: int = 32,
                width: float = 1.0) -> _SkeletonModel:
    r"""Builds a named preset.

    - ``'stgcn'``: the standard 10-block ST-GCN.
    - ``'stgcn-compact'``: 4 blocks of 32, 32, 64, 64 channels (stride 2 at
      the third), about 0.12 M parameters, for small datasets and CPU
      training.
    - ``'attention-gcn'``: :class:`AttentionGCN` with its defaults (needs
      ``num_frames``).
    - ``'sahbi-gcn'``: :class:`~tcmp_pyg.nn.TrajectoryGCN`, the TCMP papers'
      baseline family (three attention blocks of 4 heads x 8 filters over
      the joints' trajectories), with a temporal front end of 16 channels
      and a fully connected layer of 24 units: 49,136 parameters on SBU at
      40 frames with its recipe's 12 input channels (joints, bones and their
      motion). Chosen on validation among widths, pooling and front ends
      (``benchmarks/RESULTS.md``, section 1); needs ``num_frames``.

    ``width`` narrows (or widens) a preset into a dense rival of another size
    ("Rethinking the value of network pruning", Liu et al., ICLR 2019): every
    hidden channel count is multiplied by it and rounded half up, at least 1
    (:func:`scale_channels`); the input channels, the classes, the depth, the
    strides, the attention heads and the kernels stay those of the preset.
    :func:`width_for_params` finds the width of a given size. The model
    records its channel counts in :meth:`~_SkeletonModel.config`, so
    checkpoints rebuild the narrow model.

    Args:
        name (str): One of :obj:`MODEL_NAMES`.
        in_channels (int): Coordinates per joint.
        num_classes (int): Number of classes.
        layout (str or SkeletonLayout): The skeleton.
        num_frames (int, optional): Frames per sequence (the trajectory
            models). (default: :obj:`32`)
        width (float, optional): Multiplier of the hidden channel counts.
            (default: :obj:`1.0`, the preset itself)
    """
    width = _check_width(width)
    w = lambda c: scale_channels(c, width)  # noqa: E731
    if name == 'stgcn':
        return STGCN(in_channels, num_classes, layout,
                     **_stgcn_preset(STGCN_CHANNELS, width))
    if name == 'stgcn-compact':
        return STGCN(in_channels, num_classes, layout, dropout=0.2,
                     **_stgcn_preset(COMPACT_CHANNELS, width))
    if name == 'attention-gcn':
        return AttentionGCN(in_channels, num_classes, layout, num_frames=num_frames,
                            head_channels=w(16), hidden_channels=w(256))
    if name == 'sahbi-gcn':
        from tcmp_pyg.nn.trajectory import TrajectoryGCN
        return TrajectoryGCN(in_channels, num_classes, layout, num_frames=num_frames,
                             channels=(w(8), w(8), w(8)), hidden_channels=w(24),
                             temporal_channels=w(16))
    raise ValueError(f"Unknown model '{name}' (expected one of {MODEL_NAMES})")


MODEL_SIZES = ('parameters', 'weights')


def model_size(model: nn.Module, count: str = 'parameters') -> int:
    r"""The size of a dense model: every parameter (``'parameters'``, what
    :func:`~tcmp_pyg.pruning.count_parameters` counts, e.g. of a compacted
    model) or its prunable weights only (``'weights'``, what a pruning
    method's budget counts, e.g. the weights TCMP keeps)."""
    from tcmp_pyg.nn.prunable import prunable_weights
    if count == 'parameters':
        return sum(p.numel() for p in model.parameters())
    if count == 'weights':
        return sum(m.weight.numel() for _, m in prunable_weights(model))
    raise ValueError(f"Expected 'count' to be one of {MODEL_SIZES} (got "
                     f"{count!r})")


def width_for_params(name: str, target: int, in_channels: int, num_classes: int,
                     layout: LayoutLike, *, num_frames: int = 32,
                     count: str = 'parameters', max_width: float = 4.0) -> float:
    r"""The width of preset ``name`` whose dense size is closest to ``target``:
    the matched-size rival of a pruned model (as many prunable weights as a
    mask keeps with ``count='weights'``, as many parameters as a compacted
    model with ``count='parameters'``).

    The size is a step function of the width (channel counts are rounded),
    non-decreasing; a bisection finds the step where it crosses ``target``,
    and of the two sizes around the crossing the closer one wins (the
    smaller on a tie). The width returned is the shortest decimal (at most 6
    digits) inside that step, e.g. ``0.25`` rather than ``0.2513``.

    Args:
        name (str): One of :obj:`MODEL_NAMES`.
        target (int): The size to match.
        in_channels, num_classes, layout, num_frames: As for
            :func:`build_model` (the size depends on them).
        count (str, optional): ``'parameters'`` or ``'weights'``
            (see :func:`model_size`). (default: :obj:`'parameters'`)
        max_width (float, optional): Widest width tried. (default: :obj:`4.0`)

    Returns:
        The width; ``build_model(..., width=w)`` has the closest size (at the
        smallest width every hidden layer has one channel, and at
        ``max_width`` the search stops).
    """
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError(f"Expected 'target' to be a positive int (got "
                         f"{target!r})")
    max_width = _check_width(max_width)

    def size(w: float) -> int:
        return model_size(build_model(name, in_channels, num_classes, layout,
                                      num_frames=num_frames, width=w), count)

    lo = 1e-6  # every hidden channel count is 1
    if size(lo) >= target:
        return _shortest(lo, size, size(lo), up=True)
    hi = max_width
    if size(hi) < target:
        return hi
    # Invariant: size(lo) < target <= size(hi). Steps are at least
    # 1 / (2 * c1 * c2) apart for channel counts c1, c2: 1e-9 separates them.
    while hi - lo > 1e-9:
        mid = (lo + hi) / 2
        if size(mid) < target:
            lo = mid
        else:
            hi = mid
    below, above = size(lo), size(hi)
    if target - below <= above - target:
        return _shortest(lo, size, below, up=False)
    return _shortest(hi, size, above, up=True)


def _shortest(w: float, size: Callable[[float], int], expected: int,
              up: bool) -> float:
    """The shortest decimal near ``w`` (on the side of its step) with the
    same size."""
    for digits in range(1, 7):
        step = 10.0 ** -digits
        # Towards the inside of the step: up from its lower end, down from
        # its upper end.
        c = (math.ceil(w / step) if up else math.floor(w / step)) * step
        c = round(c, digits)
        if c > 0 and size(c) == expected:
            return c
    return w


def model_from_config(class_name: str, config: Dict[str, Any]) -> _SkeletonModel:
    """Rebuilds a model from its class name and :meth:`config` (checkpoints)."""
    from tcmp_pyg.nn.compact import CompactAttentionGCN, CompactSTGCN
    from tcmp_pyg.nn.trajectory import TrajectoryGCN
    classes = {'STGCN': STGCN, 'AttentionGCN': AttentionGCN,
               'TrajectoryGCN': TrajectoryGCN,
               'CompactSTGCN': CompactSTGCN,
               'CompactAttentionGCN': CompactAttentionGCN}
    if class_name not in classes:
        raise ValueError(f"Unknown model class '{class_name}' (expected one of "
                         f"{sorted(classes)})")
    config = dict(config)
    config['layout'] = SkeletonLayout.from_dict(config['layout'])
    args = (config.pop('in_channels'), config.pop('num_classes'),
            config.pop('layout'))
    return classes[class_name](*args, **config)
