"""Pruning: the connectivity analysis, magnitude baselines, TCMP, compaction."""
from typing import Sequence

from tcmp_pyg.nn.prunable import prunable_weights
from tcmp_pyg.pruning.allocation import (ALLOCATIONS, allocation_masks,
                                         allocation_quotas, erk_densities,
                                         lamp_scores)
from tcmp_pyg.pruning.base import (PruningMethod, budget_from_amount,
                                   cubic_schedule, reset_masks)
from tcmp_pyg.pruning.connectivity import (ConnectivityReport, connectivity,
                                           coverage_weights,
                                           gate_dead_channels, live_masks,
                                           open_gates, shortest_path_weights)
from tcmp_pyg.pruning.magnitude import (EffectivePruning, MagnitudePruning,
                                        RandomPruning, effective_correction,
                                        magnitude_prune)
from tcmp_pyg.pruning.compact import compact, count_macs, count_parameters
from tcmp_pyg.pruning.synflow import SynFlow, synflow_masks, synflow_scores
from tcmp_pyg.pruning.tcmp import TCMP
from tcmp_pyg.pruning.structured import ChannelPruning, channel_units
from tcmp_pyg.pruning.connectivity import LayerView, channel_flow_of
from tcmp_pyg.pruning.torch_prune import (PrunableConv1d, PrunableConv2d,
                                          PrunableConv3d, PrunableLinear,
                                          from_torch_prune, to_torch_prune)

__all__ = [
    'ALLOCATIONS', 'METHOD_NAMES', 'allocation_masks', 'allocation_quotas',
    'compact', 'erk_densities', 'lamp_scores',
    'count_macs', 'count_parameters', 'ConnectivityReport', 'EffectivePruning', 'make_pruner', 'MagnitudePruning',
    'PruningMethod', 'RandomPruning', 'TCMP', 'budget_from_amount',
    'connectivity', 'cubic_schedule', 'effective_correction',
    'gate_dead_channels', 'live_masks', 'magnitude_prune', 'open_gates',
    'prunable_weights', 'reset_masks', 'shortest_path_weights',
    'coverage_weights',
    'LayerView', 'channel_flow_of', 'PrunableConv1d', 'PrunableConv2d',
    'PrunableConv3d', 'PrunableLinear', 'from_torch_prune', 'to_torch_prune',
    'SynFlow', 'synflow_masks', 'synflow_scores', 'ChannelPruning',
    'channel_units',
]

METHOD_NAMES = ('mp', 'random', 'mp-effective', 'tcmp', 'mp-layer', 'mp-erk',
                'mp-lamp', 'synflow', 'channel')
# Gradual magnitude pruning under each allocation (tcmp_pyg.pruning.allocation).
_MP_ALLOCATIONS = {'mp': 'global', 'mp-layer': 'layer', 'mp-erk': 'erk',
                   'mp-lamp': 'lamp'}


def make_pruner(name: str, model, amount, *, tcmp_mode: str = 'hard',
                start: float = 0.1, end: float = 0.6, update_every: int = 1,
                seed: int = 0, keep_dense: Sequence[str] = (),
                synflow_iterations: int = 100,
                tcmp_channel_focus: float = 0.0) -> PruningMethod:
    """Builds the pruning method called ``name`` (CLI and sweep names);
    ``keep_dense`` names layers that keep every weight inside the budget,
    ``tcmp_channel_focus`` is TCMP's ``channel_focus``."""
    schedule = dict(start=start, end=end, update_every=update_every,
                    keep_dense=keep_dense)
    if name in _MP_ALLOCATIONS:
        return MagnitudePruning(model, amount, allocation=_MP_ALLOCATIONS[name],
                                **schedule)
    if name == 'random':
        return RandomPruning(model, amount, seed=seed, **schedule)
    if name == 'mp-effective':
        return EffectivePruning(model, amount, **schedule)
    if name == 'tcmp':
        return TCMP(model, amount, mode=tcmp_mode,
                    channel_focus=tcmp_channel_focus, **schedule)
    if name == 'synflow':  # pruned at initialisation: no schedule
        return SynFlow(model, amount, iterations=synflow_iterations,
                       keep_dense=keep_dense)
    if name == 'channel':
        return ChannelPruning(model, amount, **schedule)
    raise ValueError(f"Unknown pruning method '{name}' (expected one of "
                     f"{METHOD_NAMES})")
