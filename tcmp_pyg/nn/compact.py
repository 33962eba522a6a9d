"""Miniaturised models: STGCN / AttentionGCN restricted to their live channels.

Built by :func:`tcmp_pyg.pruning.compact`; they keep the surviving masks (so
the connectivity analysis applies) and describe themselves with plain data.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmp_pyg.layouts import SkeletonLayout, get_layout
from tcmp_pyg.nn.conv import Linear, STGraphConv, TemporalConv
from tcmp_pyg.nn.models import _bn, _SkeletonModel
from tcmp_pyg.nn.prunable import ChannelFlow


def _idx(values: Sequence[int]) -> Tensor:
    return torch.tensor(list(values), dtype=torch.long)


def _placement(src: Sequence[int], dst: Sequence[int], rows: int,
               cols: int) -> Optional[Tensor]:
    """0/1 ``[rows, cols]`` matrix sending channel ``src[i]`` to ``dst[i]``, or
    ``None`` when that is the identity. A matmul by it is much faster than
    ``index_select``/``index_add`` on the innermost (channel) axis."""
    src, dst = list(src), list(dst)
    if rows == cols and src == dst == list(range(rows)):
        return None
    place = torch.zeros(rows, cols)
    place[_idx(src), _idx(dst)] = 1.0
    return place


def _put(x: Tensor, place: Optional[Tensor]) -> Tensor:
    return x if place is None else x @ place


class CompactBlock(nn.Module):
    r"""An :class:`~tcmp_pyg.nn.STGCNBlock` restricted to its live channels.

    ``in_idx`` .. ``out_idx`` are positions in the block's (compact) input
    and output channel lists: the temporal branch writes to ``tcn_pos``, the
    projection to ``proj_pos`` and the identity copies input ``id_src`` to
    output ``id_dst``. A block whose main path lost every channel keeps only
    its residual.
    """
    def __init__(self, in_channels: int, out_channels: int, *, layout: SkeletonLayout,
                 gcn_channels: int, tcn_pos: List[int], proj_pos: List[int],
                 id_src: List[int], id_dst: List[int], stride: int,
                 partitions: int, kernel_size: int, edge_importance: bool,
                 sparse: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = stride
        self.main = gcn_channels > 0 and len(tcn_pos) > 0
        if self.main:
            self.gcn = STGraphConv(in_channels, gcn_channels, layout=layout,
                                   partitions=partitions,
                                   edge_importance=edge_importance, sparse=sparse)
            self.bn1 = nn.BatchNorm1d(gcn_channels)
            self.tcn = TemporalConv(gcn_channels, len(tcn_pos), kernel_size,
                                    stride=stride)
            self.bn2 = nn.BatchNorm1d(len(tcn_pos))
        if proj_pos:
            self.proj = TemporalConv(in_channels, len(proj_pos), 1, stride=stride)
            self.proj_bn = nn.BatchNorm1d(len(proj_pos))
        else:
            self.proj = None
        self.register_buffer('tcn_pos', _idx(tcn_pos), persistent=False)
        self.register_buffer('proj_pos', _idx(proj_pos), persistent=False)
        self.register_buffer('id_src', _idx(id_src), persistent=False)
        self.register_buffer('id_dst', _idx(id_dst), persistent=False)
        n = len(tcn_pos)
        self.register_buffer('tcn_place', _placement(
            range(n), tcn_pos, n, out_channels), persistent=False)
        n = len(proj_pos)
        self.register_buffer('proj_place', _placement(
            range(n), proj_pos, n, out_channels), persistent=False)
        self.register_buffer('id_place', _placement(
            id_src, id_dst, in_channels, out_channels), persistent=False)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        parts = []
        if self.main:
            h = F.relu(_bn(self.gcn(x, edge_index), self.bn1))
            parts.append(_put(_bn(self.tcn(h), self.bn2), self.tcn_place))
        if self.proj is not None:
            parts.append(_put(_bn(self.proj(x), self.proj_bn), self.proj_place))
        if self.id_src.numel():
            parts.append(_put(x[:, ::self.stride], self.id_place))
        if not parts:
            N, T = x.size(0), -(-x.size(1) // self.stride)
            return x.new_zeros(N, T, self.out_channels)
        out = parts[0]
        for part in parts[1:]:
            out = out + part
        return F.relu(out)

    def trace_channels(self, flow: ChannelFlow, src: int, name: str) -> int:
        parts = []
        if self.main:
            g = flow.layer(src, self.gcn, f'{name}.gcn')
            parts.append((flow.layer(g, self.tcn, f'{name}.tcn'), None,
                          self.tcn_pos.tolist()))
        if self.proj is not None:
            parts.append((flow.layer(src, self.proj, f'{name}.proj'), None,
                          self.proj_pos.tolist()))
        if self.id_src.numel():
            parts.append((src, self.id_src.tolist(), self.id_dst.tolist()))
        return flow.merge(f'{name}.out', self.out_channels, parts)


class CompactSTGCN(_SkeletonModel):
    r"""A miniaturised :class:`~tcmp_pyg.nn.STGCN`: per-block channel lists
    instead of widths. Built by :func:`compact`; rebuilt from :meth:`config`."""
    def __init__(self, in_channels: int, num_classes: int, layout: Any, *,
                 input_keep: List[int], blocks: List[Dict[str, Any]],
                 partitions: int = 3, kernel_size: int = 9,
                 edge_importance: bool = False, sparse: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.layout = get_layout(layout)
        self.input_keep = list(input_keep)
        self.block_specs = [dict(b) for b in blocks]
        self.partitions, self.kernel_size = partitions, kernel_size
        self.edge_importance, self.sparse = edge_importance, sparse
        V = self.layout.num_nodes
        self.data_bn = nn.BatchNorm1d(V * len(self.input_keep))
        self.register_buffer('input_idx', _idx(self.input_keep), persistent=False)
        # Every input channel kept, in order: no selection in forward.
        self._all_inputs = self.input_keep == list(range(in_channels))
        c_in = len(self.input_keep)
        mods = []
        for spec in self.block_specs:
            mods.append(CompactBlock(c_in, spec['out_channels'], layout=self.layout,
                                     gcn_channels=spec['gcn_channels'],
                                     tcn_pos=spec['tcn_pos'], proj_pos=spec['proj_pos'],
                                     id_src=spec['id_src'], id_dst=spec['id_dst'],
                                     stride=spec['stride'], partitions=partitions,
                                     kernel_size=kernel_size,
                                     edge_importance=edge_importance, sparse=sparse))
            c_in = spec['out_channels']
        self.blocks = nn.ModuleList(mods)
        self.fc = Linear(c_in, num_classes)

    def forward(self, data: Any) -> Tensor:
        return self.forward_tensors(data.x, data.edge_index, data.num_graphs)

    def forward_tensors(self, x: Tensor, edge_index: Tensor, num_graphs: int) -> Tensor:
        self._check_batch(x, edge_index, num_graphs)
        B, V = num_graphs, self.layout.num_nodes
        if not self._all_inputs:
            x = x.index_select(2, self.input_idx)
        N, T, C = x.shape
        h = x.view(B, V, T, C).permute(0, 1, 3, 2).reshape(B, V * C, T)
        h = self.data_bn(h).view(B, V, C, T).permute(0, 1, 3, 2).reshape(N, T, C)
        for block in self.blocks:
            h = block(h, edge_index)
        return self.fc(h.view(B, -1, h.size(-1)).mean(dim=1))

    def channel_flow(self) -> ChannelFlow:
        flow = ChannelFlow()
        node = flow.input('input', len(self.input_keep))
        for i, block in enumerate(self.blocks):
            node = block.trace_channels(flow, node, f'blocks.{i}')
        flow.set_output(flow.layer(node, self.fc, 'fc'))
        return flow

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, num_classes=self.num_classes,
                    layout=self.layout.to_dict(), input_keep=self.input_keep,
                    blocks=self.block_specs, partitions=self.partitions,
                    kernel_size=self.kernel_size,
                    edge_importance=self.edge_importance, sparse=self.sparse)


class CompactAttentionGCN(_SkeletonModel):
    r"""A miniaturised :class:`~tcmp_pyg.nn.AttentionGCN`: the surviving input
    features, graph-convolution channels (each with its head) and hidden
    units."""
    def __init__(self, in_channels: int, num_classes: int, layout: Any, *,
                 num_frames: int, heads: int, input_keep: List[int],
                 conv_heads: List[int], hidden_channels: int) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.layout = get_layout(layout)
        self.num_frames, self.heads = num_frames, heads
        self.input_keep, self.conv_heads = list(input_keep), list(conv_heads)
        self.hidden_channels = hidden_channels
        V = self.layout.num_nodes
        width = len(self.conv_heads)
        self.register_buffer('input_idx', _idx(self.input_keep), persistent=False)
        self.register_buffer('head_idx', _idx(self.conv_heads), persistent=False)
        self.attention = nn.Parameter(torch.zeros(heads, V, V))
        self.conv = Linear(len(self.input_keep), width, bias=False)
        self.conv_bias = nn.Parameter(torch.zeros(width))
        self.conv_bn = nn.BatchNorm1d(width)
        self.fc1 = Linear(width, hidden_channels, nodes=V)
        self.fc2 = Linear(hidden_channels, num_classes)

    def forward(self, data: Any) -> Tensor:
        return self.forward_tensors(data.x, data.edge_index, data.num_graphs)

    def forward_tensors(self, x: Tensor, edge_index: Tensor, num_graphs: int) -> Tensor:
        self._check_batch(x, edge_index, num_graphs)
        B, V = num_graphs, self.layout.num_nodes
        f = x.reshape(B, V, -1).index_select(2, self.input_idx)
        z = self.conv(f)  # [B, V, width]
        att = torch.softmax(self.attention, dim=-1)[self.head_idx]  # [width, V, V]
        z = torch.einsum('cij,bjc->bic', att, z) + self.conv_bias
        z = F.relu(_bn(z, self.conv_bn))
        return self.fc2(F.relu(self.fc1(z)))

    def channel_flow(self) -> ChannelFlow:
        flow = ChannelFlow()
        node = flow.input('input', len(self.input_keep))
        node = flow.layer(node, self.conv, 'conv')
        node = flow.layer(node, self.fc1, 'fc1')
        flow.set_output(flow.layer(node, self.fc2, 'fc2'))
        return flow

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, num_classes=self.num_classes,
                    layout=self.layout.to_dict(), num_frames=self.num_frames,
                    heads=self.heads, input_keep=self.input_keep,
                    conv_heads=self.conv_heads, hidden_channels=self.hidden_channels)
