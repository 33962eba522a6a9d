"""Deployment: dense equivalents of the skeleton models and ONNX export.

The PyG models aggregate over a batch's ``edge_index`` with ``torch.sparse``
CSR products, which ONNX runtimes for phones and microcontrollers do not
offer. :func:`to_dense` rebuilds a model in eval mode as a small
:class:`nn.Module` of plain operations (MatMul, 1x1 and temporal Conv,
Gather, Add, ReLU, Mean) over constant buffers: the normalised adjacency of
every partition as a dense matrix, weights multiplied by their masks,
BatchNorm and :class:`~tcmp_pyg.nn.ChannelGate` gates folded into the
preceding layer. :func:`export_onnx` writes that module to an ``.onnx`` file
after checking it against the PyG model.

Dense input layout: ``x`` of shape ``[B, M * V, T, C]`` (node-first, as a PyG
batch's ``x.view(B, M * V, T, C)``: bodies, then joints). The STGCN works
internally on ``[B, C, T, M * V]`` (channels first, as pyskl).
"""
from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmp_pyg.nn.compact import CompactAttentionGCN, CompactBlock, CompactSTGCN
from tcmp_pyg.nn.conv import STGraphConv, TemporalConv
from tcmp_pyg.nn.models import AttentionGCN, STGCN, STGCNBlock, bn_affine
from tcmp_pyg.nn.prunable import ChannelGate

SkeletonModel = Union[STGCN, CompactSTGCN, AttentionGCN, CompactAttentionGCN]


# -- folding helpers -----------------------------------------------------------

def dense_adjacency(conv: STGraphConv) -> Tensor:
    r"""The layer's normalised adjacency for one sample as a dense
    ``[K, M * V, M * V]`` tensor, ``A[k, target, source]``
    (:meth:`STGraphConv.dense_adjacency`)."""
    return conv.dense_adjacency()


def _gate(gate: Optional[ChannelGate], size: int, like: Tensor) -> Tensor:
    return (gate.gate.detach().to(like) if gate is not None
            else torch.ones(size, dtype=like.dtype, device=like.device))


def _fold_conv(conv: TemporalConv, bn: nn.BatchNorm1d, gate: Optional[ChannelGate]
               ) -> Tuple[Tensor, Tensor]:
    """``gate * bn(conv(x))`` as one Conv2d weight ``[C_out, C_in, k, 1]`` and
    bias."""
    w = (conv.weight * conv.weight_mask).detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros_like(w[:, 0, 0])
    s, t = bn_affine(bn)
    g = _gate(gate, w.size(0), w)
    return (w * (s * g).view(-1, 1, 1)).unsqueeze(-1), (b * s + t) * g


def _fold_gcn(conv: STGraphConv, bn: nn.BatchNorm1d, gate: Optional[ChannelGate]
              ) -> Tuple[Tensor, Tensor]:
    """``gate * bn(gcn)`` weight as a 1x1 Conv2d ``[D, K * C, 1, 1]`` over the
    partition-major aggregates (channel ``k * C + c``), and bias. ``gate``
    is 0/1 and the block applies ReLU next, so it folds in."""
    w = (conv.weight * conv.weight_mask).detach()  # [K, C, D]
    b = conv.bias.detach() if conv.bias is not None else torch.zeros_like(w[0, 0])
    s, t = bn_affine(bn)
    g = _gate(gate, w.size(2), w)
    w = w.permute(2, 0, 1).reshape(w.size(2), -1) * (s * g).view(-1, 1)
    return w.view(w.size(0), w.size(1), 1, 1), (b * s + t) * g


def _placement(positions: List[int], size: int, channels: int) -> Optional[Tensor]:
    """Gather indices writing ``positions[j] <- j`` into ``channels`` output
    channels, ``size`` (a zero channel) elsewhere; None for the identity."""
    if list(positions) == list(range(channels)) and size == channels:
        return None
    index = torch.full((channels,), size, dtype=torch.long)
    index[torch.as_tensor(list(positions), dtype=torch.long)] = torch.arange(len(positions))
    return index


# -- dense modules ---------------------------------------------------------------

