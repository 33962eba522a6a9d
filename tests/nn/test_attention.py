"""AttentionPropagation: message passing over the complete graph of each
sample against the dense attention product."""
import pytest
import torch

from tcmp_pyg.nn import AttentionGCN
from tcmp_pyg.nn.conv import AttentionPropagation

pytestmark = pytest.mark.mp


@pytest.mark.parametrize('fused', [True, False])
def test_equals_the_dense_attention_product_with_gradients(fused):
    torch.manual_seed(0)
    B, V, H, C = 3, 7, 2, 4
    x = torch.randn(B * V, H, C, requires_grad=True)
    logits = torch.randn(H, V, V, requires_grad=True)
    layer = AttentionPropagation(V, H, fused=fused)
    out = layer(x, torch.softmax(logits, dim=-1))
    alpha = torch.softmax(logits, dim=-1)
    ref = torch.stack([torch.stack([alpha[h] @ x.view(B, V, H, C)[b, :, h]
                                    for h in range(H)], dim=1)
                       for b in range(B)]).reshape(B * V, H, C)
    assert out.shape == (B * V, H, C)
    assert torch.allclose(out, ref, atol=1e-6)
    g = torch.autograd.grad(out.square().sum(), (x, logits))
    r = torch.autograd.grad(ref.square().sum(), (x, logits))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g, r))
    assert repr(layer) == 'AttentionPropagation(nodes=7, heads=2)'


def test_message_passing_graph_is_every_pair_of_a_sample():
    layer = AttentionPropagation(3, 1, fused=False)
    g = layer._graph(6, torch.device('cpu'))  # two samples of three nodes
    pairs = {tuple(e) for e in g.index.t().tolist()}
    assert len(pairs) == g.index.size(1) == 2 * 9
    assert pairs == {(j, i) for s in (0, 3) for i in range(s, s + 3)
                     for j in range(s, s + 3)}
    assert layer._graph(6, torch.device('cpu')) is g  # cached


def test_attention_gcn_paths_agree():
    torch.manual_seed(0)
    model = AttentionGCN(3, 4, 'sbu', num_frames=5).eval()
    x = torch.randn(2 * 30, 5, 3)
    ei = torch.empty(2, 0, dtype=torch.long)
    fused = model.forward_tensors(x, ei, 2)
    model.propagation.fused = False
    assert torch.allclose(model.forward_tensors(x, ei, 2), fused, atol=1e-5)


def test_bad_shapes():
    layer = AttentionPropagation(3, 2)
    with pytest.raises(ValueError, match=r"expected 'x' of shape \[B \* 3, 2, C\]"):
        layer(torch.randn(4, 2, 5), torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match=r"expected 'alpha' of shape \[2, 3, 3\]"):
        layer(torch.randn(6, 2, 5), torch.rand(1, 3, 3))


def test_one_sample_gives_a_contiguous_output():
    # einsum returns a strided view for a batch of one; models reshape it.
    layer = AttentionPropagation(30, 4)
    alpha = torch.softmax(torch.randn(4, 30, 30), dim=-1)
    for B in (1, 2):
        out = layer(torch.randn(B * 30, 4, 8), alpha)
        assert out.is_contiguous() and out.shape == (B * 30, 4, 8)
