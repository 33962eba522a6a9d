"""Shared test fixtures.

TCMP_PYG_HIDE_TORCH_SCATTER=1 makes ``import torch_scatter`` fail before PyG is
imported, so PyG's own scatter fallback runs even where torch-scatter is installed.

Real datasets are read in place: a fixture such as ``sbu_root`` returns a fresh
temporary dataset root whose ``raw`` is a symlink to the shared copy, so
processed files land in the temporary folder and nothing is copied.
"""
import importlib.abc
import os
import sys
from pathlib import Path

import numpy as np
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


def linked_root(tmp_path: Path, target: Path) -> Path:
    """A dataset root in ``tmp_path`` whose ``raw`` links to ``target``."""
    root = tmp_path / 'root'
    root.mkdir()
    (root / 'raw').symlink_to(target, target_is_directory=True)
    return root


@pytest.fixture
def sbu_root(tmp_path: Path) -> Path:
    """Root whose raw/ is the real SBU Kinect Interaction set (skips if absent)."""
    return linked_root(tmp_path, shared_dataset('SBU'))


@pytest.fixture
def utkinect_root(tmp_path: Path) -> Path:
    """Root whose raw/ is the real UTKinect folder, i.e. the files sit in
    raw/joints/ as in the release (skips if absent)."""
    return linked_root(tmp_path, shared_dataset('UTKinect'))


@pytest.fixture
def utkinect_flat_root(tmp_path: Path) -> Path:
    """Root whose raw/ holds the real UTKinect files directly (skips if absent)."""
    return linked_root(tmp_path, shared_dataset('UTKinect') / 'joints')


def sbu_line(frame: int, coords: np.ndarray) -> str:
    """One SBU frame: frame number then 2 x 15 x 3 values, comma separated,
    no spaces, as in skeleton_pos.txt."""
    return ','.join([str(frame)] + [f'{v:.5g}' for v in coords.reshape(-1)])


def write_sbu_tree(raw: Path, seed: int = 0) -> dict:
    """One sequence per set (class 1 + set index mod 8), and a second one in
    s01s02; returns {relative source: frames array [T, 2, 15, 3]}."""
    # Imported here: PyG must not load before torch_scatter is hidden above.
    from tcmp_pyg.datasets.sbu import SBU_SETS

    rng = np.random.default_rng(seed)
    written = {}
    for i, set_name in enumerate(SBU_SETS):
        seqs = [(i % 8 + 1, '001')] + ([(1, '002')] if set_name == 's01s02' else [])
        for cls, seq in seqs:
            folder = raw / set_name / f'{cls:02d}' / seq
            folder.mkdir(parents=True)
            T = int(rng.integers(10, 16))
            coords = rng.uniform(0, 1, size=(T, 2, 15, 3)).round(5)
            start = int(rng.integers(1, 100))  # frame numbers start anywhere
            lines = [sbu_line(start + t, coords[t]) for t in range(T)]
            (folder / 'skeleton_pos.txt').write_text('\n'.join(lines) + '\n')
            written[f'{set_name}/{cls:02d}/{seq}/skeleton_pos.txt'] = coords
        (raw / set_name / '.DS_Store').write_bytes(b'\x00\x01')  # macOS debris
    return written


@pytest.fixture
def sbu_small(tmp_path: Path):
    """(root, {source: coords}) of a tiny SBU tree under root/raw/."""
    root = tmp_path / 'sbu'
    written = write_sbu_tree(root / 'raw')
    return root, written


@pytest.fixture
def one_thread():
    """Tiny models on one intra-op thread: a second one only adds
    synchronisation, and on a busy machine its spin-waits slow runs tenfold."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
