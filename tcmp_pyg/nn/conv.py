"""Prunable layers: ST-GCN spatial graph convolution, temporal convolution,
linear maps. Node-first layout ``x: [N, T, C]`` (``N = B * M * V`` nodes)."""
from __future__ import annotations

import math
import warnings
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from tcmp_pyg.layouts import LayoutLike, get_layout
from tcmp_pyg.nn.prunable import PrunableModule

# The CSR matrix product used here is stable; only its constructor warns.
warnings.filterwarnings('ignore', '.*Sparse CSR tensor support is in beta.*')


def _uniform_(t: Tensor, fan_in: int) -> None:
    # PyTorch's default for linear/conv layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    nn.init.uniform_(t, -bound, bound)


def spatial_partitions(layout: LayoutLike, partitions: int) -> Tuple[Tensor, Tensor]:
    r"""The ST-GCN partition of a skeleton's directed edges, self-loops included.

    Edge types are the directed bones (``j -> i`` for every bone, both ways)
    followed by one self-loop per joint. With ``partitions=3`` (*spatial*
    strategy, Yan et al. 2018) an edge ``j -> i`` is in partition 0 (root) when
    ``j`` and ``i`` are equally far from the centre joint (self-loops), 1
    (centripetal) when ``j`` is closer, 2 (centrifugal) when farther;
    ``partitions=2`` (*distance*) separates self-loops from neighbours;
    ``partitions=1`` (*uniform*) puts everything together.

    Returns:
        ``(edges, part)``: joint pairs ``[2, E_types]`` (row 0 source, row 1
        target) and the partition of each, ``[E_types]``.
    """
    layout = get_layout(layout)
    if partitions not in (1, 2, 3):
        raise ValueError(f"Expected 'partitions' to be 1 (uniform), 2 "
                         f"(distance) or 3 (spatial) (got {partitions})")
    bones = torch.tensor(layout.bones, dtype=torch.long).view(-1, 2).t()
    loops = torch.arange(layout.num_joints).repeat(2, 1)
    edges = torch.cat([bones, bones.flip(0), loops], dim=1)
    hops = layout.hop_distance()
    src_hop, dst_hop = hops[edges[0]], hops[edges[1]]
    if partitions == 3:
        part = torch.where(src_hop == dst_hop, 0, torch.where(src_hop < dst_hop, 1, 2))
    elif partitions == 2:
        part = (edges[0] != edges[1]).long()
    else:
        part = torch.zeros(edges.size(1), dtype=torch.long)
    return edges, part


class _Graph(NamedTuple):
    edge_index: Tensor  # the batch's edge_index, to verify cache hits
    index: Tensor  # [2, E'] source node, target node * K + partition
    norm: Tensor  # [E'] symmetric per-partition normalisation
    etype: Tensor  # [E'] edge type (for edge importance)
    crow: Tensor  # CSR of the [N * K, N] transposed adjacency
    col: Tensor
    perm: Tensor  # COO edge order -> CSR order


