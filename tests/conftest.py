"""Shared test fixtures.

TCMP_PYG_HIDE_TORCH_SCATTER=1 makes ``import torch_scatter`` fail before PyG is
imported, so PyG's own scatter fallback runs even where torch-scatter is installed.
"""
import importlib.abc
import os
import sys
from pathlib import Path

import pytest

if os.environ.get('TCMP_PYG_HIDE_TORCH_SCATTER') == '1':
    class _HideTorchScatter(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == 'torch_scatter' or name.startswith('torch_scatter.'):
                raise ImportError('torch_scatter hidden by TCMP_PYG_HIDE_TORCH_SCATTER')
            return None

    sys.meta_path.insert(0, _HideTorchScatter())
    sys.modules.pop('torch_scatter', None)

# Real datasets live beside the repository (../shared/data) unless told otherwise.
SHARED_DATA = Path(os.environ.get(
    'TCMP_PYG_SHARED_DATA', Path(__file__).resolve().parents[2] / 'shared' / 'data'))


def shared_dataset(name: str) -> Path:
    """The folder of a real dataset, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f'real {name} data not found at {path} '
                    f'(set TCMP_PYG_SHARED_DATA to the folder holding {name}/)')
    return path
