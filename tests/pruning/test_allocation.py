"""Per-layer allocations (global, layer, ERK, LAMP) and keep_dense layers."""
import math

import pytest
import torch
from torch import nn

from tcmp_pyg.nn import prunable_weights
from tcmp_pyg.pruning import (ALLOCATIONS, METHOD_NAMES, EffectivePruning,
                              MagnitudePruning, PrunableLinear, TCMP,
                              allocation_masks, allocation_quotas,
                              budget_from_amount, connectivity, erk_densities,
                              lamp_scores, magnitude_prune, make_pruner)
from tcmp_pyg.pruning.allocation import erk_quotas, largest_remainder

from helpers import batch, sgd_step, small_attention, small_stgcn


def mlp():
    """Three linear layers of weight shapes (4, 2), (4, 4), (2, 4) with known
    weights: layer 0 holds 8, 7, ..., 1; layer 1 sixteen ones; layer 2 0.5,
    0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01 (row-major)."""
    model = nn.Sequential(PrunableLinear(2, 4), nn.ReLU(), PrunableLinear(4, 4),
                          nn.ReLU(), PrunableLinear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(8, 0, -1.0).view(4, 2))
        model[2].weight.fill_(1.0)
        model[4].weight.copy_(torch.tensor(
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01]).view(2, 4))
    return model


def masks_of(model):
    return [m.weight_mask.bool().reshape(-1) for _, m in prunable_weights(model)]


def first(n, size):
    return torch.arange(size) < n


def kept(model):
    return sum(int(m.weight_mask.sum()) for _, m in prunable_weights(model))


# -- the rules on a model with known weights -------------------------------

def test_global_keeps_the_largest_magnitudes_and_empties_the_last_layer():
    model = mlp()
    assert magnitude_prune(model, 22, scope='global') == 10
    # 8..2 from layer 0, then the value-1 ties by position: layer 0's 1 first.
    assert [int(m.sum()) for m in masks_of(model)] == [8, 2, 0]
    assert torch.equal(masks_of(model)[1], first(2, 16))


def test_layer_keeps_the_same_fraction_per_layer():
    model = mlp()
    magnitude_prune(model, 20, scope='layer')  # 12 of 32: 3/8 of each layer
    assert allocation_quotas([m.weight for _, m in prunable_weights(model)], 12,
                             'layer') == [3, 6, 3]
    assert [torch.equal(m, first(n, m.numel()))
            for m, n in zip(masks_of(model), (3, 6, 3))] == [True] * 3


def test_erk_quotas_by_hand():
    # sum(shape) = 6, 8, 6; eps = 12 / 20: 3.6, 4.8, 3.6 weights; largest
    # remainders 0.8 (layer 1) then 0.6 (layer 0, the tie to the earlier).
    assert erk_densities([(4, 2), (4, 4), (2, 4)], 12) == pytest.approx(
        [0.45, 0.3, 0.45])
    model = mlp()
    magnitude_prune(model, 20, scope='erk')
    assert [torch.equal(m, first(n, m.numel()))
            for m, n in zip(masks_of(model), (4, 5, 3))] == [True] * 3


def test_erk_caps_layers_over_one_and_rescales_the_rest():
    shapes = [(2, 1), (8, 2), (1, 8)]  # sizes 2, 16, 8; sum(shape) 3, 10, 9
    # eps = 16 / 22 would give the first layer density 1.09: dense, and
    # eps = 14 / 19 over the other two.
    dens = erk_densities(shapes, 16)
    assert dens == pytest.approx([1.0, 14 / 19 * 10 / 16, 14 / 19 * 9 / 8])
    assert erk_quotas(shapes, 16) == [2, 7, 7]  # 7.37, 6.63 rounded
    # Capping one layer may push another over 1: iterate until none is.
    # eps = 41 / 28 caps layer 0 (2.93) but not layer 1 (0.976); then
    # eps = 40 / 26 gives layer 1 1.026: dense too; eps = 31 / 20 for the last.
    shapes = [(1, 1), (3, 3), (10, 10)]
    dens = erk_densities(shapes, 41)
    assert dens == pytest.approx([1.0, 1.0, 31 / 20 * 20 / 100])
    assert sum(d * math.prod(s) for d, s in zip(dens, shapes)) == pytest.approx(41)
    assert erk_quotas(shapes, 41) == [1, 9, 31]
    assert erk_densities(shapes, 110) == [1.0, 1.0, 1.0]


def test_lamp_scores_by_hand():
    (s0, s1, s2) = lamp_scores([torch.arange(8, 0, -1.0), torch.ones(16),
                                torch.tensor([0.5, 0.4, 0.3, 0.2, 0.1, 0.05,
                                              0.02, 0.01])])
    sq = torch.arange(8, 0, -1.0, dtype=torch.float64) ** 2
    assert torch.allclose(s0, sq / sq.cumsum(0))  # w_u^2 / sum over w_v >= w_u
    assert s0[0] == 1.0 and s0[1] == pytest.approx(49 / 113)
    # Equal magnitudes: ranked by position, so the score falls with it.
    assert torch.allclose(s1, 1.0 / torch.arange(1, 17, dtype=torch.float64))
    assert s2[2] == pytest.approx(0.09 / 0.5)
    assert torch.equal(lamp_scores([torch.zeros(3)])[0], torch.zeros(3, dtype=torch.float64))