class STGraphConv(MessagePassing, PrunableModule):
    r"""The spatial graph convolution of ST-GCN (`Yan et al., AAAI 2018
    <https://arxiv.org/abs/1801.07455>`_) as message passing over the bones.

    .. math::
        \mathbf{X}' = \sum_{k=1}^{K} \hat{\mathbf{A}}_k \mathbf{X}
        (\mathbf{W}_k \odot \mathbf{M}_k) + \mathbf{b},
        \qquad \hat{\mathbf{A}}_k = \mathbf{D}_{k,\mathrm{in}}^{-1/2}
        \mathbf{A}_k \mathbf{D}_{k,\mathrm{out}}^{-1/2}

    where :math:`\mathbf{A}_k` holds the edges of partition :math:`k`
    (see :func:`spatial_partitions`), optionally scaled by a learnable edge
    importance, and :math:`\mathbf{M}` is the prunable weight's mask.
    Messages of partition :math:`k` aggregate into target slot ``i * K + k``
    (a bipartite ``N -> N * K`` propagation), then one matrix product applies
    all :math:`\mathbf{W}_k`.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        layout (str or SkeletonLayout): The skeleton (for the partition).
        partitions (int, optional): 3 (spatial), 2 (distance) or 1 (uniform).
            (default: :obj:`3`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)
        edge_importance (bool, optional): Learn one multiplier per directed
            bone and self-loop. (default: :obj:`False`)
        sparse (bool, optional): Aggregate with a cached ``torch.sparse`` CSR
            adjacency (:meth:`message_and_aggregate`) instead of gathering and
            scattering messages. Both give the same result.
            (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(N, T, C_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)` (bones of every body, no self-loops;
          nodes of a PyG batch of graphs of this layout)
        - **output:** :math:`(N, T, C_{out})`
    """
    in_axis = 1
    out_axis = 2

    def __init__(self, in_channels: int, out_channels: int, *,
                 layout: LayoutLike, partitions: int = 3, bias: bool = True,
                 edge_importance: bool = False, sparse: bool = True) -> None:
        super().__init__(aggr='add', node_dim=0)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.layout = get_layout(layout)
        self.partitions = partitions
        self.sparse = sparse

        edges, part = spatial_partitions(self.layout, partitions)
        V = self.layout.num_joints
        lut = torch.full((V, V), -1, dtype=torch.long)
        lut[edges[0], edges[1]] = torch.arange(edges.size(1))
        self.register_buffer('_type_lut', lut, persistent=False)
        self.register_buffer('_type_part', part, persistent=False)

        self.weight = nn.Parameter(torch.empty(partitions, in_channels, out_channels))
        self._init_mask()
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.edge_importance = (nn.Parameter(torch.ones(edges.size(1)))
                                if edge_importance else None)
        self._cache: Dict[Tuple[int, int, str], _Graph] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        fan_in = self.partitions * self.in_channels
        _uniform_(self.weight, fan_in)
        if self.bias is not None:
            _uniform_(self.bias, fan_in)
        if self.edge_importance is not None:
            nn.init.ones_(self.edge_importance)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if x.dim() != 3 or x.size(-1) != self.in_channels:
            raise ValueError(f"{self}: expected 'x' of shape [N, T, "
                             f"{self.in_channels}] (got {tuple(x.shape)})")
        N, T, C = x.shape
        K = self.partitions
        g = self._graph(edge_index, N)
        norm = g.norm.to(x.dtype)  # built in the default dtype
        if self.edge_importance is not None:
            norm = norm * self.edge_importance[g.etype]

        if self.sparse:
            adj_t = torch.sparse_csr_tensor(g.crow, g.col, norm[g.perm],
                                            size=(N * K, N), check_invariants=False)
            h = self.propagate(adj_t, x=x, edge_weight=None)
        else:
            h = self.propagate(g.index, x=x, edge_weight=norm, size=(N, N * K))

        h = h.view(N, K, T, C)  # partition-wise aggregates
        out = torch.einsum('nktc,kcd->ntd', h, self.masked_weight())
        if self.bias is not None:
            out = out + self.bias
        return out

    def message(self, x_j: Tensor, edge_weight: Optional[Tensor]) -> Tensor:
        return edge_weight.view(-1, 1, 1) * x_j

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
        N, T, C = x.shape
        return torch.sparse.mm(adj_t, x.reshape(N, T * C)).view(-1, T, C)

    def _graph(self, edge_index: Tensor, num_nodes: int) -> _Graph:
        key = (num_nodes, edge_index.size(1), str(edge_index.device))
        g = self._cache.get(key)
        if g is not None and torch.equal(g.edge_index, edge_index):
            return g
        g = self._build_graph(edge_index, num_nodes)
        if len(self._cache) >= 8:  # a few batch sizes at most; drop the oldest
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = g
        return g

    @torch.no_grad()
    def _build_graph(self, edge_index: Tensor, N: int) -> _Graph:
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"{self}: expected 'edge_index' of shape [2, E] "
                             f"(got {tuple(edge_index.shape)})")
        device = edge_index.device
        V = self.layout.num_joints
        if N % self.layout.num_nodes != 0:
            raise ValueError(
                f"{self}: {N} nodes is not a whole number of "
                f"'{self.layout.name}' graphs of {self.layout.num_nodes} nodes "
                f"({self.layout.num_bodies} bodies x {V} joints)")
        src, dst = edge_index
        if edge_index.numel() and (int(edge_index.max()) >= N or int(edge_index.min()) < 0):
            raise ValueError(f"{self}: 'edge_index' refers to nodes outside "
                             f"0..{N - 1}")
        lut = self._type_lut.to(device)
        same_body = (src // V) == (dst // V)
        etype = lut[src % V, dst % V]
        bad = (etype < 0) | ~same_body
        if bool(bad.any()):
            j, i = (int(v) for v in edge_index[:, bad.nonzero()[0, 0]])
            raise ValueError(f"{self}: edge ({j} -> {i}) is not a bone of "
                             f"layout '{self.layout.name}' (self-loops are "
                             f"added by the layer)")
        nodes = torch.arange(N, device=device)
        src = torch.cat([src, nodes])
        dst = torch.cat([dst, nodes])
        etype = torch.cat([etype, lut[nodes % V, nodes % V]])
        part = self._type_part.to(device)[etype]

        K = self.partitions
        ones = torch.ones(src.numel(), device=device)
        deg_in = torch.zeros(N * K, device=device).index_add_(0, dst * K + part, ones)
        deg_out = torch.zeros(N * K, device=device).index_add_(0, src * K + part, ones)
        norm = (deg_in[dst * K + part] * deg_out[src * K + part]).rsqrt()

        row = dst * K + part
        perm = torch.argsort(row * N + src)
        crow = torch.zeros(N * K + 1, dtype=torch.long, device=device)
        crow[1:] = torch.bincount(row, minlength=N * K).cumsum(0)
        return _Graph(edge_index.clone(), torch.stack([src, row]), norm, etype,
                      crow, src[perm], perm)

    @torch.no_grad()
    def dense_adjacency(self) -> Tensor:
        r"""The normalised adjacency of one sample of the layout as a dense
        ``[K, M * V, M * V]`` tensor, ``A[k, target, source]`` (self-loops and
        edge importance included): :math:`\mathbf{X}' = \sum_k \mathbf{A}_k
        \mathbf{X} \mathbf{W}_k` (plus bias)."""
        V, K = self.layout.num_nodes, self.partitions
        g = self._build_graph(self.layout.edge_index().to(self.weight.device), V)
        norm = g.norm
        if self.edge_importance is not None:
            norm = norm * self.edge_importance[g.etype]
        src, row = g.index  # row = target * K + partition
        adj = torch.zeros(V * K, V, device=norm.device, dtype=self.weight.dtype)
        adj.index_put_((row, src), norm.to(adj.dtype), accumulate=True)
        return adj.view(V, K, V).transpose(0, 1).contiguous()

    def _apply(self, fn, recurse=True):
        self._cache.clear()  # cached graphs live on the old device
        return super()._apply(fn, recurse)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, '
                f'{self.out_channels}, partitions={self.partitions})')


