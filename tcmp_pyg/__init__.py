"""tcmp_pyg: topologically consistent magnitude pruning of skeleton GCNs in PyG."""
from tcmp_pyg.checkpoint import load_model
from tcmp_pyg.layouts import LAYOUTS, SkeletonLayout, get_layout

__version__ = '0.1.0'

__all__ = ['LAYOUTS', 'SkeletonLayout', 'get_layout', 'load_model', '__version__']
