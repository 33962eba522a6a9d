"""TrajectoryGCN (the `sahbi-gcn` preset) against a loop-by-loop reference."""
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn import TrajectoryGCN, build_model, model_from_config
from tcmp_pyg.pruning import TCMP, connectivity

pytestmark = pytest.mark.usefixtures('one_thread')


def sequences(layout='sbu', B=3, T=6, C=3, seed=0) -> Batch:
    layout = get_layout(layout)
    g = torch.Generator().manual_seed(seed)
    return Batch.from_data_list([
        Data(x=torch.randn(layout.num_nodes, T, C, generator=g),
             edge_index=layout.edge_index(), y=torch.tensor([b % 2]))
        for b in range(B)])


def reference(model: TrajectoryGCN, batch: Batch) -> torch.Tensor:
    """The model's eval-mode output written node by node and head by head."""
    B, V = batch.num_graphs, model.layout.num_nodes
    T, C = batch.x.size(1), batch.x.size(2)
    x = batch.x.view(B, V, T, C)
    bn = model.data_bn
    mean = bn.running_mean.view(V, C)
    std = (bn.running_var + bn.eps).sqrt().view(V, C)
    x = (x - mean[:, None]) / std[:, None] * bn.weight.view(V, C)[:, None] + \
        bn.bias.view(V, C)[:, None]
    if model.tcn is None:
        h = x.reshape(B, V, T * C)
    else:  # a Conv1d over frames per node, then (frame, channel) features
        tcn = model.tcn
        z = F.conv1d(x.reshape(B * V, T, C).transpose(1, 2),
                     tcn.weight * tcn.weight_mask, tcn.bias, stride=tcn.stride,
                     padding=tcn.kernel_size // 2).transpose(1, 2)
        bn = model.tcn_bn
        z = F.relu((z - bn.running_mean) / (bn.running_var + bn.eps).sqrt()
                   * bn.weight + bn.bias)
        h = z.reshape(B, V, -1)
    for block in model.blocks:
        W = block.conv.weight * block.conv.weight_mask  # [H * c, in]
        W = W.reshape(W.size(0), -1)  # a frame axis is flattened frame-major
        out = torch.zeros(B, V, block.heads * block.channels)
        for k in range(block.heads):
            A = torch.softmax(block.attention[k], dim=-1)
            rows = slice(k * block.channels, (k + 1) * block.channels)
            for i in range(V):
                out[:, i, rows] = sum(A[i, j] * h[:, j] @ W[rows].t()
                                      for j in range(V))
        out = out + block.bias
        out = F.batch_norm(out.reshape(-1, out.size(-1)), block.bn.running_mean,
                           block.bn.running_var, block.bn.weight, block.bn.bias,
                           False, 0.0, block.bn.eps).view_as(out)
        h = F.relu(out)
    w_fc = (model.fc.weight * model.fc.weight_mask).reshape(model.hidden_channels, -1)
    z = F.relu(h.reshape(B, -1) @ w_fc.t() + model.fc.bias)
    w = model.classifier.weight * model.classifier.weight_mask
    return z @ w.t() + model.classifier.bias


def trained_a_little(model, batch):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):  # non-trivial BatchNorm statistics and weights
        loss = F.cross_entropy(model(batch), batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_matches_the_reference_and_shapes():
    torch.manual_seed(0)
    model = TrajectoryGCN(3, 5, 'sbu', num_frames=6, channels=(4, 3), heads=2,
                          hidden_channels=7)
    batch = sequences()
    trained_a_little(model, batch)
    out = model(batch)
    assert out.shape == (3, 5)
    assert torch.allclose(out, reference(model, batch), atol=1e-5)
    assert repr(model) == "TrajectoryGCN(3, 5, layout='sbu', blocks=2, heads=2)"
    assert repr(model.blocks[0]) == 'AttentionBlock(18, 8, heads=2)'


def test_batch_of_one_sequence():
    model = TrajectoryGCN(3, 5, 'sbu', num_frames=6, channels=(4, 3), heads=2,
                          hidden_channels=7).eval()
    batch = sequences()
    one = Batch.from_data_list([batch[0]])
    assert torch.allclose(model(one), model(batch)[:1], atol=1e-5)


def test_temporal_front_end_matches_the_reference():
    torch.manual_seed(1)
    model = TrajectoryGCN(3, 5, 'sbu', num_frames=7, channels=(4,), heads=2,
                          hidden_channels=6, temporal_channels=5,
                          temporal_kernel=3, temporal_stride=2)
    batch = sequences(T=7)
    trained_a_little(model, batch)
    assert model.blocks[0].conv.weight.shape == (8, 4, 5)  # 4 = ceil(7 / 2)
    assert torch.allclose(model(batch), reference(model, batch), atol=1e-5)
    names = [layer.name for layer in connectivity(model).layers]
    assert names == ['tcn', 'blocks.0.conv', 'fc', 'classifier']
    rebuilt = model_from_config('TrajectoryGCN', model.config())
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.eval()(batch), model(batch))