class TemporalConv(PrunableModule):
    r"""A temporal convolution over each node's sequence, with a prunable
    weight of shape ``[C_out, C_in, kernel_size]``; zero padding keeps
    ``T`` (divided by ``stride``).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int, optional): Taps over time (odd). (default: :obj:`9`)
        stride (int, optional): Temporal stride. (default: :obj:`1`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(N, T, C_{in})`
        - **output:** :math:`(N, \lceil T / \mathrm{stride} \rceil, C_{out})`
    """
    in_axis = 1
    out_axis = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9,
                 *, stride: int = 1, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"Expected an odd 'kernel_size' (got {kernel_size})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self._init_mask()
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * self.kernel_size
        _uniform_(self.weight, fan_in)
        if self.bias is not None:
            _uniform_(self.bias, fan_in)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.size(-1) != self.in_channels:
            raise ValueError(f"{self}: expected 'x' of shape [N, T, "
                             f"{self.in_channels}] (got {tuple(x.shape)})")
        if self.kernel_size == 1:  # a projection: a strided linear map
            return F.linear(x[:, ::self.stride], self.masked_weight()[:, :, 0],
                            self.bias)
        out = F.conv1d(x.transpose(1, 2), self.masked_weight(), self.bias,
                       stride=self.stride, padding=self.kernel_size // 2)
        return out.transpose(1, 2)  # [N, T', C_out]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.in_channels}, {self.out_channels}, '
                f'kernel_size={self.kernel_size}, stride={self.stride})')