def test_lamp_keeps_every_layer_where_global_empties_one():
    # LAMP scores: 1 (x3), 1/2, 49/113, 0.16/0.41, 1/3, 1/4, 36/149, 1/5 are
    # the ten best: 3, 5 and 2 weights, each layer's largest magnitudes.
    model = mlp()
    magnitude_prune(model, 22, scope='lamp')
    assert [torch.equal(m, first(n, m.numel()))
            for m, n in zip(masks_of(model), (3, 5, 2))] == [True] * 3


# -- exactness and determinism over random models and budgets ---------------

@pytest.mark.parametrize('allocation', ALLOCATIONS)
def test_quotas_are_exact_over_random_shapes_and_budgets(allocation):
    gen = torch.Generator().manual_seed(0)
    for trial in range(40):
        n = int(torch.randint(1, 6, (1,), generator=gen))
        shapes = [tuple(int(d) for d in torch.randint(1, 7, (int(torch.randint(
            1, 4, (1,), generator=gen)),), generator=gen)) for _ in range(n)]
        scores = [torch.rand(s, generator=gen) for s in shapes]
        total = sum(s.numel() for s in scores)
        dense = [bool(torch.rand(1, generator=gen) < 0.3) for _ in range(n)]
        need = sum(s.numel() for s, d in zip(scores, dense) if d)
        budget = int(torch.randint(need, total + 1, (1,), generator=gen))
        quotas = allocation_quotas(scores, budget, allocation, dense)
        assert sum(quotas) == budget, (trial, shapes, budget)
        assert all(0 <= q <= s.numel() for q, s in zip(quotas, scores))
        assert all(q == s.numel() for q, s, d in zip(quotas, scores, dense) if d)
        masks = allocation_masks(scores, budget, allocation, dense)
        assert [int(m.sum()) for m in masks] == quotas
        for s, m in zip(scores, masks):  # each layer keeps its largest scores
            if 0 < int(m.sum()) < m.numel():
                assert s[m].min() >= s[~m].max()


@pytest.mark.parametrize('allocation', ALLOCATIONS)
@pytest.mark.parametrize('make,amount', [(small_stgcn, 0.9), (small_stgcn, 0.99),
                                         (small_attention, 0.95), (small_stgcn, 500)])
def test_magnitude_prune_exact_and_deterministic(allocation, make, amount):
    model = make()
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    assert magnitude_prune(model, amount, scope=allocation) == kept(model) == \
        budget_from_amount(amount, total)
    again = make()
    magnitude_prune(again, amount, scope=allocation)
    assert all(torch.equal(a, b) for a, b in zip(masks_of(model), masks_of(again)))


def test_ties_are_broken_by_position():
    scores = [torch.ones(6), torch.ones(4)]
    for allocation in ALLOCATIONS:
        masks = allocation_masks(scores, 5, allocation)
        quotas = [int(m.sum()) for m in masks]
        assert all(torch.equal(m, first(q, m.numel())) for m, q in zip(masks, quotas))
    assert allocation_quotas(scores, 5, 'global') == [5, 0]
    assert allocation_quotas(scores, 5, 'layer') == [3, 2]  # 3.0, 2.0
    assert allocation_quotas(scores, 3, 'layer') == [2, 1]  # 1.8, 1.2


def test_largest_remainder():
    assert largest_remainder([1.5, 1.5, 1.0], 4, [9, 9, 9]) == [2, 1, 1]
    assert largest_remainder([2.9, 0.1], 3, [2, 5]) == [2, 1]  # capped
    with pytest.raises(ValueError, match='capped'):
        largest_remainder([1.0, 1.0], 5, [2, 2])


# -- gradual methods -------------------------------------------------------

def test_methods_are_registered():
    for name in ('mp-layer', 'mp-erk', 'mp-lamp'):
        assert name in METHOD_NAMES
    pruners = {name: make_pruner(name, small_stgcn(), 0.9)
               for name in ('mp', 'mp-layer', 'mp-erk', 'mp-lamp')}
    assert {n: p.allocation for n, p in pruners.items()} == {
        'mp': 'global', 'mp-layer': 'layer', 'mp-erk': 'erk', 'mp-lamp': 'lamp'}
    assert repr(pruners['mp']) == 'MagnitudePruning(amount=0.9, budget=106/1062)'
    assert repr(pruners['mp-lamp']) == (
        "MagnitudePruning(allocation='lamp', amount=0.9, budget=106/1062)")


