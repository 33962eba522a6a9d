"""Mask selection under an exact budget: plain top-k and consistent top-k.

Scores are one tensor per prunable layer (e.g. ``|w|``); the global order is
by decreasing score, ties broken by the position in the concatenation of all
layers (flattened), so every selection is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from tcmp_pyg.nn.prunable import ChannelFlow, PrunableModule
from tcmp_pyg.pruning.connectivity import FlowLayer, reachability


def top_order(flat: Tensor, m: int) -> Tensor:
    """Indices of the ``m`` largest entries of ``flat``, largest first, ties
    by index."""
    n = flat.numel()
    m = max(0, min(int(m), n))
    if m == 0:
        return torch.zeros(0, dtype=torch.long, device=flat.device)
    if m == n:
        return torch.argsort(flat, descending=True, stable=True)
    v = torch.kthvalue(flat, n - m + 1).values
    above = (flat > v).nonzero().squeeze(1)
    at = (flat == v).nonzero().squeeze(1)[:m - above.numel()]
    cand = torch.sort(torch.cat([above, at])).values  # by index, for stable ties
    return cand[torch.argsort(flat[cand], descending=True, stable=True)]


def _flatten(scores: Sequence[Tensor]) -> Tuple[Tensor, List[int]]:
    flat = torch.cat([s.detach().reshape(-1).float() for s in scores])
    if not bool(torch.isfinite(flat).all()):
        raise ValueError("Pruning scores contain NaN or inf: the weights "
                         "diverged; lower the learning rate")
    offsets = [0]
    for s in scores:
        offsets.append(offsets[-1] + s.numel())
    return flat, offsets


def _unflatten(flat_mask: Tensor, scores: Sequence[Tensor],
               offsets: List[int]) -> List[Tensor]:
    return [flat_mask[offsets[i]:offsets[i + 1]].view(s.shape)
            for i, s in enumerate(scores)]


def topk_masks(scores: Sequence[Tensor], k: int) -> List[Tensor]:
    """Bool masks keeping exactly the ``k`` globally largest scores."""
    flat, offsets = _flatten(scores)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[top_order(flat, k)] = True
    return _unflatten(mask, scores, offsets)


@dataclass
class _Candidates:
    """The ``m`` best entries in global order with their channel pairs."""
    order: Tensor  # [m] flat index
    layer: Tensor  # [m] layer id
    cin: Tensor  # [m] global input-channel id (layer offset + channel)
    cout: Tensor  # [m] global output-channel id
    minrank: List[Tensor]  # per layer [C_in, C_out]: best rank of the pair


def _channel_coords(module: PrunableModule, local: Tensor) -> Tuple[Tensor, Tensor]:
    shape = module.weight.shape
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    i = (local // strides[module.in_axis]) % shape[module.in_axis]
    o = (local // strides[module.out_axis]) % shape[module.out_axis]
    return i, o


def _candidates(layers: Sequence[FlowLayer], flat: Tensor, offsets: List[int],
                m: int) -> _Candidates:
    order = top_order(flat, m)
    m = order.numel()
    bounds = torch.tensor(offsets[1:], device=flat.device)
    layer = torch.bucketize(order, bounds, right=True)
    cin = torch.empty_like(order)
    cout = torch.empty_like(order)
    minrank = []
    in_off = out_off = 0
    ranks = torch.arange(m, device=flat.device)
    for li, fl in enumerate(layers):
        sel = (layer == li).nonzero().squeeze(1)
        i, o = _channel_coords(fl.module, order[sel] - offsets[li])
        cin[sel] = i + in_off
        cout[sel] = o + out_off
        C_in, C_out = fl.module.num_in, fl.module.num_out
        best = torch.full((C_in * C_out,), m, dtype=torch.long, device=flat.device)
        best.scatter_reduce_(0, i * C_out + o, ranks[sel], reduce='amin')
        minrank.append(best.view(C_in, C_out))
        in_off += C_in
        out_off += C_out
    return _Candidates(order, layer, cin, cout, minrank)


def _live_vectors(layers: Sequence[FlowLayer], acc: List[Tensor],
                  co: List[Tensor]) -> Tuple[Tensor, Tensor]:
    a = torch.cat([acc[fl.edge.src] for fl in layers])
    c = torch.cat([co[fl.edge.dst] for fl in layers])
    return a, c


class _Entries:
    """Flat-mask helpers over the layers of a flow."""

    def __init__(self, flow: ChannelFlow, layers: Sequence[FlowLayer],
                 scores: Sequence[Tensor], offsets: List[int]) -> None:
        self.flow, self.layers, self.scores, self.offsets = (
            flow, layers, scores, offsets)
        node_off = [0]
        for node in flow.nodes:
            node_off.append(node_off[-1] + node.size)
        self.node_off = node_off

    def split(self, flat_mask: Tensor) -> List[Tensor]:
        return _unflatten(flat_mask, self.scores, self.offsets)

    def reach(self, flat_mask: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        conns = [fl.module.channel_connections(m)
                 for fl, m in zip(self.layers, self.split(flat_mask))]
        return reachability(self.flow, conns)

    def allowed(self, acc: List[Tensor], co: List[Tensor]) -> Tensor:
        """Flat bool: entries whose input channel is in ``acc`` and output
        channel in ``co``."""
        return torch.cat([fl.module.expand_channels(acc[fl.edge.src],
                                                    co[fl.edge.dst]).reshape(-1)
                          for fl in self.layers])

    def live(self, flat_mask: Tensor) -> Tensor:
        acc, co = self.reach(flat_mask)
        return flat_mask & self.allowed(acc, co)

    def groups(self, idx: Tensor) -> Tuple[Tensor, Tensor]:
        """Global (node, channel) ids of the input and output channels of the
        flat entries ``idx``."""
        bounds = torch.tensor(self.offsets[1:], device=idx.device)
        layer = torch.bucketize(idx, bounds, right=True)
        gin = torch.empty_like(idx)
        gout = torch.empty_like(idx)
        for li, fl in enumerate(self.layers):
            sel = (layer == li).nonzero().squeeze(1)
            i, o = _channel_coords(fl.module, idx[sel] - self.offsets[li])
            gin[sel] = i + self.node_off[fl.edge.src]
            gout[sel] = o + self.node_off[fl.edge.dst]
        return gin, gout


def consistent_masks(flow: ChannelFlow, layers: Sequence[FlowLayer],
                     scores: Sequence[Tensor], budget: int,
                     hint: Optional[Dict[str, int]] = None
                     ) -> Tuple[List[Tensor], int]:
    r"""Bool masks of exactly ``budget`` live weights and no dead one, every
    output channel reachable whenever the budget allows it.

    1. Keep the ``k`` best scores, drop what is not accessible or not
       co-accessible, and take the largest ``k`` whose live count does not
       exceed the budget (the live set only grows with ``k``: binary search).
    2. Refill with the next best entries whose two channels are already live:
       each adds exactly one live weight and changes no reachability.
    3. If that saturates (adding the next weight would connect more than the
       budget at once), start from the first ``k`` over budget and trim it:
       drop the lowest scores that are neither the best incoming entry of
       their output channel nor the best outgoing entry of their input
       channel (reachability unchanged, one live weight each); if that is not
       enough, cut the lowest scores outright, drop what they disconnect, and
       refill as in 2. If no path survives at all, the best shortest path
       (fewest weights, then highest scores) seeds the selection.
    4. Output coverage: when an output channel (a class logit) is left
       unreachable (e.g. the classifier's scores are all below the other
       layers'), a *seed* that reaches every output goes first in the order
       and 1-3 run again, so the seed stays and the rest is filled by score.
       The seed is, when the output node is fed by one prunable layer, the
       best classifier entry of every output from an input channel the
       selection already reaches, plus the selection's own shortest paths to
       those channels; if that does not fit the budget, the smallest cover:
       a best shortest path to one classifier input and its best entry to
       every output (exactly
       :func:`~tcmp_pyg.pruning.connectivity.coverage_weights` weights, so
       any budget of at least that many covers every output). For another
       output node, the union of the best shortest paths to each output.

    Args:
        hint (dict, optional): Search state kept between calls (pass the same
            dict every step): where the last call's search ended starts this
            one, so a mask that moves little costs a few
            reachability passes instead of a full binary search. The result
            does not depend on it.

    Returns:
        ``(masks, live)``: one bool mask per layer and the number of live
        weights, which equals ``budget`` except in degenerate cases where no
        consistent mask of that size is reachable this way (then it is below).
    """
    flat, offsets = _flatten(scores)
    n = flat.numel()
    budget = int(budget)
    ent = _Entries(flow, layers, scores, offsets)
    if budget >= n:
        if hint is not None:
            hint.pop('theta', None)
        mask = torch.ones_like(flat, dtype=torch.bool)
        return ent.split(mask), n

    hint = {} if hint is None else hint
    mask = _select(ent, flat, flat, budget, hint)
    if _reached_outputs(ent, mask) < flow.nodes[flow.output].size:
        mask = _cover(ent, flat, mask, budget, hint)
    # The budget-th best score, for callers that need the magnitude threshold.
    hint['theta'] = (float(torch.kthvalue(flat, n - budget + 1).values)
                     if budget > 0 else None)
    return ent.split(mask), int(mask.sum())


def _select(ent: _Entries, flat: Tensor, path_scores: Tensor, budget: int,
            hint: Dict[str, int]) -> Tensor:
    """Steps 1-3 of :func:`consistent_masks` in the order of ``flat``
    (``path_scores``: the finite scores that rank a fallback path)."""
    flow, layers, offsets = ent.flow, ent.layers, ent.offsets
    n = flat.numel()
    scale = hint.get('scale', 1)  # how far the candidate list had to grow
    m = min(n, max(4 * budget, budget + 1024) * scale)
    while True:
        cand = _candidates(layers, flat, offsets, m)

        def live_at(k: int) -> int:
            acc, co = reachability(flow, [r < k for r in cand.minrank])
            a, c = _live_vectors(layers, acc, co)
            return int((a[cand.cin[:k]] & c[cand.cout[:k]]).sum())

        if live_at(m) > budget or m == n:
            break
        m = min(n, 4 * m)
        scale *= 4

    # live(budget) <= budget; the largest such k (live grows with k).
    guess = None
    if 'k' in hint:  # the last k, scaled to the new budget
        guess = round(hint['k'] * budget / max(hint['budget'], 1))
    lo = _largest_within(live_at, budget, budget, cand.order.numel(), guess)
    hint.update(scale=scale, k=lo, budget=budget)

    def mask_of(k: int) -> Tensor:
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[cand.order[:k]] = True
        return ent.live(mask)

    mask = _refill(ent, flat, mask_of(lo), budget)
    if int(mask.sum()) < budget and lo < cand.order.numel():
        over = _trim(ent, flat, mask_of(lo + 1), budget)
        if int(mask.sum()) < int(over.sum()) <= budget:
            mask = over
    if not bool(mask.any()):
        mask[_best_path(flow, layers, path_scores, offsets)] = True
        mask = _refill(ent, flat, mask, budget)
    return mask


def _reached_outputs(ent: _Entries, mask: Tensor) -> int:
    acc, _ = ent.reach(mask)
    return int(acc[ent.flow.output].sum())


def _cover(ent: _Entries, flat: Tensor, mask: Tensor, budget: int,
           hint: Dict[str, int]) -> Tensor:
    """Step 4 of :func:`consistent_masks`: the selection again with a seed
    reaching every output forced first; the input ``mask`` if none fits."""
    num_out = ent.flow.nodes[ent.flow.output].size
    best, reached = mask, _reached_outputs(ent, mask)
    for make_seed in (_repair_seed, _smallest_seed):
        seed = make_seed(ent, flat, mask)
        if seed is None or seed.numel() > budget:
            continue
        forced = flat.clone()
        forced[seed] = float('inf')  # first in the order, ties by position
        cand = _select(ent, forced, flat, budget, hint)
        got = _reached_outputs(ent, cand)
        if got == num_out:
            return cand
        if got > reached:
            best, reached = cand, got
    return best


def _classifier(ent: _Entries) -> Optional[int]:
    """The index of the layer feeding the output node, when it is its only
    input."""
    incoming = [e for e in ent.flow.edges if e.dst == ent.flow.output]
    if len(incoming) != 1 or incoming[0].module is None:
        return None
    return next(li for li, fl in enumerate(ent.layers) if fl.edge is incoming[0])


def _pairs(ent: _Entries, li: int, flat: Tensor) -> Tuple[Tensor, Tensor]:
    """Scores and flat indices of layer ``li`` as ``[C_in, C_out, K]``."""
    mod = ent.layers[li].module
    lo, hi = ent.offsets[li], ent.offsets[li + 1]
    s = flat[lo:hi].view(mod.weight.shape).movedim((mod.in_axis, mod.out_axis), (0, 1))
    idx = torch.arange(lo, hi, device=flat.device).view(mod.weight.shape).movedim(
        (mod.in_axis, mod.out_axis), (0, 1))
    return s.reshape(s.size(0), s.size(1), -1), idx.reshape(idx.size(0), idx.size(1), -1)


def _repair_seed(ent: _Entries, flat: Tensor, mask: Tensor) -> Optional[Tensor]:
    """Every output's best classifier entry from an input channel ``mask``
    reaches, plus ``mask``'s shortest paths to those channels."""
    li = _classifier(ent)
    if li is None or not bool(mask.any()):
        return None
    src = ent.layers[li].edge.src
    acc, _ = ent.reach(mask)
    if not bool(acc[src].any()):
        return None
    s, idx = _pairs(ent, li, flat)
    s = s.masked_fill(~acc[src].view(-1, 1, 1), float('-inf'))
    # per output: the best (input, kernel) entry; input = position // K
    per_out = s.movedim(1, 0).reshape(s.size(1), -1)
    best = per_out.argmax(dim=1)
    K = s.size(2)
    inputs, kernel = best // K, best % K
    outputs = torch.arange(s.size(1), device=flat.device)
    entries = idx[inputs, outputs, kernel]
    tree = _path_tree(ent.flow, ent.layers, flat, ent.offsets, allowed=mask)
    paths = [_trace(ent.flow, tree, src, int(i)) for i in inputs.unique()]
    return torch.cat([entries] + paths).unique()


def _smallest_seed(ent: _Entries, flat: Tensor, mask: Tensor) -> Optional[Tensor]:
    """The smallest cover: a best shortest path to one classifier input and
    its best entry to every output (see
    :func:`~tcmp_pyg.pruning.connectivity.coverage_weights`); without a
    single classifier, the best shortest paths to every output."""
    flow = ent.flow
    tree = _path_tree(flow, ent.layers, flat, ent.offsets)
    li = _classifier(ent)
    if li is None:
        out = [_trace(flow, tree, flow.output, o)
               for o in range(flow.nodes[flow.output].size)]
        return torch.cat(out).unique()
    src = ent.layers[li].edge.src
    cost = tree.cost[src]
    s, idx = _pairs(ent, li, flat)
    pair, k = s.max(dim=-1)  # [C_in, C_out]: the best entry of each pair
    count = torch.ceil(cost / tree.big - 1e-9)  # weights of the best path
    ok = torch.isfinite(cost) & (pair > float('-inf')).all(dim=1)
    if not bool(ok.any()):
        return None
    ok &= count == count[ok].min()
    # Fewest weights, then the highest path and classifier scores.
    key = (cost - pair.double().sum(dim=1) / tree.top).masked_fill(~ok, float('inf'))
    i = int(torch.argmin(key))
    outputs = torch.arange(s.size(1), device=flat.device)
    entries = idx[i, outputs, k[i]]
    return torch.cat([entries, _trace(flow, tree, src, i)]).unique()


def _largest_within(live_at: Callable[[int], int], budget: int, lo: int,
                    hi: int, guess: Optional[int] = None) -> int:
    """The largest ``k`` in ``[lo, hi]`` with ``live_at(k) <= budget``, for a
    non-decreasing ``live_at`` with ``live_at(lo) <= budget``: galloping from
    ``guess`` when given, then bisection."""
    if guess is not None and lo < guess <= hi:
        step = 1
        if live_at(guess) <= budget:
            lo = guess
            while lo < hi:
                probe = min(hi, lo + step)
                if live_at(probe) > budget:
                    hi = probe - 1
                    break
                lo, step = probe, 2 * step
        else:
            hi = guess - 1
            while lo < hi:
                probe = max(lo, hi - step + 1)
                if live_at(probe) <= budget:
                    lo = probe
                    break
                hi, step = probe - 1, 2 * step
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if live_at(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _refill(ent: _Entries, flat: Tensor, mask: Tensor, budget: int) -> Tensor:
    """Adds the best entries between live channels until ``budget``."""
    need = budget - int(mask.sum())
    if need <= 0 or not bool(mask.any()):
        return mask
    acc, co = ent.reach(mask)
    both = [a & c for a, c in zip(acc, co)]
    free = (ent.allowed(both, both) & ~mask).nonzero().squeeze(1)
    mask = mask.clone()
    mask[free[top_order(flat[free], need)]] = True
    return mask


def _trim(ent: _Entries, flat: Tensor, mask: Tensor, budget: int) -> Tensor:
    """Removes live entries down to ``budget``, keeping the mask consistent."""
    for _ in range(64):
        excess = int(mask.sum()) - budget
        if excess <= 0:
            break
        kept = mask.nonzero().squeeze(1)
        gin, gout = ent.groups(kept)
        s = flat[kept]
        size = ent.node_off[-1]
        best_in = torch.full((size,), -1.0, device=flat.device).scatter_reduce(
            0, gout, s, reduce='amax')
        best_out = torch.full((size,), -1.0, device=flat.device).scatter_reduce(
            0, gin, s, reduce='amax')
        removable = (s < best_in[gout]) & (s < best_out[gin])
        cand = kept[removable]
        mask = mask.clone()
        if cand.numel() >= excess:  # reachability unchanged: exact
            worst = top_order(-flat[cand], excess)
            mask[cand[worst]] = False
            break
        mask[cand] = False
        # Not enough without losing channels: cut half the excess of lowest
        # scores, drop what they disconnect, refill; repeat.
        left = mask.nonzero().squeeze(1)
        left = left[top_order(-flat[left], left.numel())]  # lowest first
        size = max(1, (left.numel() - budget) // 2)
        start = 0
        while size >= 1 and start < left.numel():
            cut = mask.clone()
            cut[left[start:start + size]] = False
            cut = ent.live(cut)
            if bool(cut.any()):
                break
            if size == 1:  # a bridge of every path: keep it, cut the next
                start += 1
            size = max(1, size // 2)
        else:
            break
        mask = _refill(ent, flat, cut, budget)
    return mask


@dataclass
class _PathTree:
    """Best paths from the input to every channel: per node the lexicographic
    cost (``big`` per weight, minus the scores over ``top``) and the
    back-pointers of each channel (edge, source channel, flat entry)."""
    cost: List[Tensor]
    back: List[Optional[Tuple[Tensor, Tensor, Tensor]]]
    big: float
    top: float


def _path_tree(flow: ChannelFlow, layers: Sequence[FlowLayer], flat: Tensor,
               offsets: List[int], allowed: Optional[Tensor] = None) -> _PathTree:
    """Shortest-path tree of the channel graph: fewest weights, then the
    highest total normalised score; with ``allowed`` (flat bool), through
    those entries only. Paths traced from one tree share their prefixes."""
    edge_layer = {id(fl.edge): li for li, fl in enumerate(layers)}
    top = float(flat.max()) or 1.0
    # Lexicographic cost: weights count first, then minus the summed scores
    # (each at most 1, at most one per layer on a path).
    big = 4.0 * (len(layers) + 1)
    inf = float('inf')
    cost = [torch.full((n.size,), inf, dtype=torch.float64, device=flat.device)
            for n in flow.nodes]
    cost[0].zero_()
    back: List[Optional[Tuple[Tensor, Tensor, Tensor]]] = [None] * len(flow.nodes)
    for v in range(1, len(flow.nodes)):
        best = cost[v]
        how_edge = torch.full((best.numel(),), -1, dtype=torch.long, device=flat.device)
        how_ch = torch.zeros_like(how_edge)
        how_entry = torch.full_like(how_edge, -1)
        for ei, e in enumerate(flow.edges):
            if e.dst != v:
                continue
            if e.module is None:
                si, di = e.src_index.to(flat.device), e.dst_index.to(flat.device)
                c = cost[e.src][si]
                better = c < best[di]
                best[di[better]] = c[better]
                how_edge[di[better]] = ei
                how_ch[di[better]] = si[better]
                continue
            li = edge_layer[id(e)]
            mod = layers[li].module
            s = flat[offsets[li]:offsets[li + 1]] / top
            if allowed is not None:
                s = s.masked_fill(~allowed[offsets[li]:offsets[li + 1]], -inf)
            s = s.view(mod.weight.shape).movedim((mod.in_axis, mod.out_axis), (0, 1))
            s = s.reshape(s.size(0), s.size(1), -1)
            pair_score, pair_k = s.max(dim=-1)  # best entry per (i, o)
            total = cost[e.src].view(-1, 1) + big - pair_score.double()
            c, i = total.min(dim=0)
            better = c < best
            best[better] = c[better]
            how_edge[better] = ei
            how_ch[better] = i[better]
            o = torch.arange(best.numel(), device=flat.device)
            # flat index of entry (i, o, kernel k) in the layer's weight
            idx = torch.arange(mod.weight.numel(), device=flat.device).view(
                mod.weight.shape).movedim((mod.in_axis, mod.out_axis), (0, 1))
            idx = idx.reshape(idx.size(0), idx.size(1), -1)
            entry = idx[i, o, pair_k[i, o]] + offsets[li]
            how_entry[better] = entry[better]
        back[v] = (how_edge, how_ch, how_entry)
    return _PathTree(cost, back, big, top)


def _trace(flow: ChannelFlow, tree: _PathTree, v: int, ch: int) -> Tensor:
    """Flat indices of the tree's path from the input to channel ``ch`` of
    node ``v`` (which must be reachable)."""
    picked = []
    while v != 0:
        how_edge, how_ch, how_entry = tree.back[v]
        e = flow.edges[int(how_edge[ch])]
        if e.module is not None:
            picked.append(int(how_entry[ch]))
        ch, v = int(how_ch[ch]), e.src
    return torch.tensor(picked, dtype=torch.long, device=tree.cost[0].device)


def _best_path(flow: ChannelFlow, layers: Sequence[FlowLayer], flat: Tensor,
               offsets: List[int]) -> Tensor:
    """Flat indices of one input-to-output path with the fewest weights, then
    the highest total normalised score."""
    tree = _path_tree(flow, layers, flat, offsets)
    if not bool(torch.isfinite(tree.cost[flow.output]).any()):
        raise ValueError("The channel flow has no path from input to output")
    return _trace(flow, tree, flow.output, int(torch.argmin(tree.cost[flow.output])))
