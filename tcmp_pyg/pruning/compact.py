"""Miniaturisation: a consistent mask leaves whole channels dead; remove them.

:func:`compact` turns a pruned :class:`~tcmp_pyg.nn.STGCN` or
:class:`~tcmp_pyg.nn.AttentionGCN` into a physically smaller dense model of
the same classes whose outputs equal the gated masked model's (eval mode).
The small model keeps the surviving masks, so the connectivity analysis
still applies to it, and describes itself with plain data (:meth:`config`)
for checkpoints.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmp_pyg.layouts import SkeletonLayout, get_layout
from tcmp_pyg.nn.conv import Linear, STGraphConv, TemporalConv
from tcmp_pyg.nn.models import AttentionGCN, STGCN, _bn, _SkeletonModel
from tcmp_pyg.nn.prunable import ChannelFlow, PrunableModule, prunable_weights
from tcmp_pyg.pruning.connectivity import connectivity, gate_dead_channels


def _idx(values: Sequence[int]) -> Tensor:
    return torch.tensor(list(values), dtype=torch.long)


def _bn_subset(bn: Optional[nn.BatchNorm1d], keep: Tensor, size: int) -> nn.BatchNorm1d:
    new = nn.BatchNorm1d(size)
    if bn is not None:
        with torch.no_grad():
            new.weight.copy_(bn.weight[keep])
            new.bias.copy_(bn.bias[keep])
            new.running_mean.copy_(bn.running_mean[keep])
            new.running_var.copy_(bn.running_var[keep])
        new.eps, new.momentum = bn.eps, bn.momentum
    return new


def _copy_sub(dst: PrunableModule, src: PrunableModule, keep_in: Tensor,
              keep_out: Tensor) -> None:
    """dst.weight/mask/bias <- src restricted to the kept channels."""
    with torch.no_grad():
        w = src.weight.index_select(src.in_axis, keep_in).index_select(src.out_axis, keep_out)
        m = src.weight_mask.detach().index_select(src.in_axis, keep_in).index_select(
            src.out_axis, keep_out)
        dst.weight.copy_(w)
        dst.weight_mask.copy_(m)
        if getattr(src, 'bias', None) is not None and getattr(dst, 'bias', None) is not None:
            dst.bias.copy_(src.bias[keep_out])


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

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        N, T = x.size(0), -(-x.size(1) // self.stride)
        out = x.new_zeros(N, T, self.out_channels)
        if self.main:
            h = F.relu(_bn(self.gcn(x, edge_index), self.bn1))
            out = out.index_add(2, self.tcn_pos, _bn(self.tcn(h), self.bn2))
        if self.proj is not None:
            out = out.index_add(2, self.proj_pos, _bn(self.proj(x), self.proj_bn))
        if self.id_src.numel():
            out = out.index_add(2, self.id_dst, x[:, ::self.stride].index_select(2, self.id_src))
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


def _live(report, node: int) -> Tensor:
    return (report.accessible[node] & report.co_accessible[node]).nonzero().squeeze(1)


def compact(model: nn.Module, example: Optional[Any] = None) -> nn.Module:
    r"""Removes every channel that is not both accessible and co-accessible.

    Dead channels are gated first. For a model trained without gating (plain
    magnitude pruning) that changes its outputs: pass an ``example`` batch to
    measure the largest change, which is stored as ``small.gating_change``
    and warned about (the compact model equals the *gated* model).

    Args:
        model (nn.Module): A pruned :class:`~tcmp_pyg.nn.STGCN` or
            :class:`~tcmp_pyg.nn.AttentionGCN`.
        example (Batch, optional): A batch to measure the gating change on.

    Returns:
        The compact model (same device, eval mode).
    """
    if not isinstance(model, (STGCN, AttentionGCN)):
        raise TypeError(f"compact() supports STGCN and AttentionGCN (got "
                        f"{type(model).__name__})")
    masks = [m.weight_mask for _, m in prunable_weights(model)]
    if all(bool((m != 0).all()) for m in masks):
        raise ValueError(f"{type(model).__name__} has no pruned weight (every "
                         f"mask is all ones): prune it before compacting")
    report = connectivity(model)
    if report.disconnected:
        raise ValueError(f"{type(model).__name__} is disconnected: no kept path "
                         f"leads from the input to the output, so its prediction "
                         f"does not depend on the input")
    was_training = model.training
    model.eval()
    before = None
    if example is not None:
        with torch.no_grad():
            before = model(example)
    gate_dead_channels(model, report)
    change = None
    if before is not None:
        with torch.no_grad():
            change = float((model(example) - before).abs().max())
        if change > 1e-6:
            warnings.warn(f"compact(): gating dead channels changed the outputs "
                          f"by up to {change:.3g} on the example batch (the "
                          f"model was trained without gating)")
    if isinstance(model, STGCN):
        small = _compact_stgcn(model, report)
    else:
        small = _compact_attention(model, report)
    small.gating_change = change
    model.train(was_training)
    return small.to(next(model.parameters()).device).eval()


def _compact_stgcn(model: STGCN, report) -> CompactSTGCN:
    flow = report.flow
    names = {n.name: i for i, n in enumerate(flow.nodes)}
    V = model.layout.num_nodes
    keep_in = report.co_accessible[0].nonzero().squeeze(1)
    specs, plans = [], []
    prev = keep_in  # live channels of the block input (original ids)
    for i, blk in enumerate(model.blocks):
        g = _live(report, names[f'blocks.{i}.gcn'])
        t = _live(report, names[f'blocks.{i}.tcn'])
        p = _live(report, names[f'blocks.{i}.proj']) if blk.proj is not None else None
        out_node = names.get(f'blocks.{i}.out', names[f'blocks.{i}.tcn'])
        o = _live(report, out_node)
        pos = {int(c): k for k, c in enumerate(o.tolist())}
        main = g.numel() > 0 and t.numel() > 0
        tcn_pos = [pos[int(c)] for c in t.tolist()] if main else []
        proj_pos = [pos[int(c)] for c in p.tolist()] if p is not None else []
        id_src, id_dst = [], []
        if blk.identity:
            prev_pos = {int(c): k for k, c in enumerate(prev.tolist())}
            for c in prev.tolist():
                if c in pos:
                    id_src.append(prev_pos[c])
                    id_dst.append(pos[c])
        specs.append(dict(out_channels=o.numel(), gcn_channels=g.numel() if main else 0,
                          tcn_pos=tcn_pos, proj_pos=proj_pos, id_src=id_src,
                          id_dst=id_dst, stride=blk.stride))
        plans.append((prev, g, t, p))
        prev = o
    small = CompactSTGCN(model.in_channels, model.num_classes, model.layout,
                         input_keep=keep_in.tolist(), blocks=specs,
                         partitions=model.partitions, kernel_size=model.kernel_size,
                         edge_importance=model.edge_importance, sparse=model.sparse)
    with torch.no_grad():
        C = model.in_channels
        cols = (torch.arange(V).view(-1, 1) * C + keep_in.view(1, -1)).reshape(-1)
        small.data_bn.load_state_dict(_bn_subset(model.data_bn, cols, cols.numel()).state_dict())
        for blk, sblk, (src, g, t, p) in zip(model.blocks, small.blocks, plans):
            if sblk.main:
                _copy_sub(sblk.gcn, blk.gcn, src, g)
                if blk.gcn.edge_importance is not None:
                    sblk.gcn.edge_importance.copy_(blk.gcn.edge_importance)
                sblk.bn1.load_state_dict(_bn_subset(blk.bn1, g, g.numel()).state_dict())
                _copy_sub(sblk.tcn, blk.tcn, g, t)
                sblk.bn2.load_state_dict(_bn_subset(blk.bn2, t, t.numel()).state_dict())
            if sblk.proj is not None:
                _copy_sub(sblk.proj, blk.proj, src, p)
                sblk.proj_bn.load_state_dict(_bn_subset(blk.proj_bn, p, p.numel()).state_dict())
        last = prev
        _copy_sub(small.fc, model.fc, last, torch.arange(model.num_classes))
    return small


def _compact_attention(model: AttentionGCN, report) -> CompactAttentionGCN:
    keep_in = report.co_accessible[0].nonzero().squeeze(1)
    conv = _live(report, 1)
    hidden = _live(report, 2)
    small = CompactAttentionGCN(model.in_channels, model.num_classes, model.layout,
                                num_frames=model.num_frames, heads=model.heads,
                                input_keep=keep_in.tolist(),
                                conv_heads=(conv // model.head_channels).tolist(),
                                hidden_channels=hidden.numel())
    with torch.no_grad():
        small.attention.copy_(model.attention)
        _copy_sub(small.conv, model.conv, keep_in, conv)
        small.conv_bias.copy_(model.conv_bias[conv])
        small.conv_bn.load_state_dict(_bn_subset(model.conv_bn, conv, conv.numel()).state_dict())
        _copy_sub(small.fc1, model.fc1, conv, hidden)
        _copy_sub(small.fc2, model.fc2, hidden, torch.arange(model.num_classes))
    return small


def count_parameters(model: nn.Module, *, nonzero: bool = False) -> int:
    r"""Parameters of ``model``; with ``nonzero``, masked-out prunable weights
    are not counted."""
    total = sum(p.numel() for p in model.parameters())
    if nonzero:
        for _, m in prunable_weights(model):
            total -= int((m.weight_mask == 0).sum())
    return total
