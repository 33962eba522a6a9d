import os

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets.base import atomic_save, check_num_frames, skeleton_to_data
from tcmp_pyg.layouts import get_layout


def test_skeleton_to_data_layout_and_metadata():
    sbu = get_layout('sbu')
    seq = np.random.default_rng(0).normal(size=(7, 2, 15, 3))
    data = skeleton_to_data(seq, sbu, 3, subject=4, train=True, source='a/b.txt')
    assert data.x.shape == (30, 7, 3) and data.x.dtype == torch.float32
    # Node m * V + v is joint v of body m.
    assert torch.allclose(data.x[15 + 2], torch.from_numpy(seq[:, 1, 2]).float())
    assert data.y.tolist() == [3] and data.length.tolist() == [7]
    assert data.subject.tolist() == [4] and data.train.tolist() == [1]
    assert torch.equal(data.edge_index, sbu.edge_index())
    resampled = skeleton_to_data(seq, sbu, 0, num_frames=20)
    assert resampled.x.shape == (30, 20, 3) and resampled.length.tolist() == [7]
    batch = next(iter(DataLoader([data, data], batch_size=2)))
    assert batch.subject.tolist() == [4, 4] and batch.source == ['a/b.txt'] * 2


@pytest.mark.parametrize('shape, match', [
    ((7, 15, 3), r'\[T, M, V, C\]'),
    ((7, 1, 15, 3), 'Expected 2 bodies x 15 joints'),
    ((0, 2, 15, 3), 'at least one frame'),
])
def test_skeleton_to_data_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        skeleton_to_data(np.zeros(shape), get_layout('sbu'), 0)


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / 'processed' / 'x.pt'
    atomic_save([Data(x=torch.ones(2, 3)), Data(x=torch.zeros(1, 3))], str(path))
    assert path.exists()
    bad = tmp_path / 'processed' / 'y.pt'
    with pytest.raises(RuntimeError):  # x of mismatched widths
        atomic_save([Data(x=torch.ones(2, 3)), Data(x=torch.ones(2, 4))], str(bad))
    assert sorted(os.listdir(tmp_path / 'processed')) == ['x.pt']


def test_check_num_frames():
    assert check_num_frames(np.int64(5)) == 5
    for bad in (0, -1, 1.5, True, '8', None):
        with pytest.raises(ValueError, match="'num_frames'"):
            check_num_frames(bad)
