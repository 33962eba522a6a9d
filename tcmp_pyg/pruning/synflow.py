r"""SynFlow: iterative synaptic-flow pruning at initialisation, data-free
(Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020;
`arXiv:2006.05467 <https://arxiv.org/abs/2006.05467>`_).

The synaptic flow of a network is what an all-ones input produces at the
output when every weight is replaced by its magnitude:
:math:`R = \mathbb{1}^\top \prod_l |W_l| \, \mathbb{1}`. The score of a weight
is its share of that flow, :math:`S(w) = |w| \, \partial R / \partial |w|`.
Removing the lowest scores and scoring again, with the kept fraction
shrinking exponentially over many iterations, keeps the flow through every
layer positive: SynFlow was built against *layer collapse*, the emptying of a
whole layer that global magnitude pruning suffers when layers have different
weight scales.

**SynFlow on the channel graph.** Here the flow is computed on the model's
channel flow (:class:`~tcmp_pyg.nn.ChannelFlow`), not through its forward
pass: a kept weight entry links an input channel of its layer to an output
channel, with weight :math:`|w|`; identity, residual and concatenation edges
carry flow one to one, and a node receiving several edges sums them. With
:math:`C_l[i, o] = \sum_k |w_{l, i, o, k}| m_{l, i, o, k}` (the sum over the
kernel axes: partitions, time taps, nodes),

.. math::
    x_0 = \mathbb{1}, \quad x_v = \sum_{l: u \to v} C_l^\top x_u +
    \sum_{\text{identity } u \to v} P x_u, \qquad
    y_{\text{out}} = \mathbb{1}, \quad y_u = \sum_{l: u \to v} C_l y_v +
    \sum_{\text{identity } u \to v} P^\top y_v,

and the score of an entry :math:`(i, o, k)` of layer :math:`l: u \to v` is
:math:`S = x_u[i] \, |w_{l, i, o, k}| \, y_v[o]`, which is exactly
:math:`|w| \, \partial R / \partial |w|` for :math:`R = \mathbb{1}^\top
x_{\text{out}}`. Each entry counts as one connection: a graph or temporal
convolution applies its weight at every joint and frame, which the forward
pass would count once per position, but the channel graph aggregates those
positions. For a chain of Linear layers (no bias) the two are identical.

Why the channel graph: pruning code knows layers only through their channel
declarations (the house rule), so the same scores apply to every model that
declares its flow, with no forward pass, input shape, BatchNorm or attention
to linearise; biases and normalisation parameters, which are not pruned, do
not add flow. The computation runs in float64 with every node's flow
rescaled to a maximum of one (its log-scale kept apart), so deep or wide
models neither overflow nor lose the order of the scores.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.prunable import ChannelFlow
from tcmp_pyg.pruning.base import Amount, PruningMethod
from tcmp_pyg.pruning.connectivity import FlowLayer, flow_layers
from tcmp_pyg.pruning.select import _channel_coords

# A rescaled flow vector and the natural log of its scale (-inf: all zero).
_Scaled = Tuple[Tensor, float]


def channel_sums(layer: FlowLayer, abs_weight: Tensor) -> Tensor:
    r"""The channel matrix :math:`C[i, o] = \sum_k |w_{i, o, k}|` of a layer
    (``[C_in, C_out]``): ``abs_weight`` summed over its kernel axes."""
    m = abs_weight.movedim((layer.module.in_axis, layer.module.out_axis), (0, 1))
    return m.reshape(m.size(0), m.size(1), -1).sum(-1)


def _combine(parts: Sequence[_Scaled], size: int, ref: Tensor) -> _Scaled:
    """Sums scaled vectors and rescales the sum to a maximum of one."""
    parts = [(v, s) for v, s in parts if s > -math.inf]
    if not parts:
        return ref.new_zeros(size), -math.inf
    top = max(s for _, s in parts)
    total = sum(v * math.exp(s - top) for v, s in parts)
    peak = float(total.max()) if total.numel() else 0.0
    if peak <= 0.0:
        return torch.zeros_like(total), -math.inf
    return total / peak, top + math.log(peak)


def synflow_passes(flow: ChannelFlow, connections: Sequence[Tensor]
                   ) -> Tuple[List[_Scaled], List[_Scaled]]:
    r"""The forward flows :math:`x_v` (from ones at the input node) and the
    backward flows :math:`y_v` (from ones at the output node) of every node
    of ``flow``, each as ``(vector, log_scale)``: the flow is ``vector *
    exp(log_scale)``, the vector's maximum is one (or it is all zero and
    ``log_scale = -inf``).

    Args:
        flow (ChannelFlow): The channel flow.
        connections (Sequence[Tensor]): One non-negative ``[C_in, C_out]``
            matrix per prunable edge, in :meth:`ChannelFlow.layers` order
            (see :func:`channel_sums`), e.g. in float64.

    Returns:
        ``(forward, backward)``: one ``(vector [size], log_scale)`` per node.
    """
    conn = {}
    it = iter(connections)
    for i, e in enumerate(flow.edges):
        if e.module is not None:
            conn[i] = next(it)
    ref = next(iter(conn.values()))
    nodes = flow.nodes
    incoming: List[List[int]] = [[] for _ in nodes]
    outgoing: List[List[int]] = [[] for _ in nodes]
    for i, e in enumerate(flow.edges):
        incoming[e.dst].append(i)
        outgoing[e.src].append(i)

    x: List[_Scaled] = [(ref.new_zeros(n.size), -math.inf) for n in nodes]
    x[0] = (ref.new_ones(nodes[0].size), 0.0)
    for v in range(1, len(nodes)):
        parts = []
        for i in incoming[v]:
            e = flow.edges[i]
            vec, scale = x[e.src]
            if e.module is not None:
                parts.append((vec @ conn[i], scale))
            else:  # one to one; several parts into one node add up
                moved = ref.new_zeros(nodes[v].size).index_add(
                    0, e.dst_index.to(ref.device), vec[e.src_index.to(ref.device)])
                parts.append((moved, scale))
        x[v] = _combine(parts, nodes[v].size, ref)

    y: List[_Scaled] = [(ref.new_zeros(n.size), -math.inf) for n in nodes]
    for v in range(len(nodes) - 1, -1, -1):
        parts = [(ref.new_ones(nodes[v].size), 0.0)] if v == flow.output else []
        for i in outgoing[v]:
            e = flow.edges[i]
            vec, scale = y[e.dst]
            if e.module is not None:
                parts.append((conn[i] @ vec, scale))
            else:
                moved = ref.new_zeros(nodes[v].size).index_add(
                    0, e.src_index.to(ref.device), vec[e.dst_index.to(ref.device)])
                parts.append((moved, scale))
        y[v] = _combine(parts, nodes[v].size, ref)
    return x, y


def _log_flows(flows: Sequence[_Scaled]) -> Tensor:
    # The natural logs of all nodes' flows, concatenated (-inf for zero).
    return torch.cat([v.log() + s if s > -math.inf else torch.full_like(v, -math.inf)
                      for v, s in flows])


def _top_set(key: Tensor, count: int) -> Tensor:
    # Bool mask of the `count` largest keys, ties by position: the set of
    # select.top_order without sorting it (the order is not needed here).
    n = key.numel()
    if count >= n:
        return torch.ones_like(key, dtype=torch.bool)
    v = torch.kthvalue(key, n - count + 1).values
    keep = key > v
    at = (key == v).nonzero().squeeze(1)[:count - int(keep.sum())]
    keep[at] = True
    return keep


def synflow_scores(model: nn.Module, masks: Optional[Sequence[Tensor]] = None,
                   *, log: bool = False) -> List[Tensor]:
    r"""SynFlow scores :math:`|w| \, \partial R / \partial |w|` of every
    prunable weight entry of ``model``, on its channel graph (see the module
    docstring).

    Args:
        model (nn.Module): A model declaring its channel flow.
        masks (Sequence[Tensor], optional): Masks to score under, one per
            prunable layer in flow order (masked entries score zero).
            (default: the ``weight_mask`` buffers)
        log (bool, optional): Return the natural logs of the scores, which
            never overflow (deep models can exceed the float64 range).
            (default: :obj:`False`)

    Returns:
        One float64 tensor per prunable layer, of its weight's shape.
    """
    flow, layers = flow_layers(model)
    if masks is None:
        masks = [fl.module.weight_mask for fl in layers]
    if len(masks) != len(layers):
        raise ValueError(f"synflow_scores: expected {len(layers)} masks, one "
                         f"per prunable layer (got {len(masks)})")
    weights = [fl.module.weight.detach().abs().double() * (m.detach() != 0)
               for fl, m in zip(layers, masks)]
    x, y = synflow_passes(flow, [channel_sums(fl, w) for fl, w in zip(layers, weights)])
    out = []
    for fl, w in zip(layers, weights):
        (xs, lx), (ys, ly) = x[fl.edge.src], y[fl.edge.dst]
        if lx == -math.inf or ly == -math.inf:
            out.append(torch.full_like(w, -math.inf))
        else:  # x and y are at most one: the product cannot overflow
            out.append(torch.log(w * fl.module.expand_channels(xs, ys)) + (lx + ly))
    return out if log else [s.exp() for s in out]


def synflow_masks(flow: ChannelFlow, layers: Sequence[FlowLayer], kept: int,
                  iterations: int = 100) -> List[Tensor]:
    r"""Iterative SynFlow: ``iterations`` rounds of scoring under the current
    masks and keeping the ``n_j`` best entries, with the kept fraction
    :math:`n_j / n = (k / n)^{j / J}` shrinking exponentially from one to
    ``kept``. A pruned entry never comes back (its score is zero); ties,
    e.g. entries whose flow is zero, are broken by position.

    Args:
        flow (ChannelFlow): The channel flow.
        layers (Sequence[FlowLayer]): Its prunable layers, in flow order.
        kept (int): Entries kept at the end.
        iterations (int, optional): :math:`J`. (default: :obj:`100`)

    Returns:
        One bool mask per layer, exactly ``kept`` entries in all.
    """
    if int(iterations) < 1:
        raise ValueError(f"Expected 'iterations' >= 1 (got {iterations})")
    weights = [fl.module.weight.detach().abs().double() for fl in layers]
    device = weights[0].device
    sizes = [w.numel() for w in weights]
    total = sum(sizes)
    node_off = [0]
    for node in flow.nodes:
        node_off.append(node_off[-1] + node.size)
    # Per flat entry: log|w|, its global input / output channel, and its
    # (layer, input, output) cell in the concatenated channel matrices.
    flat_w = torch.cat([w.reshape(-1) for w in weights])
    log_w = flat_w.log()
    gin, gout, cell, cell_off = [], [], [], [0]
    for fl, n in zip(layers, sizes):
        i, o = _channel_coords(fl.module, torch.arange(n, device=device))
        gin.append(i + node_off[fl.edge.src])
        gout.append(o + node_off[fl.edge.dst])
        cell.append(i * fl.module.num_out + o + cell_off[-1])
        cell_off.append(cell_off[-1] + fl.module.num_in * fl.module.num_out)
    gin, gout, cell = torch.cat(gin), torch.cat(gout), torch.cat(cell)

    # Only kept entries are scored: a pruned one scores zero and stays out.
    idx = torch.arange(total, device=device)
    for j in range(1, int(iterations) + 1):
        count = kept if j == iterations else max(
            kept, int(round(total * (kept / total) ** (j / iterations))))
        sums = flat_w.new_zeros(cell_off[-1]).index_add_(0, cell[idx], flat_w[idx])
        conns = [sums[cell_off[li]:cell_off[li + 1]].view(fl.module.num_in,
                                                           fl.module.num_out)
                 for li, fl in enumerate(layers)]
        x, y = synflow_passes(flow, conns)
        key = log_w[idx] + _log_flows(x)[gin[idx]] + _log_flows(y)[gout[idx]]
        idx = idx[_top_set(key, count)]
    flat = torch.zeros(total, dtype=torch.bool, device=device)
    flat[idx] = True
    return [m.view(w.shape) for m, w in zip(flat.split(sizes), weights)]


class SynFlow(PruningMethod):
    r"""SynFlow pruning at initialisation (Tanaka et al., 2020), data-free:
    before the first training step, :meth:`setup` runs
    :func:`synflow_masks` on the initial weights down to the exact budget,
    then the masks stay frozen for the whole training.

    The scores are computed on the channel graph (see
    :mod:`tcmp_pyg.pruning.synflow`); like magnitude pruning, the masks may
    keep dead weights (no consistency step).

    Args:
        model (nn.Module): A model declaring its channel flow.
        amount (int or float): Weights to remove (count or fraction).
        iterations (int, optional): Pruning rounds of the exponential
            schedule (the paper's 100). (default: :obj:`100`)
    """
    name = 'synflow'

    def __init__(self, model: nn.Module, amount: Amount, *,
                 iterations: int = 100, keep_dense: Sequence[str] = ()) -> None:
        if keep_dense:
            raise ValueError(f"synflow scores every layer by its flow and "
                             f"keeps no layer dense (got keep_dense="
                             f"{list(keep_dense)}); leave it out")
        if isinstance(iterations, bool) or int(iterations) != iterations \
                or iterations < 1:
            raise ValueError(f"Expected 'iterations' to be an int >= 1 (got "
                             f"{iterations!r})")
        # The schedule is reached at step 0: masks are frozen from the start.
        super().__init__(model, amount, start=0.0, end=0.0)
        self.iterations = int(iterations)

    def setup(self, total_steps: int) -> None:
        super().setup(total_steps)
        self.update(self.budget, final=True)
        self.updates = self.iterations
        self.freeze()

    def update(self, kept: int, final: bool = False) -> None:
        self.write_masks(synflow_masks(self.flow, self.layers, kept,
                                       self.iterations))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(amount={self.amount}, iterations='
                f'{self.iterations}, budget={self.budget}/{self.total})')