class Linear(PrunableModule):
    r"""A prunable linear map. With ``nodes`` set, the input is per node
    (``[B, nodes, in_channels]``) and the weight ``[out, nodes, in]`` maps the
    flattened nodes (a fully connected layer after a graph convolution); the
    node axis is then a kernel axis for the channel map.

    Args:
        in_channels (int): Input channels (per node).
        out_channels (int): Output channels.
        nodes (int, optional): Number of nodes flattened into the input.
            (default: :obj:`None`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(*, C_{in})`, or :math:`(B, \mathrm{nodes}, C_{in})`
        - **output:** :math:`(*, C_{out})`, or :math:`(B, C_{out})`
    """
    out_axis = 0

    def __init__(self, in_channels: int, out_channels: int, *,
                 nodes: Optional[int] = None, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.nodes = nodes
        shape = (out_channels, in_channels) if nodes is None else (
            out_channels, nodes, in_channels)
        self.in_axis = len(shape) - 1
        self.weight = nn.Parameter(torch.empty(shape))
        self._init_mask()
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * (self.nodes or 1)
        _uniform_(self.weight, fan_in)
        if self.bias is not None:
            _uniform_(self.bias, fan_in)

    def forward(self, x: Tensor) -> Tensor:
        w = self.masked_weight()
        if self.nodes is None:
            return F.linear(x, w, self.bias)
        if x.dim() != 3 or x.shape[1:] != (self.nodes, self.in_channels):
            raise ValueError(f"{self}: expected 'x' of shape [B, {self.nodes}, "
                             f"{self.in_channels}] (got {tuple(x.shape)})")
        return F.linear(x.reshape(x.size(0), -1), w.reshape(w.size(0), -1),
                        self.bias)

    def __repr__(self) -> str:
        nodes = '' if self.nodes is None else f', nodes={self.nodes}'
        return f'{type(self).__name__}({self.in_channels}, {self.out_channels}{nodes})'


class _Complete(NamedTuple):
    index: Tensor  # [2, B * V * V] source, target nodes of every sample
    pair: Tensor  # [B * V * V] target joint * V + source joint


class AttentionPropagation(MessagePassing):
    r"""Multi-head propagation over the complete graph of each sample's nodes,
    with attention coefficients as edge weights: head :math:`h` of node
    :math:`i` receives

    .. math::
        \mathbf{x}'_{i,h} = \sum_{j} \alpha_{h,ij} \, \mathbf{x}_{j,h},

    where :math:`\boldsymbol{\alpha}_h \in \mathbb{R}^{V \times V}` (one per
    head, shared by the samples of a batch) is given by the caller, e.g. a
    row softmax of learned logits.

    With ``fused=True`` (the default) message and aggregation are evaluated
    together (:meth:`message_and_aggregate`): on a complete graph whose edge
    weights every sample shares, the sum of the messages is one batched
    matrix product, an order of magnitude faster than gathering and
    scattering ``B * V * V`` messages. ``fused=False`` propagates the
    messages of :meth:`message` over the edges ``j -> i`` of every pair of
    nodes of a sample (self-loops included; built once per batch size and
    cached). Both give the same result.

    Args:
        num_nodes (int): Nodes per sample (``V``).
        heads (int): Attention heads.
        fused (bool, optional): Fuse message and aggregation.
            (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(B \cdot V, H, C)`, coefficients
          :math:`(H, V, V)` (``alpha[h, target, source]``)
        - **output:** :math:`(B \cdot V, H, C)`
    """
    def __init__(self, num_nodes: int, heads: int, *, fused: bool = True) -> None:
        super().__init__(aggr='add', node_dim=0)
        self.num_nodes = num_nodes
        self.heads = heads
        self.fused = fused
        self._cache: Dict[Tuple[int, str], _Complete] = {}

    def forward(self, x: Tensor, alpha: Tensor) -> Tensor:
        V, H = self.num_nodes, self.heads
        if x.dim() != 3 or x.size(1) != H or x.size(0) % V:
            raise ValueError(f"{self}: expected 'x' of shape [B * {V}, {H}, C] "
                             f"(got {tuple(x.shape)})")
        if alpha.shape != (H, V, V):
            raise ValueError(f"{self}: expected 'alpha' of shape [{H}, {V}, {V}] "
                             f"(got {tuple(alpha.shape)})")
        if self.fused:
            return self.message_and_aggregate(alpha, x)
        g = self._graph(x.size(0), x.device)
        weight = alpha.reshape(H, V * V)[:, g.pair].t()  # [E, H]
        return self.propagate(g.index, x=x, edge_weight=weight)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j

    def message_and_aggregate(self, alpha: Tensor, x: Tensor) -> Tensor:
        """The summed messages of every sample's complete graph as one
        batched product with the ``[H, V, V]`` coefficients."""
        N, H, C = x.shape
        V = self.num_nodes
        out = torch.einsum('hij,bjhc->bihc', alpha, x.view(N // V, V, H, C))
        # With one sample einsum returns a strided view; callers reshape freely.
        return out.contiguous().view(N, H, C)

    @torch.no_grad()
    def _graph(self, N: int, device: torch.device) -> _Complete:
        key = (N, str(device))
        g = self._cache.get(key)
        if g is not None:
            return g
        V = self.num_nodes
        dst = torch.arange(N, device=device).repeat_interleave(V)
        src = (dst // V) * V + torch.arange(V, device=device).repeat(N)
        g = _Complete(torch.stack([src, dst]), (dst % V) * V + (src % V))
        if len(self._cache) >= 8:  # a few batch sizes at most; drop the oldest
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = g
        return g

    def _apply(self, fn, recurse=True):
        self._cache.clear()  # cached graphs live on the old device
        return super()._apply(fn, recurse)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(nodes={self.num_nodes}, heads={self.heads})'
