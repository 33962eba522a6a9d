"""Miniaturisation: a consistent mask leaves whole channels dead; remove them.

:func:`compact` turns a pruned :class:`~tcmp_pyg.nn.STGCN` or
:class:`~tcmp_pyg.nn.AttentionGCN` into a physically smaller dense model of
the same classes whose outputs equal the gated masked model's (eval mode).
The small models (:mod:`tcmp_pyg.nn.compact`) keep the surviving masks and
describe themselves with plain data for checkpoints.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.compact import CompactAttentionGCN, CompactSTGCN
from tcmp_pyg.nn.models import AttentionGCN, STGCN
from tcmp_pyg.nn.prunable import PrunableModule, prunable_weights
from tcmp_pyg.pruning.connectivity import (connectivity, flow_layers,
                                           gate_dead_channels, live_masks)


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


def _live(report, node: int) -> Tensor:
    return (report.accessible[node] & report.co_accessible[node]).nonzero().squeeze(1)


def compact(model: nn.Module, example: Optional[Any] = None) -> nn.Module:
    r"""Removes every channel that is not both accessible and co-accessible.

    Dead channels are gated first. For a model trained without gating (plain
    magnitude pruning) that changes its outputs: pass an ``example`` batch to
    measure the largest change, which is stored as ``small.gating_change``
    and warned about (the compact model equals the *gated* model).

    A compact ST-GCN runs inference (eval mode, autograd off) on folded
    matrices, several times faster at batch 1 than layer by layer (see
    :class:`~tcmp_pyg.nn.compact.CompactSTGCN`).

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


def count_macs(model: nn.Module, example: Any, *, live: bool = False) -> int:
    r"""Multiply-accumulates of the prunable layers for one forward pass on
    ``example``, divided by the number of graphs in the batch.

    Dense (default): what the layers compute, masked entries included. With
    ``live``, only the live weights count (kept, and on a channel that is
    both accessible and co-accessible: see :func:`live_masks`): the MACs a
    perfectly sparse implementation would do, the physical limit of pruning.
    The graph aggregation of :class:`~tcmp_pyg.nn.STGraphConv` counts one MAC
    per edge, frame and input channel (with ``live``, per input channel that
    has a live weight).

    Args:
        model (nn.Module): A model of prunable layers (masked or compact).
        example (Batch): A batch to run the forward pass on.
        live (bool, optional): Count only the live weights.
            (default: :obj:`False`)

    Returns:
        MACs per graph (sample).
    """
    from tcmp_pyg.nn.conv import Linear, STGraphConv, TemporalConv
    weights = {}  # id(module) -> (weights, aggregated input channels)
    if live:
        _, layers = flow_layers(model)
        masks = live_masks(model)
        for layer in layers:
            m = masks[layer.name] != 0
            used = m.movedim(layer.module.in_axis, 0).reshape(m.size(layer.module.in_axis), -1)
            weights[id(layer.module)] = (int(m.sum()), int(used.any(dim=1).sum()))
    total = [0]

    def hook(module, inputs, output):
        x = inputs[0]
        n, c_in = weights.get(id(module), (module.weight.numel(), None))
        if isinstance(module, STGraphConv):
            N, T, _ = x.shape
            edges = inputs[1].size(1) + N  # bones and self-loops
            c_in = module.in_channels if c_in is None else c_in
            total[0] += N * T * n + edges * T * c_in
        elif isinstance(module, TemporalConv):
            total[0] += output.size(0) * output.size(1) * n
        elif isinstance(module, Linear):
            rows = x.numel() // (module.in_channels * (module.nodes or 1))
            total[0] += rows * n

    handles = [m.register_forward_hook(hook) for _, m in prunable_weights(model)]
    # The folded inference path of compact models skips the layers' hooks.
    fused = [(m, m.fused) for m in model.modules() if isinstance(m, CompactSTGCN)]
    try:
        for m, _ in fused:
            m.fused = False
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        for m, flag in fused:
            m.fused = flag
    return total[0] // max(int(getattr(example, 'num_graphs', 1)), 1)


def model_cost(model: nn.Module, example: Any) -> Dict[str, Optional[int]]:
    r"""What a trained model costs, as sweeps compare it: its parameters and
    MACs as trained (masked entries included), its nonzero parameters, and
    those of the model :func:`compact` makes of it (the model left
    untouched: a copy is compacted).

    An unpruned model is its own compacted model; a pruned one that is
    disconnected (no kept path from the input to the output), or of a class
    :func:`compact` does not support, has no compacted size (:obj:`None`).

    Args:
        model (nn.Module): A trained model.
        example (Batch): A batch to count the MACs on (per sequence, see
            :func:`count_macs`).

    Returns:
        ``dict(params, nonzero_params, macs, compact_params, compact_macs)``.
    """
    params = count_parameters(model)
    macs = count_macs(model, example)
    cost: Dict[str, Optional[int]] = dict(
        params=params, nonzero_params=count_parameters(model, nonzero=True),
        macs=macs, compact_params=None, compact_macs=None)
    pruned = any(bool((m.weight_mask == 0).any()) for _, m in prunable_weights(model))
    if not pruned or isinstance(model, (CompactSTGCN, CompactAttentionGCN)):
        cost.update(compact_params=params, compact_macs=macs)
    elif isinstance(model, (STGCN, AttentionGCN)):
        try:
            small = compact(copy.deepcopy(model))
        except ValueError:  # disconnected: nothing to compact to
            return cost
        cost.update(compact_params=count_parameters(small),
                    compact_macs=count_macs(small, example))
    return cost
