"""torch.nn.utils.prune interop: masks made by torch, analysed and compacted here."""
from collections import deque

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from tcmp_pyg.nn import prunable_weights
from tcmp_pyg.pruning import (TCMP, PrunableConv2d, PrunableLinear, compact,
                              connectivity, from_torch_prune, magnitude_prune,
                              to_torch_prune)

from helpers import batch, brute_force, random_masks, randomize_norms, small_stgcn


def torch_prune_global(modules, amount=0.9):
    prune.global_unstructured([(m, 'weight') for m in modules],
                              pruning_method=prune.L1Unstructured, amount=amount)


def assert_matches_brute_force(model):
    report = connectivity(model)
    acc, co, live = brute_force(model)
    for v, node in enumerate(report.flow.nodes):
        for c in range(node.size):
            assert bool(report.accessible[v][c]) == ((v, c) in acc), (node.name, c)
            assert bool(report.co_accessible[v][c]) == ((v, c) in co), (node.name, c)
    assert [r.live for r in report.layers] == live
    return report


def pruned_stgcn():
    model = small_stgcn((8, 16, 16))
    randomize_norms(model)
    model.eval()
    torch_prune_global([m for _, m in prunable_weights(model)])
    return model


# -- the project's own layers --------------------------------------------------

def test_stgcn_pruned_by_torch_is_analysed_after_conversion():
    model = pruned_stgcn()
    data = batch()
    gcn = model.blocks[0].gcn
    assert 'weight_orig' in dict(gcn.named_parameters())  # torch's representation
    torch_masks = [m.weight_mask.clone() for _, m in prunable_weights(model)]
    latent = [m.weight_orig for _, m in prunable_weights(model)]
    before = model(data)

    assert from_torch_prune(model) is model
    for (_, m), mask, orig in zip(prunable_weights(model), torch_masks, latent):
        assert not m._forward_pre_hooks
        assert m.weight is orig  # the same parameter, latent values kept
        assert isinstance(m.weight, nn.Parameter)
        assert torch.equal(m.weight_mask, mask)
    assert not any(k.endswith('weight_orig') for k in model.state_dict())
    assert all(k.replace('weight_mask', 'weight') in model.state_dict()
               for k in model.state_dict() if k.endswith('weight_mask'))
    assert torch.equal(model(data), before)

    report = assert_matches_brute_force(model)
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    assert report.kept == total - round(0.9 * total)
    assert 0 < report.live < report.kept  # global MP leaves dead weights


def test_stgcn_round_trip_through_torch_prune():
    model = pruned_stgcn()
    data = batch()
    torch_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = model(data)
    from_torch_prune(model)
    ours = {k: v.clone() for k, v in model.state_dict().items()}

    to_torch_prune(model)
    assert model.state_dict().keys() == torch_state.keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, torch_state[k]), k
    assert torch.equal(model(data), before)

    # Back again: the same masks and latent weights.
    from_torch_prune(model)
    assert model.state_dict().keys() == ours.keys()
    assert all(torch.equal(v, ours[k]) for k, v in model.state_dict().items())
    assert torch.equal(model(data), before)


def test_torch_prune_combines_with_handed_over_masks():
    # The weight_mask clash: a per-layer torch method starts from all ones on a
    # layer torch has not pruned yet, replacing our mask; after to_torch_prune
    # it prunes on top of it.
    model = small_stgcn()
    random_masks(model, 0.5, seed=3)
    ours = model.fc.weight_mask.clone()
    prune.l1_unstructured(model.fc, 'weight', amount=0.25)
    assert not bool((model.fc.weight_mask <= ours).all())  # replaced

    model = small_stgcn()
    random_masks(model, 0.5, seed=3)
    to_torch_prune(model)
    prune.l1_unstructured(model.fc, 'weight', amount=0.25)
    from_torch_prune(model)
    assert bool((model.fc.weight_mask <= ours).all())  # combined
    assert model.fc.weight_mask.sum() < ours.sum()

    # global_unstructured reads an existing 'weight_mask' as its default mask.
    model = small_stgcn()
    random_masks(model, 0.5, seed=3)
    before = [m.weight_mask.clone() for _, m in prunable_weights(model)]
    torch_prune_global([m for _, m in prunable_weights(model)], amount=0.25)
    from_torch_prune(model)
    after = [m.weight_mask for _, m in prunable_weights(model)]
    assert all(bool((a <= b).all()) for a, b in zip(after, before))
    kept = sum(int(b.sum()) for b in before)
    assert sum(int(a.sum()) for a in after) == kept - round(0.25 * kept)