@pytest.mark.parametrize('allocation', ALLOCATIONS)
def test_gradual_pruning_with_an_allocation_meets_the_schedule(allocation):
    model = small_stgcn((8, 8))
    pruner = MagnitudePruning(model, 0.95, allocation=allocation, start=0.2,
                              end=0.6)
    pruner.setup(10)
    for step in range(10):
        pruner.step(step)
        assert kept(model) == (pruner.kept_at(step) if step >= 2 else pruner.total)
    pruner.finalize()
    assert pruner.frozen and kept(model) == pruner.budget
    one_shot = small_stgcn((8, 8))  # same weights: the final update is one-shot
    magnitude_prune(one_shot, 0.95, scope=allocation)
    assert all(torch.equal(a, b) for a, b in zip(masks_of(model), masks_of(one_shot)))


def test_allocation_errors():
    with pytest.raises(ValueError, match=r"'allocation' to be one of .*'lamp'"):
        MagnitudePruning(small_stgcn(), 0.9, allocation='uniform')
    with pytest.raises(ValueError, match=r"'scope' to be one of"):
        magnitude_prune(small_stgcn(), 0.9, scope='uniform')
    with pytest.raises(ValueError, match="ranks all layers together"):
        EffectivePruning(small_stgcn(), 0.9, allocation='lamp')


# -- keep_dense --------------------------------------------------------------

def test_keep_dense_inside_the_budget_by_hand():
    model = mlp()
    # 12 kept: the last layer's 8, then 'layer' shares 4 over 8 and 16.
    assert magnitude_prune(model, 20, scope='layer', keep_dense=['4']) == 12
    assert [torch.equal(m, first(n, m.numel()))
            for m, n in zip(masks_of(model), (1, 3, 8))] == [True] * 3
    for allocation in ALLOCATIONS:
        model = mlp()
        magnitude_prune(model, 20, scope=allocation, keep_dense='4')
        assert bool(masks_of(model)[2].all()) and kept(model) == 12


@pytest.mark.parametrize('method', ['mp', 'mp-layer', 'mp-erk', 'mp-lamp', 'random'])
@pytest.mark.parametrize('amount', [0.9, 0.93])
def test_keep_dense_in_gradual_methods(method, amount):
    model = small_stgcn()
    pruner = make_pruner(method, model, amount, start=0.0, end=0.5,
                         keep_dense=['fc', 'blocks.0.gcn'])
    pruner.setup(10)
    for step in range(10):
        pruner.step(step)
        assert bool(model.fc.weight_mask.all())
        assert bool(model.blocks[0].gcn.weight_mask.all())
        assert kept(model) == pruner.kept_at(step)
    assert kept(model) == pruner.budget
    assert "keep_dense=['fc', 'blocks.0.gcn']" in repr(pruner)


@pytest.mark.parametrize('method,mode', [('mp-effective', 'hard'), ('tcmp', 'hard'),
                                         ('tcmp', 'relaxed')])
def test_keep_dense_in_consistent_methods(method, mode):
    # Consistent selections keep every live weight of the dense layer first.
    model = small_stgcn()
    pruner = make_pruner(method, model, 0.9, tcmp_mode=mode, start=0.0, end=0.6,
                         keep_dense=['fc'])
    pruner.setup(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = batch()
    for step in range(10):
        pruner.step(step)
        sgd_step(model, data, pruner, opt)
    pruner.finalize()
    report = connectivity(model)
    assert report.is_consistent and report.live == report.kept == pruner.budget
    # Every logit is co-accessible, so a live input channel of fc makes its
    # whole column live: columns are kept whole or not at all (dead input).
    fc = model.fc.weight_mask.bool()  # [classes, channels]
    assert bool((fc.all(0) | ~fc.any(0)).all()) and int(fc.sum()) >= 3 * 5
    plain = make_pruner(method, small_stgcn(), 0.9, tcmp_mode=mode)
    plain.setup(1)
    plain.finalize()
    assert int(plain.model.fc.weight_mask.sum()) < int(fc.sum())


def test_keep_dense_errors():
    with pytest.raises(ValueError, match=r"STGCN has no prunable layer named "
                       r"'classifier'; its prunable layers are: blocks.0.gcn, "
                       r"blocks.0.tcn, .*, fc$"):
        MagnitudePruning(small_stgcn(), 0.9, keep_dense=['classifier'])
    with pytest.raises(ValueError, match="no prunable layer named 'fc'"):
        magnitude_prune(mlp(), 0.5, keep_dense=['fc'])
    # The last layer's 8 weights do not fit in 6 of 32.
    with pytest.raises(ValueError, match=r"keep_dense=\['4'\] keeps 8 weights, but "
                       r"amount=26 keeps only 6 of 32: .* Keep at least 8 weights "
                       r"\(amount <= 0.75, or an int amount <= 24\)"):
        magnitude_prune(mlp(), 26, keep_dense=['4'])
    with pytest.raises(ValueError, match='amount <= 0.971751'):
        TCMP(small_stgcn(), 0.99, keep_dense=['fc'])  # 30 of 1062
    TCMP(small_stgcn(), 0.971, keep_dense=['fc'])  # 31 kept: fits
