"""Plots: surviving subnetworks and per-layer density
(:mod:`~tcmp_pyg.visualization.subnetwork`), skeletons
(:mod:`~tcmp_pyg.visualization.skeleton`) and sweep results
(:mod:`~tcmp_pyg.visualization.results`).

matplotlib is imported inside the functions, so ``import tcmp_pyg`` (and this
package) never loads it. Every function builds a
:class:`matplotlib.figure.Figure` directly (not through ``pyplot``), so no
figure is left registered in a global state; it returns the figure and, given
``path``, saves it there.

Colours carry one meaning everywhere: :obj:`LIVE_COLOR` for live weights and
channels (accessible from the input *and* co-accessible to the output),
:obj:`DEAD_COLOR` for dead ones (kept, yet unable to change the output).
"""
from tcmp_pyg.visualization._common import DEAD_COLOR, LIVE_COLOR, format_rate
from tcmp_pyg.visualization.results import (COST_AXES, RESULT_COLUMNS,
                                            aggregate_costs, aggregate_results,
                                            plot_accuracy_vs_cost,
                                            plot_accuracy_vs_rate)
from tcmp_pyg.visualization.skeleton import (animate_sequence, plot_skeleton,
                                             rest_pose)
from tcmp_pyg.visualization.subnetwork import (plot_layer_density,
                                               plot_mp_vs_tcmp, plot_subnetwork)

__all__ = [
    'COST_AXES', 'DEAD_COLOR', 'LIVE_COLOR', 'RESULT_COLUMNS', 'aggregate_costs',
    'aggregate_results', 'animate_sequence', 'format_rate',
    'plot_accuracy_vs_cost', 'plot_accuracy_vs_rate',
    'plot_layer_density', 'plot_mp_vs_tcmp', 'plot_skeleton',
    'plot_subnetwork', 'rest_pose',
]