def test_compact_of_converted_stgcn_equals_gated_model():
    model = pruned_stgcn()
    data = batch()
    from_torch_prune(model)
    with pytest.warns(UserWarning, match='gating dead channels changed'):
        small = compact(model, example=data)  # torch's MP trained no gates
    assert torch.allclose(small(data), model(data), atol=1e-5)
    report = connectivity(small)
    assert report.is_consistent
    assert report.live == connectivity(model).live


def test_to_torch_prune_refuses_relaxed_or_training_masks():
    model = small_stgcn()
    model.fc.set_mask(torch.full_like(model.fc.weight, 0.5))
    with pytest.raises(ValueError, match="mask of 'fc' is relaxed"):
        to_torch_prune(model)
    model = small_stgcn()
    pruner = TCMP(model, 0.5)
    pruner.setup(100)  # routes gradients straight through the masks
    with pytest.raises(ValueError, match='straight through'):
        to_torch_prune(model)


# -- plain torch models ----------------------------------------------------------

def chain_brute_force(layers, spreads):
    """BFS over the explicit neuron graph of a chain of weighted layers.

    ``layers[l]`` is a mask ``[out, in, *kernel]``; ``spreads[l]`` the number
    of input units of layer ``l`` per output unit of layer ``l - 1`` (a
    Flatten after a convolution), 1 otherwise. Returns the accessible and
    co-accessible ``('in' | 'out', layer, unit)`` and live entries per layer.
    """
    succ, pred = {}, {}

    def link(a, b):
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)

    entries = []
    for l, mask in enumerate(layers):
        kept = [(i[1], i[0]) for i in (mask != 0).nonzero().tolist()]
        for i, o in kept:
            link(('in', l, i), ('out', l, o))
        entries.append(kept)
        if l:
            S = spreads[l]
            for c in range(layers[l - 1].size(0)):
                for f in range(c * S, c * S + S):
                    link(('out', l - 1, c), ('in', l, f))

    def bfs(starts, nbrs):
        seen, queue = set(starts), deque(starts)
        while queue:
            for u in nbrs.get(queue.popleft(), ()):
                if u not in seen:
                    seen.add(u)
                    queue.append(u)
        return seen

    L = len(layers)
    acc = bfs([('in', 0, i) for i in range(layers[0].size(1))], succ)
    co = bfs([('out', L - 1, o) for o in range(layers[-1].size(0))], pred)
    live = [sum(('in', l, i) in acc and ('out', l, o) in co for i, o in kept)
            for l, kept in enumerate(entries)]
    return acc, co, live


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16),
                         nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, 4)).eval()


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6),
                         nn.ReLU(), nn.MaxPool2d(2),
                         nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.ReLU()),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.ReLU(),
                         nn.Linear(12, 4), nn.LogSoftmax(dim=1)).eval()