def test_mean_pooling_has_a_small_classifier_head():
    model = TrajectoryGCN(3, 5, 'sbu', num_frames=6, channels=(4,), heads=2,
                          hidden_channels=6, pool='mean')
    assert model.fc.weight.shape == (6, 8)
    batch = sequences()
    model.eval()
    seen = {}
    model.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(h=o))
    out = model(batch)
    pooled = seen['h'].mean(dim=1)  # [B, V, 8] -> [B, 8]
    expected = model.classifier(F.relu(model.fc(pooled)))
    assert out.shape == (3, 5) and torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="'pool' to be 'flatten' or 'mean'"):
        TrajectoryGCN(3, 5, 'sbu', pool='max')


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = TrajectoryGCN(3, 4, 'kinect_v1', num_frames=5)
    batch = sequences('kinect_v1', T=5)
    F.cross_entropy(model(batch), batch.y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_preset_config_round_trip_and_parameter_count():
    model = build_model('sahbi-gcn', 6, 8, 'sbu', num_frames=40)
    assert isinstance(model, TrajectoryGCN)
    assert model.channels == (8, 8, 8) and model.heads == 4
    rebuilt = model_from_config('TrajectoryGCN', model.config())
    rebuilt.load_state_dict(model.state_dict())
    batch = sequences(T=40, C=6)
    model.eval(), rebuilt.eval()
    assert torch.equal(model(batch), rebuilt(batch))
    # 6 channels -> 16 (9 taps, stride 2: 20 frames) -> 20 x 16 features ->
    # 32 -> 32 -> 32 per joint, 30 joints -> 24 -> 8.
    assert sum(p.numel() for p in model.parameters()) == (
        2 * 30 * 6 + 16 * 6 * 9 + 3 * 16 + 3 * 4 * 30 * 30 + 20 * 16 * 32
        + 2 * 32 * 32 + 3 * (3 * 32) + 30 * 32 * 24 + 24 + 24 * 8 + 8) == 47912


def test_tcmp_keeps_it_consistent_and_exact():
    torch.manual_seed(0)
    model = TrajectoryGCN(3, 4, 'kinect_v1', num_frames=5)
    pruner = TCMP(model, 0.98, start=0.0, end=0.5)
    pruner.setup(10)
    batch = sequences('kinect_v1', T=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(10):
        pruner.step(step)
        loss = F.cross_entropy(model(batch), batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pruner.finalize()
    report = connectivity(model)
    assert report.is_consistent and report.live == report.kept == pruner.budget
    assert [layer.name for layer in report.layers] == [
        'blocks.0.conv', 'blocks.1.conv', 'blocks.2.conv', 'fc', 'classifier']


def test_bad_inputs():
    model = TrajectoryGCN(3, 4, 'sbu', num_frames=6)
    with pytest.raises(ValueError, match='expected sequences of 6 frames'):
        model(sequences(T=5))
    with pytest.raises(ValueError, match='at least one block'):
        TrajectoryGCN(3, 4, 'sbu', channels=())
    with pytest.raises(ValueError, match="'num_classes' >= 1"):
        TrajectoryGCN(3, 0, 'sbu')