class DenseSTGCNBlock(nn.Module):
    r"""An ST-GCN block over ``[B, C, T, V]`` with constant weights:

    .. math::
        \mathbf{H} = \mathrm{ReLU}\Big(\mathbf{W}_g \big\Vert_k
        \mathbf{X}\mathbf{A}_k^\top + \mathbf{b}_g\Big), \quad
        \mathbf{Y} = \mathrm{ReLU}\big(P_t(\mathrm{TConv}(\mathbf{H})) +
        P_r(\mathrm{Proj}(\mathbf{X})) + P_i(\mathbf{X})\big)

    (BatchNorm and gates folded; :math:`P` place a branch's channels among
    the output channels by a Gather over a zero-padded channel axis).
    Built by :func:`to_dense`.

    Shapes:
        - **input:** :math:`(B, C_{in}, T, V)`
        - **output:** :math:`(B, C_{out}, \lceil T / \mathrm{stride} \rceil, V)`
    """
    def __init__(self, in_channels: int, out_channels: int, *, stride: int,
                 kernel_size: int, adjacency: Optional[Tensor],
                 gcn: Optional[Tuple[Tensor, Tensor]],
                 tcn: Optional[Tuple[Tensor, Tensor]],
                 proj: Optional[Tuple[Tensor, Tensor]],
                 tcn_index: Optional[Tensor], proj_index: Optional[Tensor],
                 id_index: Optional[Tensor], identity: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.kernel_size = stride, kernel_size
        self.main = gcn is not None
        self.has_proj = proj is not None
        self.identity = identity
        if self.main:
            # adjacency_t[k] = A_k^T: X @ A_k^T aggregates sources into targets.
            self.register_buffer('adjacency_t', adjacency.transpose(1, 2).contiguous())
            self.register_buffer('gcn_weight', gcn[0])
            self.register_buffer('gcn_bias', gcn[1])
            self.register_buffer('tcn_weight', tcn[0])
            self.register_buffer('tcn_bias', tcn[1])
        if self.has_proj:
            self.register_buffer('proj_weight', proj[0])
            self.register_buffer('proj_bias', proj[1])
        for name, index in (('tcn_index', tcn_index), ('proj_index', proj_index),
                            ('id_index', id_index)):
            self.register_buffer(name, index)

    @staticmethod
    def _place(y: Tensor, index: Optional[Tensor]) -> Tensor:
        if index is None:
            return y
        return F.pad(y, (0, 0, 0, 0, 0, 1)).index_select(1, index)

    def forward(self, x: Tensor) -> Tensor:  # x: [B, C, T, V]
        out: Optional[Tensor] = None
        if self.main:
            K = self.adjacency_t.size(0)
            agg = torch.cat([x @ self.adjacency_t[k] for k in range(K)], dim=1)
            h = F.relu(F.conv2d(agg, self.gcn_weight, self.gcn_bias))
            y = F.conv2d(h, self.tcn_weight, self.tcn_bias, stride=(self.stride, 1),
                         padding=(self.kernel_size // 2, 0))
            out = self._place(y, self.tcn_index)
        if self.has_proj:
            r = self._place(F.conv2d(x, self.proj_weight, self.proj_bias,
                                     stride=(self.stride, 1)), self.proj_index)
            out = r if out is None else out + r
        if self.identity:
            r = self._place(x[:, :, ::self.stride], self.id_index)
            out = r if out is None else out + r
        if out is None:  # nothing reaches the output channels
            B, _, T, V = x.shape
            out = x.new_zeros(B, self.out_channels, -(-T // self.stride), V)
        return F.relu(out)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, stride={self.stride}, '
                f'main={self.main}, proj={self.has_proj}, identity={self.identity}')


class DenseSTGCN(nn.Module):
    r"""A dense, export-friendly :class:`~tcmp_pyg.nn.STGCN` or
    :class:`~tcmp_pyg.nn.CompactSTGCN` in eval mode (built by
    :func:`to_dense`; constant buffers only).

    Shapes:
        - **input:** :math:`(B, M \cdot V, T, C)`
        - **output:** logits :math:`(B, \mathrm{num\_classes})`
    """
    def __init__(self, num_nodes: int, in_channels: int, *,
                 input_index: Optional[Tensor], data_scale: Tensor,
                 data_shift: Tensor, blocks: List[DenseSTGCNBlock],
                 fc_weight: Tensor, fc_bias: Tensor) -> None:
        super().__init__()
        self.num_nodes, self.in_channels = num_nodes, in_channels
        self.register_buffer('input_index', input_index)
        self.register_buffer('data_scale', data_scale)  # [1, C, 1, V]
        self.register_buffer('data_shift', data_shift)
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer('fc_weight', fc_weight)
        self.register_buffer('fc_bias', fc_bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(self, x)
        if self.input_index is not None:
            x = x.index_select(3, self.input_index)
        h = x.permute(0, 3, 2, 1)  # [B, C, T, V]
        h = h * self.data_scale + self.data_shift
        for block in self.blocks:
            h = block(h)
        return F.linear(h.mean(dim=(2, 3)), self.fc_weight, self.fc_bias)


class DenseAttentionGCN(nn.Module):
    r"""A dense, export-friendly :class:`~tcmp_pyg.nn.AttentionGCN` or
    :class:`~tcmp_pyg.nn.CompactAttentionGCN` in eval mode: the softmax of
    the attention logits is a constant, one ``[V, V]`` matrix per channel.

    Shapes:
        - **input:** :math:`(B, M \cdot V, T, C)`
        - **output:** logits :math:`(B, \mathrm{num\_classes})`
    """
    def __init__(self, num_nodes: int, in_channels: int, num_frames: int, *,
                 input_index: Optional[Tensor], conv_weight: Tensor,
                 attention_t: Tensor, conv_bias: Tensor, fc1_weight: Tensor,
                 fc1_bias: Tensor, fc2_weight: Tensor, fc2_bias: Tensor) -> None:
        super().__init__()
        self.num_nodes, self.in_channels = num_nodes, in_channels
        self.num_frames = num_frames
        self.register_buffer('input_index', input_index)
        self.register_buffer('conv_weight', conv_weight)  # [width, T*C]
        self.register_buffer('attention_t', attention_t)  # [width, V, V] = A_c^T
        self.register_buffer('conv_bias', conv_bias)  # [width, 1]
        self.register_buffer('fc1_weight', fc1_weight)  # [hidden, width * V]
        self.register_buffer('fc1_bias', fc1_bias)
        self.register_buffer('fc2_weight', fc2_weight)
        self.register_buffer('fc2_bias', fc2_bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(self, x)
        B = x.size(0)
        f = x.reshape(B, self.num_nodes, -1)  # [B, V, T*C] trajectories
        if self.input_index is not None:
            f = f.index_select(2, self.input_index)
        z = F.linear(f, self.conv_weight).transpose(1, 2)  # [B, width, V]
        z = (z.unsqueeze(2) @ self.attention_t).squeeze(2)  # per-channel A_c z_c
        z = F.relu(z + self.conv_bias)
        h = F.relu(F.linear(z.reshape(B, -1), self.fc1_weight, self.fc1_bias))
        return F.linear(h, self.fc2_weight, self.fc2_bias)


def _check_input(model: nn.Module, x: Tensor) -> None:
    if x.dim() != 4 or x.size(1) != model.num_nodes or x.size(3) != model.in_channels:
        raise ValueError(f"{type(model).__name__}: expected 'x' of shape [B, "
                         f"{model.num_nodes}, T, {model.in_channels}] (got "
                         f"{tuple(x.shape)})")


# -- building --------------------------------------------------------------------

@torch.no_grad()
def to_dense(model: SkeletonModel) -> nn.Module:
    r"""The dense equivalent of a skeleton model in eval mode.

    Args:
        model (nn.Module): An :class:`~tcmp_pyg.nn.STGCN`,
            :class:`~tcmp_pyg.nn.AttentionGCN` (masked, gates applied) or
            their compact forms (:func:`~tcmp_pyg.pruning.compact`).

    Returns:
        :class:`DenseSTGCN` or :class:`DenseAttentionGCN` (eval mode, same
        device) computing ``model.forward_tensors(x.reshape(B * M * V, T, C),
        edge_index, B)`` from ``x``.
    """
    if isinstance(model, (STGCN, CompactSTGCN)):
        dense = _dense_stgcn(model)
    elif isinstance(model, (AttentionGCN, CompactAttentionGCN)):
        dense = _dense_attention(model)
    else:
        raise TypeError(f"to_dense() supports STGCN, AttentionGCN and their "
                        f"compact forms (got {type(model).__name__})")
    return dense.to(next(model.parameters()).device).eval()


def _dense_stgcn(model: Union[STGCN, CompactSTGCN]) -> DenseSTGCN:
    V = model.layout.num_nodes
    input_index = None
    if isinstance(model, CompactSTGCN):
        C = len(model.input_keep)
        if model.input_keep != list(range(model.in_channels)):
            input_index = model.input_idx.clone()
    else:
        C = model.in_channels
    s, t = bn_affine(model.data_bn)  # features v * C + c
    data_scale = s.view(V, C).t().reshape(1, C, 1, V)
    data_shift = t.view(V, C).t().reshape(1, C, 1, V)
    blocks = []
    for blk in model.blocks:
        if isinstance(blk, STGCNBlock):
            blocks.append(_dense_block(blk))
        else:
            blocks.append(_dense_compact_block(blk))
    fc_w = (model.fc.weight * model.fc.weight_mask).detach()
    return DenseSTGCN(V, model.in_channels, input_index=input_index,
                      data_scale=data_scale, data_shift=data_shift,
                      blocks=blocks, fc_weight=fc_w, fc_bias=model.fc.bias.detach())


def _dense_block(blk: STGCNBlock) -> DenseSTGCNBlock:
    proj = (_fold_conv(blk.proj, blk.proj_bn, blk.proj_gate)
            if blk.proj is not None else None)
    return DenseSTGCNBlock(
        blk.in_channels, blk.out_channels, stride=blk.stride,
        kernel_size=blk.tcn.kernel_size, adjacency=dense_adjacency(blk.gcn),
        gcn=_fold_gcn(blk.gcn, blk.bn1, blk.gate1),
        tcn=_fold_conv(blk.tcn, blk.bn2, blk.gate2), proj=proj,
        tcn_index=None, proj_index=None, id_index=None, identity=blk.identity)


def _dense_compact_block(blk: CompactBlock) -> DenseSTGCNBlock:
    out = blk.out_channels
    main = blk.main
    identity = blk.id_src.numel() > 0
    id_index = None
    if identity:  # output id_dst[j] <- input id_src[j]; a zero channel elsewhere
        id_index = torch.full((out,), blk.in_channels, dtype=torch.long)
        id_index[blk.id_dst.cpu()] = blk.id_src.cpu()
        if torch.equal(id_index, torch.arange(out)) and out == blk.in_channels:
            id_index = None
    return DenseSTGCNBlock(
        blk.in_channels, out, stride=blk.stride,
        kernel_size=blk.tcn.kernel_size if main else 1,
        adjacency=dense_adjacency(blk.gcn) if main else None,
        gcn=_fold_gcn(blk.gcn, blk.bn1, None) if main else None,
        tcn=_fold_conv(blk.tcn, blk.bn2, None) if main else None,
        proj=_fold_conv(blk.proj, blk.proj_bn, None) if blk.proj is not None else None,
        tcn_index=_placement(blk.tcn_pos.tolist(), blk.tcn_pos.numel(), out) if main else None,
        proj_index=(_placement(blk.proj_pos.tolist(), blk.proj_pos.numel(), out)
                    if blk.proj is not None else None),
        id_index=id_index, identity=identity)


def _dense_attention(model: Union[AttentionGCN, CompactAttentionGCN]
                     ) -> DenseAttentionGCN:
    V = model.layout.num_nodes
    att = torch.softmax(model.attention.detach(), dim=-1)  # [H, V, V]
    conv_w = (model.conv.weight * model.conv.weight_mask).detach()  # [width, T*C]
    s, t = bn_affine(model.conv_bn)
    input_index = None
    if isinstance(model, CompactAttentionGCN):
        heads = model.head_idx
        if model.input_keep != list(range(model.num_frames * model.in_channels)):
            input_index = model.input_idx.clone()
        g1 = g2 = None
    else:
        heads = torch.arange(conv_w.size(0), device=att.device) // model.head_channels
        g1, g2 = model.conv_gate, model.fc1_gate
    g = _gate(g1, conv_w.size(0), conv_w)
    # relu(bn(A_c (f w_c) + b_c)) * g_c = relu(A_c (f w_c s_c g_c) + (b_c s_c + t_c) g_c)
    conv_w = conv_w * (s * g).view(-1, 1)
    conv_b = (model.conv_bias.detach() * s + t) * g
    fc1 = (model.fc1.weight * model.fc1.weight_mask).detach()  # [hidden, V, width]
    fc1_b = model.fc1.bias.detach()
    h = _gate(g2, fc1.size(0), fc1)
    fc1 = fc1 * h.view(-1, 1, 1)
    fc1_b = fc1_b * h
    fc1 = fc1.transpose(1, 2).reshape(fc1.size(0), -1)  # input index c * V + v
    fc2 = (model.fc2.weight * model.fc2.weight_mask).detach()
    return DenseAttentionGCN(
        V, model.in_channels, model.num_frames, input_index=input_index,
        conv_weight=conv_w, attention_t=att[heads].transpose(1, 2).contiguous(),
        conv_bias=conv_b.view(-1, 1), fc1_weight=fc1, fc1_bias=fc1_b,
        fc2_weight=fc2, fc2_bias=model.fc2.bias.detach())


# -- checking and exporting --------------------------------------------------------

def example_input(model: SkeletonModel, num_frames: int, batch_size: int = 2,
                  seed: int = 0) -> Tensor:
    """A random dense input ``[B, M * V, T, C]`` on the model's device."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, model.layout.num_nodes, num_frames,
                    model.in_channels, generator=gen)
    return x.to(next(model.parameters()).device)


def pyg_forward(model: SkeletonModel, x: Tensor) -> Tensor:
    """``model`` on a dense input ``[B, M * V, T, C]`` (a batch of copies of
    the layout's bones)."""
    B, V, T, C = x.shape
    ei = model.layout.edge_index().to(x.device)
    edge_index = torch.cat([ei + b * V for b in range(B)], dim=1)
    return model.forward_tensors(x.reshape(B * V, T, C), edge_index, B)


@torch.no_grad()
def check_dense(model: SkeletonModel, dense: nn.Module, x: Tensor, *,
                atol: float = 1e-4) -> float:
    r"""Largest absolute difference between ``dense(x)`` and the PyG model in
    eval mode; raises RuntimeError above ``atol`` times the largest output
    magnitude (at least 1): float32 rounding grows with the logits, which
    a trained model on random input drives into the thousands."""
    was_training = model.training
    model.eval()
    try:
        expected = pyg_forward(model, x)
    finally:
        model.train(was_training)
    diff = float((dense(x) - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    if not diff <= atol * scale:
        raise RuntimeError(f"{type(dense).__name__} differs from "
                           f"{type(model).__name__} by {diff:.3g} (> atol="
                           f"{atol} x largest output {scale:.3g}); please "
                           f"report this as a bug")
    return diff


def require_onnx() -> None:
    """Raises an :class:`ImportError` naming the ``export`` extra if
    :func:`export_onnx` cannot run (``onnx`` or ``onnxscript`` missing)."""
    missing = [name for name in ('onnx', 'onnxscript')
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"export_onnx() needs {' and '.join(missing)}: "
                          f"pip install 'tcmp-pyg[export]'")


def export_onnx(model: SkeletonModel, path: Union[str, os.PathLike], *,
                num_frames: int, batch_size: Optional[int] = 1,
                opset_version: Optional[int] = None, check: bool = True,
                atol: float = 1e-4) -> Path:
    r"""Exports a (compacted) skeleton model to ONNX for on-device inference.

    The exported graph is :func:`to_dense` of the model: input ``x`` of
    shape ``[B, M * V, num_frames, C]`` (float32; node-first like
    ``batch.x.view(B, M * V, T, C)``), output ``logits`` ``[B,
    num_classes]``; eval-mode semantics (BatchNorm running statistics, no
    dropout). Uses the :func:`torch.onnx.export` ``dynamo`` exporter, which
    needs the ``onnx`` and ``onnxscript`` packages (the ``export`` extra).
    The file is written atomically (a temporary file renamed over ``path``).

    Args:
        model (nn.Module): An :class:`~tcmp_pyg.nn.STGCN`,
            :class:`~tcmp_pyg.nn.AttentionGCN` or their compact forms.
        path (str or PathLike): The ``.onnx`` file to write.
        num_frames (int): Frames per sequence ``T`` (fixed in the graph).
        batch_size (int, optional): Fixed batch size, or :obj:`None` for a
            dynamic batch axis. (default: :obj:`1`)
        opset_version (int, optional): ONNX opset, 18 or newer (the
            exporter's minimum). (default: the exporter's, 20 in torch 2.13)
        check (bool, optional): First compare the dense module with the PyG
            model on a random input. (default: :obj:`True`)
        atol (float, optional): Tolerance of that check. (default: :obj:`1e-4`)

    Returns:
        The path written.
    """
    require_onnx()
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"Expected 'batch_size' >= 1 or None (got {batch_size})")
    if isinstance(model, (AttentionGCN, CompactAttentionGCN)) and \
            num_frames != model.num_frames:
        raise ValueError(f"{type(model).__name__} takes sequences of "
                         f"{model.num_frames} frames (got num_frames={num_frames})")
    dense = to_dense(model)
    if check:
        check_dense(model, dense, example_input(model, num_frames), atol=atol)
    dense = dense.cpu()
    example = example_input(model, num_frames, batch_size or 2).cpu()
    dynamic_shapes = None
    if batch_size is None:
        dynamic_shapes = ({0: torch.export.Dim('batch', min=1)},)
    path = Path(path)
    # Beside the target (same file system, so the rename is atomic).
    tmp = path.with_name(f'.{path.name}.{secrets.token_hex(4)}.tmp')
    try:
        torch.onnx.export(dense, (example,), tmp, dynamo=True,
                          input_names=['x'], output_names=['logits'],
                          dynamic_shapes=dynamic_shapes,
                          opset_version=opset_version, external_data=False,
                          verbose=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