def weighted(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def prune_mlp(model):
    torch_prune_global(weighted(model), amount=0.9)


def prune_cnn(model):
    # Global L1 at 90 % cuts the wide Linear entirely; per-layer random
    # amounts leave dead channels in every kind of layer.
    torch.manual_seed(0)
    for layer, amount in zip(weighted(model), [0.9, 0.97, 0.9, 0.5]):
        prune.random_unstructured(layer, 'weight', amount=amount)


@pytest.mark.parametrize('convert', [False, True])
@pytest.mark.parametrize('make, prune_, spreads, x', [
    (mlp, prune_mlp, [1, 1, 1], torch.randn(5, 16)),
    (cnn, prune_cnn, [1, 1, 16, 1], torch.randn(5, 3, 8, 8)),
])
def test_plain_sequential_matches_brute_force(make, prune_, spreads, x, convert):
    model = make()
    prune_(model)
    masks = [m.weight_mask.clone() for m in weighted(model)]
    before = model(x)
    model = from_torch_prune(model, convert=convert)
    assert all(isinstance(m, (PrunableLinear, PrunableConv2d)) == convert
               for m in weighted(model))
    assert torch.allclose(model(x), before, atol=1e-6)

    report = connectivity(model)
    acc, co, live = chain_brute_force(masks, spreads)
    assert [r.live for r in report.layers] == live
    assert [r.kept for r in report.layers] == [int(m.sum()) for m in masks]
    assert 0 < report.live < report.kept
    assert report.layers[0].name == '0'
    nodes = report.flow.nodes
    assert len(nodes) == len(masks) + 1
    for v in range(1, len(nodes)):  # the output channels of each layer
        for c in range(nodes[v].size):
            assert bool(report.accessible[v][c]) == (('out', v - 1, c) in acc)
            assert bool(report.co_accessible[v][c]) == (('out', v - 1, c) in co)
    for i in range(nodes[0].size):
        assert bool(report.co_accessible[0][i]) == (('in', 0, i) in co)


def test_converted_sequential_round_trips_and_prunes_here():
    model = cnn()
    x = torch.randn(4, 3, 8, 8)
    torch_prune_global(weighted(model), amount=0.8)
    torch_state = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(x)

    model = to_torch_prune(from_torch_prune(model, convert=True))
    assert [type(m) for m in weighted(model)] == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]
    assert model.state_dict().keys() == torch_state.keys()
    assert all(torch.equal(v, torch_state[k]) for k, v in model.state_dict().items())
    assert torch.allclose(model(x), out, atol=1e-6)

    # Converted layers are prunable layers: TCMP works on them, and torch gets
    # the result back.
    model = from_torch_prune(model, convert=True)
    pruner = TCMP(model, 0.95)
    pruner.update(pruner.budget, final=True)
    report = connectivity(model)
    assert report.is_consistent and report.live == pruner.budget
    model = to_torch_prune(model)
    assert sum(int(m.weight_mask.sum()) for m in weighted(model)) == pruner.budget
    assert all(prune.is_pruned(m) for m in weighted(model))


def test_converted_state_dict_loads_into_a_fresh_converted_model():
    model = cnn()
    prune_cnn(model)
    model = from_torch_prune(model, convert=True)
    fresh = from_torch_prune(cnn(seed=1), convert=True)  # unpruned: ones masks
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fresh(x), model(x))
    # An unpruned plain model has the same keys minus the masks.
    plain_keys = set(cnn().state_dict())
    assert set(model.state_dict()) - plain_keys == {
        f'{name}.weight_mask' for name in ('0', '4.0', '6', '8')}


def test_plain_layers_are_read_only_to_this_toolkit():
    model = mlp()
    torch_prune_global(weighted(model))
    with pytest.raises(TypeError, match='convert=True'):
        magnitude_prune(model, 0.95)
    assert connectivity(mlp()).live == sum(m.weight.numel() for m in weighted(mlp()))


@pytest.mark.parametrize('model, match', [
    (nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)), r"'1' \(LSTM\) has no known channel map"),
    (nn.Sequential(nn.Conv1d(4, 4, 3, groups=2)), 'grouped convolution'),
    (nn.Sequential(nn.Conv1d(2, 4, 3), nn.Linear(6, 2)), 'put a Flatten'),
    (nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)), 'no known channel map'),
    (nn.Sequential(nn.Linear(4, 4), nn.Softmax(-1), nn.Linear(4, 2)), 'only a final Softmax'),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2)), 'not a multiple'),
    (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(5)), 'normalises 5 channels'),
    (nn.Sequential(nn.Linear(4, 4), nn.Flatten(0)), 'flattens other axes'),
])
def test_unsupported_sequentials_are_refused(model, match):
    with pytest.raises(TypeError, match='does not declare how channels flow'):
        connectivity(model)
    with pytest.raises(TypeError, match=match):
        connectivity(model)


def test_other_models_keep_the_existing_errors():
    with pytest.raises(ValueError, match='no prunable weight'):
        connectivity(nn.Sequential(nn.ReLU()))

    class MySequential(nn.Sequential):  # may change forward(): not analysed
        pass

    with pytest.raises(TypeError, match="no 'channel_flow\\(\\)' method"):
        connectivity(MySequential(nn.Linear(2, 2)))


def test_from_torch_prune_refuses_what_it_cannot_read():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    prune.l1_unstructured(model[0], 'weight', amount=0.5)
    with pytest.raises(TypeError, match=r"'0' \(Embedding\).*channel axes are unknown"):
        from_torch_prune(model)

    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    prune.l1_unstructured(model[1], 'bias', amount=0.5)
    with pytest.raises(ValueError, match=r"mask on 'bias'.*prune.remove"):
        from_torch_prune(model)
