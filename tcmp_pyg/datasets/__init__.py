"""Skeleton action datasets as PyG ``InMemoryDataset`` s (one graph per
sequence), and :obj:`DATASETS`, the short names the command line uses."""
from typing import Dict, Type

from tcmp_pyg.datasets.arrays import SkeletonArrays
from tcmp_pyg.datasets.base import SkeletonDataset, skeleton_to_data
from tcmp_pyg.datasets.fpha import FPHA
from tcmp_pyg.datasets.msr import MSRAction3D
from tcmp_pyg.datasets.ntu import NTURGBD, parse_ntu_skeleton
from tcmp_pyg.datasets.parsing import (DataWarning, SkippedFileWarning,
                                       SkippedSequenceWarning)
from tcmp_pyg.datasets.pose_annotations import PoseAnnotations
from tcmp_pyg.datasets.safe_pickle import UnsafePickleError, safe_load_pickle
from tcmp_pyg.datasets.sbu import SBUKinectInteraction
from tcmp_pyg.datasets.synthetic import SyntheticSkeletonActions
from tcmp_pyg.datasets.utkinect import UTKinectAction3D

DATASETS: Dict[str, Type[SkeletonDataset]] = {
    'sbu': SBUKinectInteraction,
    'utkinect': UTKinectAction3D,
    'msr': MSRAction3D,
    'fpha': FPHA,
    'ntu': NTURGBD,
    'synthetic': SyntheticSkeletonActions,
}

__all__ = [
    'DATASETS', 'DataWarning', 'FPHA', 'MSRAction3D', 'NTURGBD',
    'SBUKinectInteraction', 'SkeletonDataset', 'SkippedFileWarning',
    'SkippedSequenceWarning', 'SyntheticSkeletonActions', 'UTKinectAction3D',
    'parse_ntu_skeleton', 'skeleton_to_data',
]

# Datasets read from the user's own files (a .npy array, a pyskl pickle): they
# take a path, not a root holding raw/, so they are not in DATASETS.
__all__ += ['PoseAnnotations', 'SkeletonArrays', 'UnsafePickleError',
            'safe_load_pickle']

# After DATASETS: the splits helper looks datasets up by name.
from tcmp_pyg.datasets.splits import (body_order_views,  # noqa: E402
                                      dataset_options, dataset_splits)

__all__ += ['body_order_views', 'dataset_options', 'dataset_splits']
