import math

import pytest
import torch
from torch import nn

from tcmp_pyg.datasets.splits import dataset_splits
from tcmp_pyg.nn import STGCN, FlowModel, Linear, prunable_weights
from tcmp_pyg.nn.prunable import ChannelFlow
from tcmp_pyg.pruning import (SynFlow, budget_from_amount, connectivity,
                              magnitude_prune, make_pruner, synflow_masks,
                              synflow_scores)
from tcmp_pyg.pruning.connectivity import flow_layers
from tcmp_pyg.train import TrainConfig, train

from helpers import small_attention, small_stgcn


def kept(model):
    return sum(int(m.weight_mask.sum()) for _, m in prunable_weights(model))


def masks_of(model):
    return [m.weight_mask.clone() for _, m in prunable_weights(model)]


def chain(sizes, seed=0, bias=False):
    """A plain nn.Sequential of prunable Linear layers with ReLUs (automatic
    channel flow)."""
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [Linear(a, b, bias=bias), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def autograd_synflow(model, in_features):
    """True SynFlow scores (Tanaka et al.): the network itself with |w| (and
    the masks) and an all-ones input, R = sum of the outputs, S = |w dR/dw|."""
    saved = [(m, m.weight.data.clone()) for _, m in prunable_weights(model)]
    for m, w in saved:
        m.weight.data = w.abs()
        m.weight.grad = None
    model(torch.ones(1, in_features, dtype=torch.float64)).sum().backward()
    scores = [(m.weight.grad * m.weight).detach().abs() for m, _ in saved]
    for m, w in saved:
        m.weight.data = w
    return scores


def test_channel_graph_scores_equal_autograd_through_a_linear_chain():
    model = chain([6, 9, 7, 4]).double()
    gen = torch.Generator().manual_seed(1)
    for _, m in prunable_weights(model):  # masked entries score zero
        m.set_mask(torch.rand(m.weight.shape, generator=gen) < 0.7)
    expected = autograd_synflow(model, 6)
    got = synflow_scores(model)
    assert [g.dtype for g in got] == [torch.float64] * 3
    for g, e, (_, m) in zip(got, expected, prunable_weights(model)):
        assert g.shape == m.weight.shape
        assert torch.allclose(g, e, rtol=1e-10, atol=0)
        assert bool((g[m.weight_mask == 0] == 0).all())
    logs = synflow_scores(model, log=True)
    assert all(torch.allclose(lg.exp(), g) for lg, g in zip(logs, got))


class Residual(FlowModel):
    """x -> a = A x; b = x + a (identity residual); out = B b."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.a = Linear(4, 4, bias=False)
        self.b = Linear(4, 3, bias=False)

    def forward(self, x):
        return self.b(x + self.a(x))

    def channel_flow(self):
        flow = ChannelFlow()
        x = flow.input('input', 4)
        a = flow.layer(x, self.a, 'a')
        flow.set_output(flow.layer(flow.add([x, a], 'sum'), self.b, 'b'))
        return flow


def test_identity_edges_carry_flow_one_to_one_and_merges_add():
    model = Residual().double()
    expected = autograd_synflow(model, 4)
    for g, e in zip(synflow_scores(model), expected):
        assert torch.allclose(g, e, rtol=1e-10, atol=0)


def test_scores_and_masks_survive_a_flow_beyond_the_float64_range():
    # 40 layers of |w| ~ 1e29 (x 16 inputs): the flow is ~1e1200.
    small = chain([16] * 41, seed=2)
    big = chain([16] * 41, seed=2)
    for _, m in prunable_weights(big):
        m.weight.data *= 1e30
    logs = synflow_scores(big, log=True)
    assert all(bool(torch.isfinite(s).all()) for s in logs)
    assert float(logs[0].max()) > 2000  # float64 ends at e^709.8
    # Scaling a layer of a chain scales every score alike: same masks.
    flow_s, layers_s = flow_layers(small)
    flow_b, layers_b = flow_layers(big)
    a = synflow_masks(flow_s, layers_s, 800, iterations=20)
    b = synflow_masks(flow_b, layers_b, 800, iterations=20)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize('model_fn', [small_stgcn, small_attention])
@pytest.mark.parametrize('amount', [0.5, 0.9, 0.99, 700])
def test_exact_budget(model_fn, amount):
    model = model_fn()
    pruner = SynFlow(model, amount, iterations=20)
    pruner.setup(100)
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    assert kept(model) == pruner.budget == budget_from_amount(amount, total)
    assert pruner.frozen and pruner.updates == 20


def test_deterministic():
    runs = []
    for _ in range(2):
        model = small_stgcn((8, 16, 16))
        make_pruner('synflow', model, 0.95, synflow_iterations=30).setup(10)
        runs.append(masks_of(model))
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    other = small_stgcn((8, 16, 16), seed=1)  # another initialisation
    make_pruner('synflow', other, 0.95, synflow_iterations=30).setup(10)
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], masks_of(other)))


def test_keeps_a_path_through_a_layer_global_magnitude_empties():
    def model():
        net = chain([10, 20, 20, 20, 5], seed=4, bias=True)
        net[2].weight.data *= 1e-3  # BatchNorm-like arbitrary scale
        return net

    mp = model()
    magnitude_prune(mp, 0.9)
    report = connectivity(mp)
    assert [r.kept for r in report.layers][1] == 0 and report.disconnected

    sf = model()
    SynFlow(sf, 0.9).setup(1)
    report = connectivity(sf)
    assert report.kept == 110 and not report.disconnected
    assert all(r.live > 0 for r in report.layers)
    assert report.layers[-1].both == 5  # every class output still reached


def test_iterations_are_validated():
    with pytest.raises(ValueError, match="'iterations' to be an int >= 1 "
                                         r"\(got 0\)"):
        SynFlow(small_stgcn(), 0.9, iterations=0)


def test_masks_are_set_before_the_first_step_and_frozen_during_training(tmp_path):
    splits = dataset_splits('synthetic', str(tmp_path), num_samples=40,
                            num_classes=3, num_frames=8, layout='kinect_v1')

    def model():
        torch.manual_seed(0)
        return STGCN(6, 3, 'kinect_v1', channels=(8, 8))

    expected = model()
    SynFlow(expected, 0.9, iterations=50).setup(1)  # on the initial weights
    trained = model()
    initial = [m.weight.detach().clone() for _, m in prunable_weights(trained)]
    pruner = make_pruner('synflow', trained, 0.9, synflow_iterations=50)
    assert repr(pruner).startswith('SynFlow(amount=0.9, iterations=50, budget=')
    train(trained, *splits, TrainConfig(epochs=2, batch_size=8, lr=0.05,
                                        progress=False), pruner=pruner)
    assert all(torch.equal(a, b) for a, b in
               zip(masks_of(expected), masks_of(trained)))
    assert all(not m.straight_through for _, m in prunable_weights(trained))
    moved = [m.weight.detach() for _, m in prunable_weights(trained)]
    assert any(not torch.equal(a, b) for a, b in zip(initial, moved))
    assert not math.isnan(float(moved[0].sum()))
