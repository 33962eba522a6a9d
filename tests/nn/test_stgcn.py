"""ST-GCN layers against an independent dense einsum reference on [N, C, T, V]."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from tcmp_pyg.layouts import SkeletonLayout, get_layout
from tcmp_pyg.nn import STGCN, STGraphConv, TemporalConv, prunable_weights

pytestmark = pytest.mark.mp


def reference_adjacency(layout: SkeletonLayout, partitions: int) -> torch.Tensor:
    """[K, V, V] with A[k, target, source], built with numpy from the bones."""
    V = layout.num_joints
    adj = np.zeros((V, V), dtype=bool)
    for a, b in layout.bones:
        adj[a, b] = adj[b, a] = True
    hops = np.full(V, -1)
    hops[layout.center] = 0
    frontier = [layout.center]
    while frontier:
        frontier = [u for v in frontier for u in np.flatnonzero(adj[v])
                    if hops[u] < 0 and not hops.__setitem__(u, hops[v] + 1)]
    A = np.zeros((partitions, V, V))
    for i in range(V):  # target (root of the neighbourhood)
        for j in range(V):  # source
            if i != j and not adj[i, j]:
                continue
            if partitions == 1:
                k = 0
            elif partitions == 2:
                k = int(i != j)
            else:
                k = 0 if hops[j] == hops[i] else (1 if hops[j] < hops[i] else 2)
            A[k, i, j] = 1.0
    for k in range(partitions):
        d_in = A[k].sum(1)
        d_out = A[k].sum(0)
        scale_in = np.where(d_in > 0, d_in, 1) ** -0.5
        scale_out = np.where(d_out > 0, d_out, 1) ** -0.5
        A[k] = scale_in[:, None] * A[k] * scale_out[None, :]
    M = layout.num_bodies
    return torch.tensor(np.stack([np.kron(np.eye(M), a) for a in A]),
                        dtype=torch.float32)


def bn2d(x, bn):  # x [N, C, T, V]
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        bn.training, 0.0, bn.eps)


def reference_stgcn(model: STGCN, x: torch.Tensor) -> torch.Tensor:
    """The same ST-GCN math as pyskl writes it, dense over [N, C, T, V]."""
    A = reference_adjacency(model.layout, model.partitions)
    B, V, T, C = x.shape
    h = x.permute(0, 1, 3, 2).reshape(B, V * C, T)
    h = F.batch_norm(h, model.data_bn.running_mean, model.data_bn.running_var,
                     model.data_bn.weight, model.data_bn.bias,
                     model.data_bn.training, 0.0, model.data_bn.eps)
    h = h.view(B, V, C, T).permute(0, 2, 3, 1)  # N, C, T, V
    for blk in model.blocks:
        w = blk.gcn.weight * blk.gcn.weight_mask  # [K, C_in, C_out]
        g = torch.einsum('kwv,nctv->nkctw', A, h)
        g = torch.einsum('nkctw,kcd->ndtw', g, w) + blk.gcn.bias.view(1, -1, 1, 1)
        g = F.relu(bn2d(g, blk.bn1)) * blk.gate1.gate.view(1, -1, 1, 1)
        tw = (blk.tcn.weight * blk.tcn.weight_mask).unsqueeze(-1)
        # contiguous: oneDNN's conv backward corrupts memory on some strided
        # inputs in this torch build
        t = F.conv2d(g.contiguous(), tw, blk.tcn.bias, stride=(blk.stride, 1),
                     padding=(blk.tcn.kernel_size // 2, 0))
        t = bn2d(t, blk.bn2) * blk.gate2.gate.view(1, -1, 1, 1)
        if blk.identity:
            t = t + h
        elif blk.proj is not None:
            pw = (blk.proj.weight * blk.proj.weight_mask).unsqueeze(-1)
            r = F.conv2d(h.contiguous(), pw, blk.proj.bias, stride=(blk.stride, 1))
            t = t + bn2d(r, blk.proj_bn) * blk.proj_gate.gate.view(1, -1, 1, 1)
        h = F.relu(t)
    h = h.mean(dim=(2, 3))
    return F.linear(h, model.fc.weight * model.fc.weight_mask, model.fc.bias)


def make_batch(layout, B=3, T=12, C=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    layout = get_layout(layout)
    data = [Data(x=torch.randn(layout.num_nodes, T, C, generator=gen),
                 edge_index=layout.edge_index()) for _ in range(B)]
    return Batch.from_data_list(data)


def randomize(model, density=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0, 0.2, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
            module.weight.data.uniform_(0.5, 1.5, generator=gen)
            module.bias.data.normal_(0, 0.2, generator=gen)
    if density is not None:
        for _, module in prunable_weights(model):
            module.set_mask(torch.rand(module.weight.shape, generator=gen) < density)


@pytest.mark.parametrize('sparse', [True, False])
@pytest.mark.parametrize('density', [None, 0.5])
@pytest.mark.parametrize('layout', ['sbu', 'kinect_v1'])
def test_stgcn_matches_dense_reference(sparse, density, layout):
    torch.manual_seed(0)
    model = STGCN(3, 5, layout, channels=(8, 8, 16, 16), sparse=sparse)
    randomize(model, density)
    batch = make_batch(layout)
    L = model.layout
    x_dense = batch.x.view(batch.num_graphs, L.num_nodes, *batch.x.shape[1:])

    for mode in ('eval', 'train'):
        getattr(model, mode)()
        x1 = batch.x.clone().requires_grad_()
        x2 = x_dense.clone().requires_grad_()
        out = model.forward_tensors(x1, batch.edge_index, batch.num_graphs)
        ref = reference_stgcn(model, x2)
        assert out.shape == (3, 5)
        assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()

        grads = torch.autograd.grad(out.square().sum(), [x1] + list(model.parameters()))
        ref_grads = torch.autograd.grad(ref.square().sum(), [x2] + list(model.parameters()))
        assert torch.allclose(grads[0].view_as(x2), ref_grads[0], atol=1e-5)
        # Weight gradients sum over every node and frame: float32 rounding
        # differs by summation order (about 1e-5 of gradients near 0.4).
        for g, r in zip(grads[1:], ref_grads[1:]):
            assert torch.allclose(g, r, atol=5e-5), (g - r).abs().max()


def test_sparse_and_scatter_paths_agree_with_edge_importance():
    torch.manual_seed(0)
    layout = get_layout('ntu')
    conv = STGraphConv(3, 7, layout=layout, edge_importance=True)
    other = STGraphConv(3, 7, layout=layout, edge_importance=True, sparse=False)
    with torch.no_grad():
        conv.edge_importance.uniform_(0.5, 1.5)
    other.load_state_dict(conv.state_dict())
    batch = make_batch(layout, B=2, T=5)
    out = conv(batch.x, batch.edge_index)
    ref = other(batch.x, batch.edge_index)
    assert out.shape == (2 * 50, 5, 7)
    assert torch.allclose(out, ref, atol=1e-6)
    g1 = torch.autograd.grad(out.sum(), conv.edge_importance)[0]
    g2 = torch.autograd.grad(ref.sum(), other.edge_importance)[0]
    assert g1.abs().sum() > 0
    assert torch.allclose(g1, g2, atol=1e-5)


def test_stgraphconv_repr_and_partitions():
    conv = STGraphConv(3, 16, layout='sbu')
    assert str(conv) == 'STGraphConv(3, 16, partitions=3)'
    assert conv.weight.shape == (3, 3, 16) == conv.weight_mask.shape
    A = reference_adjacency(get_layout('sbu'), 3)
    # Root partition holds exactly the self-loops on a tree skeleton.
    assert torch.equal(A[0] != 0, torch.eye(30, dtype=torch.bool))
    for K in (1, 2):
        conv = STGraphConv(2, 4, layout='sbu', partitions=K)
        model_out = conv(make_batch('sbu', B=1, T=3, C=2).x,
                         get_layout('sbu').edge_index())
        assert model_out.shape == (30, 3, 4)


def test_graph_cache_is_reused_and_checked():
    conv = STGraphConv(3, 4, layout='sbu')
    batch = make_batch('sbu', B=2, T=4)
    conv(batch.x, batch.edge_index)
    conv(batch.x, batch.edge_index)
    assert len(conv._cache) == 1
    wrong = batch.edge_index.clone()
    wrong[1, 0] = 29  # joint 0 -> joint 29 is not a bone
    with pytest.raises(ValueError, match='is not a bone'):
        conv(batch.x, wrong)


def test_temporal_conv_matches_conv1d():
    torch.manual_seed(0)
    conv = TemporalConv(4, 6, 9, stride=2)
    x = torch.randn(5, 17, 4)
    ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias, stride=2,
                   padding=4).transpose(1, 2)
    out = conv(x)
    assert out.shape == (5, 9, 6)
    assert torch.allclose(out, ref, atol=1e-5)
    assert str(conv) == 'TemporalConv(4, 6, kernel_size=9, stride=2)'


def test_stgcn_defaults_have_about_3_1_million_parameters():
    model = STGCN(3, 60, 'ntu')
    n = sum(p.numel() for p in model.parameters())
    assert 3.0e6 < n < 3.2e6
    assert model.strides == (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    assert repr(model) == "STGCN(3, 60, layout='ntu', blocks=10)"


def test_pruned_model_state_dict_pickle_and_compile_round_trip(tmp_path):
    torch.manual_seed(0)
    model = STGCN(3, 4, 'sbu', channels=(4, 8))
    randomize(model, density=0.3)
    model.eval()
    batch = make_batch('sbu', B=2, T=8)
    out = model(batch)

    path = tmp_path / 'model.pt'
    torch.save(model.state_dict(), path)
    clone = STGCN(3, 4, 'sbu', channels=(4, 8))
    clone.load_state_dict(torch.load(path, weights_only=True), strict=True)
    clone.eval()
    assert torch.equal(clone(batch), out)

    unpickled = pickle.loads(pickle.dumps(model))
    assert torch.equal(unpickled(batch), out)

    compiled = torch.compile(model, backend='eager')
    assert torch.allclose(compiled(batch), out, atol=1e-6)


def test_straight_through_gradient_reaches_pruned_weights():
    conv = TemporalConv(2, 2, 3)
    conv.set_mask(torch.zeros_like(conv.weight))
    x = torch.randn(4, 6, 2)
    conv(x).sum().backward()
    assert conv.weight.grad.abs().sum() == 0  # exact gradient: masked
    conv.weight.grad = None
    conv.straight_through = True
    out = conv(x)
    assert torch.allclose(out, conv.bias.expand_as(out))  # value unchanged
    out.sum().backward()
    assert conv.weight.grad.abs().sum() > 0


def test_bad_inputs_give_clear_errors():
    model = STGCN(3, 4, 'sbu', channels=(4,))
    ntu = make_batch('ntu', B=2, T=4)
    with pytest.raises(ValueError, match="layout 'sbu' has 30 nodes per graph"):
        model(ntu)
    sbu = make_batch('sbu', B=2, T=4, C=2)
    with pytest.raises(ValueError, match=r"expected 'x' of shape \[B \* 30, T, 3\]"):
        model(sbu)
    conv = TemporalConv(3, 3)
    with pytest.raises(ValueError, match='expected a mask of shape'):
        conv.set_mask(torch.ones(3, 3))
    with pytest.raises(TypeError, match='expected a bool or float mask'):
        conv.set_mask(torch.ones(conv.weight.shape, dtype=torch.long))
    with pytest.raises(ValueError, match='odd'):
        TemporalConv(3, 3, 4)
