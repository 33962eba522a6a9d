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
from tcmp_pyg.pruning.compact import compact, count_macs, count_parameters
from tcmp_pyg.pruning.tcmp import TCMP
from tcmp_pyg.pruning.structured import ChannelPruning, channel_units
from tcmp_pyg.pruning.connectivity import LayerView, channel_flow_of
from tcmp_pyg.pruning.torch_prune import (PrunableConv1d, PrunableConv2d,
                                          PrunableConv3d, PrunableLinear,
                                          from_torch_prune, to_torch_prune)

__all__ = [
    'METHOD_NAMES', 'compact',
    'count_macs', 'count_parameters', 'ConnectivityReport', 'EffectivePruning', 'make_pruner', 'MagnitudePruning',
    'PruningMethod', 'RandomPruning', 'TCMP', 'budget_from_amount',
    'connectivity', 'cubic_schedule', 'effective_correction',
    'gate_dead_channels', 'live_masks', 'magnitude_prune', 'open_gates',
    'prunable_weights', 'reset_masks', 'shortest_path_weights',
    'LayerView', 'channel_flow_of', 'PrunableConv1d', 'PrunableConv2d',
    'PrunableConv3d', 'PrunableLinear', 'from_torch_prune', 'to_torch_prune',
    'ChannelPruning', 'channel_units',
]

METHOD_NAMES = ('mp', 'random', 'mp-effective', 'tcmp', 'channel')


def make_pruner(name: str, model, amount, *, tcmp_mode: str = 'hard',
                start: float = 0.1, end: float = 0.6, update_every: int = 1,
                seed: int = 0) -> PruningMethod:
    """Builds the pruning method called ``name`` (CLI and sweep names)."""
    schedule = dict(start=start, end=end, update_every=update_every)
    if name == 'mp':
        return MagnitudePruning(model, amount, **schedule)
    if name == 'random':
        return RandomPruning(model, amount, seed=seed, **schedule)
    if name == 'mp-effective':
        return EffectivePruning(model, amount, **schedule)
    if name == 'tcmp':
        return TCMP(model, amount, mode=tcmp_mode, **schedule)
    if name == 'channel':
        return ChannelPruning(model, amount, **schedule)
    raise ValueError(f"Unknown pruning method '{name}' (expected one of "
                     f"{METHOD_NAMES})")
