"""Miniaturised models: STGCN / AttentionGCN restricted to their live channels.

Built by :func:`tcmp_pyg.pruning.compact`; they keep the surviving masks (so
the connectivity analysis applies) and describe themselves with plain data.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmp_pyg.layouts import SkeletonLayout, get_layout
from tcmp_pyg.nn.conv import Linear, STGraphConv, TemporalConv
from tcmp_pyg.nn.models import _bn, _SkeletonModel, bn_affine
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


# Above this many entries of tap products, a convolution is faster than the
# sparse shift product (measured on CPU: benchmarks/bench_compact.py).
_TAPS_MAX = 1 << 19


def _maybe_sparse(weight: Tensor, sparse_below: float) -> Tensor:
    """``weight`` (``[out, in]``, for :func:`_linear`), or its transpose as a
    sparse CSR matrix when its density is below ``sparse_below``."""
    if weight.numel() and float((weight != 0).float().mean()) < sparse_below:
        return weight.t().to_sparse_csr()
    return weight


def _linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``F.linear`` for a dense ``[out, in]`` weight or a CSR ``[in, out]`` one
    from :func:`_maybe_sparse` (a dense-by-sparse product: only the kept
    entries are multiplied)."""
    if weight.layout != torch.sparse_csr:
        return F.linear(x, weight, bias)
    y = x @ weight
    return y if bias is None else y.add_(bias)


def _products(weight: Tensor) -> int:
    """Multiplications per row of :func:`_linear` by ``weight``."""
    if weight.layout == torch.sparse_csr:
        return int(weight.values().numel())
    return weight.numel()


class _FoldedBlock(NamedTuple):
    """A :class:`CompactBlock` in eval mode as matrices over node-major rows
    ``(node, sample, frame)``, BatchNorm and channel placement folded in."""
    adjacency: Optional[Tensor]  # [K, V, V], A[k, target, source]
    gcn_weight: Optional[Tensor]  # [K * D, C_in], row k * D + d (or CSR [C_in, K * D])
    gcn_bias: Optional[Tensor]  # [D]
    tcn_weight: Optional[Tensor]  # [C_out, D, kernel]
    tcn_taps: Optional[Tensor]  # [kernel * C_out, D], row tap * C_out + o (or CSR)
    tcn_bias: Optional[Tensor]  # [C_out]
    residual: Optional[Tensor]  # [C_out, C_in]: projection and identity (or CSR)
    residual_bias: Optional[Tensor]  # [C_out]
    copy_input: bool  # the residual is the (strided) input itself
    operators: Dict[Any, Tensor]  # sparse aggregation / shift matrices per shape


def _make_room(operators: Dict[Any, Tensor], size: int = 16) -> None:
    # A few batch shapes at most (the last batch of a split is smaller).
    while len(operators) >= size:
        operators.pop(next(iter(operators)))


def _csr(rows: Tensor, cols: Tensor, values: Tensor, size: Tuple[int, int]) -> Tensor:
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, size,
                                  check_invariants=True)  # built once per shape
    return coo.coalesce().to_sparse_csr()


def _fold_bn(weight: Tensor, bias: Optional[Tensor], bn: nn.BatchNorm1d
             ) -> Tuple[Tensor, Tensor]:
    """``bn(F.linear(x, weight, bias))`` as ``F.linear(x, weight', bias')``
    (``weight``: ``[..., C_out, C_in]``)."""
    scale, shift = bn_affine(bn)
    b = bias.detach() if bias is not None else torch.zeros_like(scale)
    return weight.detach() * scale.unsqueeze(-1), b * scale + shift


