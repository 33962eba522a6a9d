"""Pruning: the connectivity analysis, magnitude baselines, TCMP, compaction."""
from tcmp_pyg.nn.prunable import prunable_weights
from tcmp_pyg.pruning.base import (PruningMethod, budget_from_amount,
                                   cubic_schedule, reset_masks)
from tcmp_pyg.pruning.connectivity import (ConnectivityReport, connectivity,
                                           gate_dead_channels, live_masks,
                                           open_gates, shortest_path_weights)
from tcmp_pyg.pruning.magnitude import (EffectivePruning, MagnitudePruning,
                                        RandomPruning, effective_correction,
                                        magnitude_prune)
from tcmp_pyg.pruning.tcmp import TCMP

__all__ = [
    'ConnectivityReport', 'EffectivePruning', 'MagnitudePruning',
    'PruningMethod', 'RandomPruning', 'TCMP', 'budget_from_amount',
    'connectivity', 'cubic_schedule', 'effective_correction',
    'gate_dead_channels', 'live_masks', 'magnitude_prune', 'open_gates',
    'prunable_weights', 'reset_masks', 'shortest_path_weights',
]
