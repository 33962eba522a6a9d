r"""A small attention GCN over joint trajectories, after the baseline GCN of the
TCMP papers (Sahbi, ICASSP 2024 and later): each joint is one node whose
features are its whole trajectory, and a few blocks of multi-head attention
plus graph convolution with a handful of filters feed a fully connected
layer and the classifier.

The papers give the family (attention + convolution blocks of 8 filters on
SBU, a fully connected layer, Adam, no augmentation) but not every detail;
what is chosen here (BatchNorm after each block, an input BatchNorm per joint
and channel, dropout before the classifier) is stated in the class
docstring, and the width, depth and recipe were chosen on validation splits
(``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmp_pyg.layouts import LayoutLike, get_layout
from tcmp_pyg.nn.conv import AttentionPropagation, Linear, TemporalConv
from tcmp_pyg.nn.models import _bn, _SkeletonModel
from tcmp_pyg.nn.prunable import ChannelFlow, ChannelGate


def skeleton_attention_logits(layout: LayoutLike, heads: int) -> Tensor:
    r"""Initial attention logits ``[heads, V, V]``: 0 on the bones and
    self-loops, -4 elsewhere, so that every head starts near the normalised
    skeleton adjacency and can learn links between any two joints (between
    the persons of an interaction too)."""
    layout = get_layout(layout)
    V = layout.num_nodes
    adj = torch.eye(V)
    ei = layout.edge_index()
    adj[ei[1], ei[0]] = 1.0
    return torch.where(adj > 0, 0.0, -4.0).expand(heads, V, V).clone()


class AttentionBlock(nn.Module):
    r"""Multi-head attention over the nodes followed by a graph convolution:
    head :math:`h` mixes the nodes with :math:`\mathbf{A}_h =
    \mathrm{softmax}(\mathbf{S}_h)` and has its own slice
    :math:`\mathbf{W}_h` of one prunable weight,

    .. math::
        \mathbf{Z} = \mathrm{ReLU}\big(\mathrm{BN}\big(\big\Vert_{h}
        \mathbf{A}_h \mathbf{F} \mathbf{W}_h + \mathbf{b}\big)\big).

    Args:
        in_channels (int): Features per node (per frame with ``frames``).
        channels (int): Filters per head.
        layout (str or SkeletonLayout): The skeleton (nodes, initial
            attention).
        heads (int, optional): Attention heads. (default: :obj:`4`)
        frames (int, optional): With a frame axis in the input, its length:
            :math:`\mathbf{W}` then maps every (frame, channel) pair, the
            frames being a kernel axis of the prunable weight.
            (default: :obj:`None`)

    Shapes:
        - **input:** :math:`(B, V, C_{in})`, or :math:`(B, V,
          \mathrm{frames}, C_{in})`
        - **output:** :math:`(B, V, \mathrm{heads} \cdot \mathrm{channels})`
    """
    def __init__(self, in_channels: int, channels: int, *, layout: LayoutLike,
                 heads: int = 4, frames: Optional[int] = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.heads = heads
        self.frames = frames
        self.layout = get_layout(layout)
        width = heads * channels
        self.attention = nn.Parameter(torch.empty(heads, self.layout.num_nodes,
                                                  self.layout.num_nodes))
        self.conv = Linear(in_channels, width, nodes=frames, bias=False)
        self.propagation = AttentionPropagation(self.layout.num_nodes, heads)
        self.bias = nn.Parameter(torch.zeros(width))
        self.bn = nn.BatchNorm1d(width)
        self.gate = ChannelGate(width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        nn.init.zeros_(self.bias)
        self.bn.reset_parameters()
        with torch.no_grad():
            logits = skeleton_attention_logits(self.layout, self.heads)
            self.attention.copy_(logits + 0.1 * torch.randn_like(logits))

    def forward(self, x: Tensor) -> Tensor:
        B, V = x.shape[:2]
        if self.frames is not None:  # [B, V, F, C] -> [B * V, F, C]
            z = self.conv(x.reshape(B * V, *x.shape[2:]))
        else:
            z = self.conv(x)
        att = torch.softmax(self.attention, dim=-1)  # [H, V, V]
        z = self.propagation(z.view(B * V, self.heads, self.channels), att)
        z = z.reshape(B, V, -1)  # the einsum may leave it strided
        return self.gate(F.relu(_bn(z + self.bias, self.bn)))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, '
                f'{self.heads * self.channels}, heads={self.heads})')


class TrajectoryGCN(_SkeletonModel):
    r"""The baseline GCN of the TCMP papers (`Sahbi, ICASSP 2024
    <https://arxiv.org/abs/2306.17590>`_): nodes are the joints (of every
    body), features their whole trajectories :math:`\mathbf{F} \in
    \mathbb{R}^{V \times T C}`; :class:`AttentionBlock` s, then a prunable
    fully connected layer over all nodes, ReLU, dropout and a prunable
    classifier.

    The input is first normalised per node and channel over samples and
    frames (``data_bn``, as in :class:`~tcmp_pyg.nn.STGCN`), which makes the
    model indifferent to the coordinates' units. With ``temporal_channels``
    a prunable temporal convolution shared by all joints (BatchNorm, ReLU)
    turns each trajectory into ``temporal_channels`` filtered, subsampled
    signals before the first block: fewer, shared weights where the plain
    model maps every frame with its own.

    Args:
        in_channels (int): Coordinates per joint (``C``).
        num_classes (int): Number of classes.
        layout (str or SkeletonLayout): The skeleton.
        num_frames (int, optional): Frames per sequence (fixed: the node
            features are whole trajectories). (default: :obj:`32`)
        channels (Sequence[int], optional): Filters per head of each block.
            (default: :obj:`(8, 8, 8)`)
        heads (int, optional): Attention heads per block. (default: :obj:`4`)
        hidden_channels (int, optional): Width of the fully connected layer.
            (default: :obj:`64`)
        dropout (float, optional): Dropout before the classifier.
            (default: :obj:`0.5`)
        temporal_channels (int, optional): Filters of the temporal front end.
            (default: :obj:`None`, no front end)
        temporal_kernel (int, optional): Its taps. (default: :obj:`9`)
        temporal_stride (int, optional): Its stride. (default: :obj:`2`)
        pool (str, optional): :obj:`'flatten'` (the fully connected layer
            sees every node, as in the papers) or :obj:`'mean'` (it sees the
            mean over nodes: far fewer weights). (default: :obj:`'flatten'`)

    Shapes:
        - **input:** a batch with ``x`` :math:`(B \cdot M \cdot V, T, C)`
        - **output:** logits :math:`(B, \mathrm{num\_classes})`
    """
    def __init__(self, in_channels: int, num_classes: int, layout: LayoutLike, *,
                 num_frames: int = 32, channels: Sequence[int] = (8, 8, 8),
                 heads: int = 4, hidden_channels: int = 64,
                 dropout: float = 0.5, pool: str = 'flatten',
                 temporal_channels: Optional[int] = None,
                 temporal_kernel: int = 9, temporal_stride: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.layout = get_layout(layout)
        self.num_frames = num_frames
        self.channels = tuple(int(c) for c in channels)
        self.heads = heads
        self.hidden_channels = hidden_channels
        self.dropout_p = dropout
        if not self.channels or min(self.channels) < 1 or heads < 1:
            raise ValueError(f"Expected at least one block and positive "
                             f"'channels' and 'heads' (got channels="
                             f"{list(self.channels)}, heads={heads})")
        if num_classes < 1:
            raise ValueError(f"Expected 'num_classes' >= 1 (got {num_classes})")
        if pool not in ('flatten', 'mean'):
            raise ValueError(f"Expected 'pool' to be 'flatten' or 'mean' (got "
                             f"{pool!r})")
        self.pool = pool
        self.temporal_channels = temporal_channels
        self.temporal_kernel = temporal_kernel
        self.temporal_stride = temporal_stride
        V = self.layout.num_nodes
        self.data_bn = nn.BatchNorm1d(V * in_channels)
        self.tcn: Optional[TemporalConv] = None
        frames: Optional[int] = None
        c_in = num_frames * in_channels
        if temporal_channels is not None:
            self.tcn = TemporalConv(in_channels, temporal_channels,
                                    temporal_kernel, stride=temporal_stride)
            self.tcn_bn = nn.BatchNorm1d(temporal_channels)
            self.tcn_gate = ChannelGate(temporal_channels)
            frames = -(-num_frames // temporal_stride)
            c_in = temporal_channels
        blocks = []
        for c in self.channels:
            blocks.append(AttentionBlock(c_in, c, layout=self.layout, heads=heads,
                                         frames=frames))
            c_in, frames = heads * c, None
        self.blocks = nn.ModuleList(blocks)
        self.fc = Linear(c_in, hidden_channels,
                         nodes=V if pool == 'flatten' else None)
        self.fc_gate = ChannelGate(hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = Linear(hidden_channels, num_classes)

    def forward_tensors(self, x: Tensor, edge_index: Tensor,
                        num_graphs: int) -> Tensor:
        """:meth:`forward` on plain tensors (``edge_index`` is unused: the
        attention learns its own node-to-node weights)."""
        self._check_batch(x, edge_index, num_graphs, num_frames=self.num_frames)
        B, V = num_graphs, self.layout.num_nodes
        N, T, C = x.shape
        h = self._normalized(x, B)  # [B, V, T, C]
        if self.tcn is not None:  # [B * V, T', C'], then per node [T', C']
            z = self.tcn(h.reshape(N, T, C))
            h = self.tcn_gate(F.relu(_bn(z, self.tcn_bn))).view(B, V, *z.shape[1:])
        else:
            h = h.reshape(B, V, T * C)  # trajectories, frame-major
        for block in self.blocks:
            h = block(h)
        if self.pool == 'mean':
            h = h.mean(dim=1)
        h = self.fc_gate(F.relu(self.fc(h)))
        return self.classifier(self.dropout(h))

    def channel_flow(self) -> ChannelFlow:
        flow = ChannelFlow()
        if self.tcn is not None:
            node = flow.input('input', self.in_channels)
            node = flow.layer(node, self.tcn, 'tcn', self.tcn_gate)
        else:
            node = flow.input('input', self.num_frames * self.in_channels)
        for i, block in enumerate(self.blocks):
            node = flow.layer(node, block.conv, f'blocks.{i}.conv', block.gate)
        node = flow.layer(node, self.fc, 'fc', self.fc_gate)
        flow.set_output(flow.layer(node, self.classifier, 'classifier'))
        return flow

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, num_classes=self.num_classes,
                    layout=self.layout.to_dict(), num_frames=self.num_frames,
                    channels=list(self.channels), heads=self.heads,
                    hidden_channels=self.hidden_channels, dropout=self.dropout_p,
                    pool=self.pool, temporal_channels=self.temporal_channels,
                    temporal_kernel=self.temporal_kernel,
                    temporal_stride=self.temporal_stride)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, {self.num_classes}, '
                f"layout='{self.layout.name}', blocks={len(self.blocks)}, "
                f'heads={self.heads})')