def _place_rows(weight: Tensor, bias: Tensor, pos: Tensor, rows: int
                ) -> Tuple[Tensor, Tensor]:
    """Output ``i`` of a linear map moved to output ``pos[i]`` of ``rows``."""
    if pos.tolist() == list(range(rows)):
        return weight, bias
    w = weight.new_zeros(rows, weight.size(1))
    b = bias.new_zeros(rows)
    w[pos], b[pos] = weight, bias
    return w, b


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

    @torch.no_grad()
    def fold(self, sparse_below: float = 0.0) -> _FoldedBlock:
        """This block in eval mode as a :class:`_FoldedBlock`; its channel
        maps of density below ``sparse_below`` as sparse matrices."""
        adjacency = gcn_weight = gcn_bias = tcn_weight = tcn_taps = tcn_bias = None
        residual = residual_bias = None
        if self.main:
            K, C, D = self.gcn.weight.shape
            adjacency = self.gcn.dense_adjacency()
            w, gcn_bias = _fold_bn(self.gcn.masked_weight().permute(0, 2, 1),
                                   self.gcn.bias, self.bn1)  # [K, D, C]
            gcn_weight = w.reshape(K * D, C)
            w = self.tcn.masked_weight()  # [n, D, kernel]
            w, b = _fold_bn(w.reshape(w.size(0), -1), self.tcn.bias, self.bn2)
            w, tcn_bias = _place_rows(w, b, self.tcn_pos, self.out_channels)
            tcn_weight = w.view(self.out_channels, D, -1)
            tcn_taps = tcn_weight.permute(2, 0, 1).reshape(-1, D)
        if self.proj is not None:
            w, b = _fold_bn(self.proj.masked_weight()[:, :, 0], self.proj.bias,
                            self.proj_bn)
            residual, residual_bias = _place_rows(w, b, self.proj_pos, self.out_channels)
        copy_input = False
        if self.id_src.numel():
            if self.id_place is None and residual is None:
                copy_input = True
            elif self.id_place is not None:
                place = self.id_place.t()  # [C_out, C_in]
                residual = place.clone() if residual is None else residual + place
            else:
                residual = residual + torch.eye(self.in_channels).to(residual)
        if gcn_weight is not None:
            gcn_weight = _maybe_sparse(gcn_weight, sparse_below)
            tcn_taps = _maybe_sparse(tcn_taps, sparse_below)
        if residual is not None:
            residual = _maybe_sparse(residual, sparse_below)
        return _FoldedBlock(adjacency, gcn_weight, gcn_bias, tcn_weight, tcn_taps,
                            tcn_bias, residual, residual_bias, copy_input, {})

    def folded_macs(self, f: _FoldedBlock, sequences: int, T: int) -> int:
        """Multiply-accumulates of :meth:`forward_folded` on ``sequences``
        (samples x nodes) of ``T`` frames: the products by the folded
        matrices (only the stored entries of the sparse ones) and the sparse
        sums over bones and taps."""
        T_out = -(-T // self.stride)
        macs = 0
        if f.residual is not None:
            macs += sequences * T_out * _products(f.residual)
        if f.adjacency is not None:
            D = f.gcn_bias.numel()
            V = f.adjacency.size(1)
            macs += sequences * T * _products(f.gcn_weight)
            macs += int((f.adjacency != 0).sum()) * (sequences // V) * T * D
            if (f.tcn_taps.layout == torch.sparse_csr
                    or sequences * T_out * f.tcn_taps.size(0) <= _TAPS_MAX):
                kernel = self.tcn.kernel_size
                macs += sequences * T * _products(f.tcn_taps)
                macs += sequences * T_out * kernel * self.out_channels  # shift-sum
            else:
                macs += sequences * T_out * f.tcn_weight.numel()
        return macs

    def passes_input(self, f: _FoldedBlock) -> bool:
        """Whether the block is ``ReLU`` of its input (identity only)."""
        return f.copy_input and f.adjacency is None and self.stride == 1

    @staticmethod
    def _aggregation(f: _FoldedBlock, frames: int) -> Tensor:
        # Sparse [V * F, V * F * K] matrix summing partition k of source j
        # into target v at each of F = B * T sample-frames.
        key = ('gcn', frames)
        if key not in f.operators:
            _make_room(f.operators)
            k, v, j = f.adjacency.nonzero(as_tuple=True)
            value = f.adjacency[k, v, j]
            K, V, _ = f.adjacency.shape
            t = torch.arange(frames, device=value.device)
            rows = v.view(-1, 1) * frames + t
            cols = (j.view(-1, 1) * frames + t) * K + k.view(-1, 1)
            f.operators[key] = _csr(rows.reshape(-1), cols.reshape(-1),
                                    value.view(-1, 1).expand(-1, frames).reshape(-1),
                                    (V * frames, V * frames * K))
        return f.operators[key]

    def _shift(self, f: _FoldedBlock, sequences: int, T: int) -> Tensor:
        # Sparse 0/1 [S * T', S * T * kernel] matrix picking, for output frame
        # t', tap j of input frame t' * stride + j - kernel // 2 (zero padding).
        key = ('tcn', sequences, T)
        if key not in f.operators:
            _make_room(f.operators)
            kernel, stride = self.tcn.kernel_size, self.stride
            T_out = -(-T // stride)
            device = f.tcn_taps.device
            n = torch.arange(sequences, device=device).view(-1, 1, 1)
            t = torch.arange(T_out, device=device).view(1, -1, 1)
            j = torch.arange(kernel, device=device).view(1, 1, -1)
            src = t * stride + j - kernel // 2
            ok = ((src >= 0) & (src < T)).expand(sequences, -1, -1)
            rows = (n * T_out + t).expand_as(ok)[ok]
            cols = ((n * T + src) * kernel + j).expand_as(ok)[ok]
            f.operators[key] = _csr(rows, cols, f.tcn_bias.new_ones(rows.numel()),
                                    (sequences * T_out, sequences * T * kernel))
        return f.operators[key]

    def forward_folded(self, x: Tensor, f: _FoldedBlock) -> Tensor:
        """:meth:`forward` in eval mode from :meth:`fold`, on node-major ``x``
        of shape ``[V, B, T, C_in]`` (contiguous); returns ``[V, B, T',
        C_out]``."""
        V, B, T, C = x.shape
        T_out = -(-T // self.stride)
        rows = V * B * T_out
        out: Optional[Tensor] = None
        if f.residual is not None or f.copy_input:
            xs = (x if self.stride == 1 else x[:, :, ::self.stride]).reshape(rows, C)
            out = (xs if f.residual is None
                   else _linear(xs, f.residual, f.residual_bias))
        if f.adjacency is not None:
            # Every partition's weights in one product, then one sparse sum
            # over the bones: no copy of the activations in between.
            D = f.gcn_bias.numel()
            y = _linear(x.view(-1, C), f.gcn_weight).view(-1, D)
            h = (self._aggregation(f, B * T) @ y).add_(f.gcn_bias).relu_()
            kernel = self.tcn.kernel_size
            sparse = f.tcn_taps.layout == torch.sparse_csr
            if sparse or rows * f.tcn_taps.size(0) <= _TAPS_MAX:
                # Small or sparse: every tap's product at once, then a sparse
                # shift-sum.
                z = _linear(h, f.tcn_taps).view(-1, self.out_channels)
                y = (self._shift(f, V * B, T) @ z).add_(f.tcn_bias)
            else:  # large: a convolution
                y = F.conv1d(h.view(V * B, T, D).transpose(1, 2), f.tcn_weight,
                             f.tcn_bias, stride=self.stride, padding=kernel // 2)
                y = y.transpose(1, 2).reshape(rows, -1)
            out = y if out is None else y.add_(out)
        if out is None:  # nothing reaches the output
            return x.new_zeros(V, B, T_out, self.out_channels)
        return F.relu(out).view(V, B, T_out, self.out_channels)

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
    instead of widths. Built by :func:`compact`; rebuilt from :meth:`config`.

    Inference (eval mode, autograd off, batches of the layout's own graph)
    runs on folded matrices over node-major rows: BatchNorm and channel
    placement merged into the weights, every partition's weights applied in
    one product and summed over the bones by one sparse product, the
    temporal taps likewise (a convolution for large batches). At these widths
    the cost of launching operations dominates, so this is several times
    faster than the layer path at batch 1 (``benchmarks/bench_compact.py``).
    The folded matrices are cached until a parameter or buffer changes (in
    place, by :meth:`load_state_dict`, or by moving the model; edits through
    ``.data`` are not tracked, :meth:`eval` refolds); set :attr:`fused` to
    :obj:`False` to always run the layer-by-layer path.

    Zeros inside the surviving channels stay in the dense folded matrices.
    Set :attr:`sparse_below` (a density in ``[0, 1]``, default 0: never) to
    store every channel map (graph-convolution weights, temporal taps,
    residual) whose density is below it as a sparse CSR matrix, multiplied
    by dense-by-sparse products (same outputs); :meth:`folded_macs` counts
    what the folded path computes either way. On CPU, PyTorch's
    dense-by-CSR products at these widths are slower than the dense ones
    despite several times fewer MACs (``benchmarks/bench_compact.py``), hence
    the default.
    """
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
        self.fused = True
        self._sparse_below = 0.0
        # (tensors, their versions, folded matrices) of the last fold.
        self._folded: Optional[Tuple[List[Tensor], List[int], Dict[str, Any]]] = None
        self._graphs: Dict[Any, Tensor] = {}  # batched layout edge_index per (B, device)

    def forward(self, data: Any) -> Tensor:
        return self.forward_tensors(data.x, data.edge_index, data.num_graphs)

    def forward_tensors(self, x: Tensor, edge_index: Tensor, num_graphs: int) -> Tensor:
        self._check_batch(x, edge_index, num_graphs)
        if (self.fused and not self.training and not torch.is_grad_enabled()
                and not torch.compiler.is_compiling()
                and self._is_layout_graph(edge_index, num_graphs)):
            return self._forward_folded(x, num_graphs)
        B, V = num_graphs, self.layout.num_nodes
        if not self._all_inputs:
            x = x.index_select(2, self.input_idx)
        N, T, C = x.shape
        h = x.view(B, V, T, C).permute(0, 1, 3, 2).reshape(B, V * C, T)
        h = self.data_bn(h).view(B, V, C, T).permute(0, 1, 3, 2).reshape(N, T, C)
        for block in self.blocks:
            h = block(h, edge_index)
        return self.fc(h.view(B, -1, h.size(-1)).mean(dim=1))

    def _is_layout_graph(self, edge_index: Tensor, num_graphs: int) -> bool:
        # The folded path aggregates over the layout's graph; any other graph
        # (a subset of the bones, another order) takes the layer path.
        key = (num_graphs, edge_index.device)
        expected = self._graphs.get(key)
        if expected is None:
            one = self.layout.edge_index().to(edge_index.device)
            offsets = torch.arange(num_graphs, device=one.device) * self.layout.num_nodes
            expected = (one.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(2, -1)
            if len(self._graphs) >= 8:  # a few batch sizes at most; drop the oldest
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = expected
        return edge_index.shape == expected.shape and torch.equal(edge_index, expected)

    @property
    def sparse_below(self) -> float:
        """Density below which a folded channel map is stored sparse (0:
        never, the default)."""
        return self._sparse_below

    @sparse_below.setter
    def sparse_below(self, value: float) -> None:
        if isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"CompactSTGCN: expected 'sparse_below' to be a "
                             f"density in [0, 1] (got {value!r})")
        self._sparse_below = float(value)
        self._folded = None

    @torch.no_grad()
    def folded_macs(self, num_graphs: int, num_frames: int) -> int:
        r"""Multiply-accumulates per sample of the folded inference path on
        ``num_graphs`` sequences of ``num_frames`` frames (the input
        normalisation and the final mean left out): dense folded matrices
        count every entry, sparse ones (:attr:`sparse_below`) their stored
        entries.

        Args:
            num_graphs (int): Batch size.
            num_frames (int): Frames per sequence.

        Returns:
            MACs per sample.
        """
        f = self._fold()
        sequences, T, macs = num_graphs * self.layout.num_nodes, num_frames, 0
        for i, (block, folded) in enumerate(zip(self.blocks, f['blocks'])):
            if not (i > 0 and block.passes_input(folded)):
                macs += block.folded_macs(folded, sequences, T)
            T = -(-T // block.stride)
        macs += num_graphs * f['fc_weight'].numel()
        return macs // num_graphs

    def _fold(self) -> Dict[str, Any]:
        # Every in-place update bumps a tensor's version: the folded matrices
        # are rebuilt after any optimizer step, load_state_dict or edit.
        # Moves and casts (_apply) and train() drop them outright.
        if self._folded is not None:
            tensors, versions, folded = self._folded
            if all(t._version == v for t, v in zip(tensors, versions)):
                return folded
        with torch.no_grad():
            V = self.layout.num_nodes
            scale, shift = bn_affine(self.data_bn)  # features v * C + c
            folded = dict(
                scale=scale.view(V, 1, 1, -1), shift=shift.view(V, 1, 1, -1),
                blocks=[block.fold(self._sparse_below) for block in self.blocks],
                fc_weight=self.fc.masked_weight().detach(),
                fc_bias=None if self.fc.bias is None else self.fc.bias.detach())
        tensors = [*self.parameters(), *self.buffers()]
        self._folded = (tensors, [t._version for t in tensors], folded)
        return folded

    def _forward_folded(self, x: Tensor, num_graphs: int) -> Tensor:
        f = self._fold()
        B, V = num_graphs, self.layout.num_nodes
        x = x.reshape(B, V, x.size(1), x.size(2))
        if not self._all_inputs:
            x = x.index_select(3, self.input_idx)
        # Node-major rows (node, sample, frame): the graph aggregation is then
        # one sparse product for the whole batch.
        h = x.new_empty(V, B, x.size(2), x.size(3))
        torch.addcmul(f['shift'], x.transpose(0, 1), f['scale'], out=h)
        for i, (block, folded) in enumerate(zip(self.blocks, f['blocks'])):
            if i > 0 and block.passes_input(folded):
                continue  # ReLU(h) = h after the previous block's ReLU
            h = block.forward_folded(h, folded)
        return F.linear(h.mean(dim=(0, 2)), f['fc_weight'], f['fc_bias'])

    def train(self, mode: bool = True) -> 'CompactSTGCN':
        self._folded = None
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self._folded, self._graphs = None, {}  # cached on the old device / dtype
        return super()._apply(fn, recurse)

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, '_folded': None, '_graphs': {}}  # caches

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
