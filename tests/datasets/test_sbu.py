import os
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import SBUKinectInteraction, SkippedFileWarning
from tcmp_pyg.datasets.sbu import (SBU_CLASSES, SBU_FOLDS, read_sbu_file,
                                   sbu_to_metres)
from tcmp_pyg.transforms import resample_frames

# Measured on the real clean SBU set (282 sequences).
SBU_CLASS_COUNTS = [42, 43, 40, 41, 18, 21, 39, 38]
SBU_FOLD_TEST_SIZES = [55, 52, 56, 54, 65]


def processed_files(root):
    folder = root / 'processed'
    return sorted(f for f in os.listdir(folder) if f.startswith('sbu_')) \
        if folder.is_dir() else []


def test_small_tree_values_and_metadata(sbu_small):
    root, written = sbu_small
    ds = SBUKinectInteraction(root, fold=1, split='test', num_frames=12)
    all_sources = ds.all_meta('source')
    assert sorted(all_sources) == sorted(written)
    assert len(ds) == sum(s.split('/')[0] in SBU_FOLDS[0] for s in written)
    data = ds[0]
    coords = torch.tensor(sbu_to_metres(np.asarray(written[data.source],
                                                    dtype=np.float32)))
    T = coords.size(0)
    expected = resample_frames(coords, 12, dim=0).reshape(12, 30, 3).transpose(0, 1)
    assert data.x.shape == (30, 12, 3)
    assert torch.allclose(data.x, expected, atol=1e-6)
    assert data.length.tolist() == [T]
    assert data.y.item() == int(data.source.split('/')[1]) - 1
    assert data.set_name == data.source.split('/')[0]
    assert data.fold.item() == 1
    assert data.edge_index.shape == (2, 2 * 14 * 2)
    assert repr(ds) == f'SBUKinectInteraction({len(ds)})'


def test_metres_follow_the_readme_formulas(sbu_small):
    # X = 1280 - 2560 x, Y = 960 - 1920 y, Z = 10000 z / 7.8125 (millimetres)
    coords = np.array([[0.5, 0.5, 1.0], [0.0, 1.0, 7.8125]], dtype=np.float32)
    expected = np.array([[0.0, 0.0, 1.28], [1.28, -0.96, 10.0]])
    assert np.allclose(sbu_to_metres(coords), expected, atol=1e-6)
    assert sbu_to_metres(coords).dtype == np.float32

    root, written = sbu_small
    metres = SBUKinectInteraction(root, fold=1, split='test', num_frames=12)
    stored = SBUKinectInteraction(root, fold=1, split='test', num_frames=12,
                                  units='normalized')
    assert processed_files(root) == ['sbu_T12_m_v1.pt', 'sbu_T12_v1.pt']
    for a, b in zip(metres, stored):
        assert a.source == b.source
        xyz = torch.from_numpy(sbu_to_metres(b.x.numpy()))
        assert torch.allclose(a.x, xyz, atol=1e-6)
    with pytest.raises(ValueError, match="units"):
        SBUKinectInteraction(root, units='mm')


def test_folds_partition_the_sets(sbu_small):
    root, written = sbu_small
    for k, fold in enumerate(SBU_FOLDS, start=1):
        train = SBUKinectInteraction(root, fold=k, split='train', num_frames=8)
        test = SBUKinectInteraction(root, fold=k, split='test', num_frames=8)
        assert set(test.meta('set_name')) == set(fold)
        assert not set(train.meta('set_name')) & set(fold)
        assert len(train) + len(test) == len(written)
    # Folds and splits only select: one processed file for all of them.
    assert len(processed_files(root)) == 1


def test_num_frames_is_part_of_the_processed_name(sbu_small):
    root, _ = sbu_small
    a = SBUKinectInteraction(root, num_frames=8)
    assert processed_files(root) == ['sbu_T8_m_v1.pt']
    b = SBUKinectInteraction(root, num_frames=16)
    assert processed_files(root) == ['sbu_T16_m_v1.pt', 'sbu_T8_m_v1.pt']
    assert a[0].x.size(1) == 8 and b[0].x.size(1) == 16
    # A pre_transform is a processing option too.
    c = SBUKinectInteraction(root, num_frames=8,
                             pre_transform=lambda d: d)  # noqa: E731
    assert len(processed_files(root)) == 3 and len(c) == len(a)


def test_failed_processing_leaves_no_processed_file(sbu_small):
    root, written = sbu_small
    bad = root / 'raw' / sorted(written)[5]
    lines = bad.read_text().splitlines()
    bad.write_text('\n'.join(lines[:-1] + [lines[-1][:40]]) + '\n')  # truncated
    with pytest.raises(ValueError, match=rf'{bad}, line {len(lines)}: expected 91 '
                                         r"','-separated values"):
        SBUKinectInteraction(root)
    assert processed_files(root) == []

    def exploding(data):
        raise RuntimeError('boom')

    bad.write_text('\n'.join(lines) + '\n')
    with pytest.raises(RuntimeError, match='boom'):
        SBUKinectInteraction(root, pre_transform=exploding)
    assert processed_files(root) == []
    assert len(SBUKinectInteraction(root)) > 0


def test_corrupt_processed_file_says_what_to_delete(sbu_small):
    root, _ = sbu_small
    SBUKinectInteraction(root, num_frames=8)
    (root / 'processed' / 'sbu_T8_m_v1.pt').write_bytes(b'not a torch file')
    with pytest.raises(RuntimeError, match=r"stale or corrupt: delete '.*processed'"):
        SBUKinectInteraction(root, num_frames=8)
    assert len(SBUKinectInteraction(root, num_frames=8, force_reload=True)) > 0


def test_missing_raw_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        SBUKinectInteraction(tmp_path / 'nowhere')
    msg = str(info.value)
    assert f"raw files not found in '{tmp_path / 'nowhere' / 'raw'}'" in msg
    assert '<set>/<class 01..08>/<seq>/skeleton_pos.txt' in msg
    assert 'stonybrook.edu' in msg and 'research use only' in msg


@pytest.mark.parametrize('kwargs, match', [
    (dict(fold=6), r"'fold' to be one of \[1, 2, 3, 4, 5\] \(got 6\)"),
    (dict(split='val'), r"'split' to be one of \['train', 'test'\]"),
    (dict(num_frames=0), "'num_frames' to be an integer >= 1"),
    (dict(num_frames=2.5), "'num_frames' to be an integer >= 1"),
])
def test_invalid_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SBUKinectInteraction(tmp_path, **kwargs)


def test_unexpected_class_folder(sbu_small):
    root, _ = sbu_small
    (root / 'raw' / 's01s02' / '09' / '001').mkdir(parents=True)
    with pytest.raises(ValueError, match=r"s01s02/09: expected a class folder 01\.\.08"):
        SBUKinectInteraction(root)


def sbu_text(rng, T):
    coords = rng.uniform(-0.2, 1.4, size=(T, 2, 15, 3)).round(5)
    return '\n'.join(','.join([str(55 + t)] + [f'{v:.5g}' for v in coords[t].reshape(-1)])
                     for t in range(T)) + '\n'


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    path = fuzz_dir / 'skeleton_pos.txt'
    path.write_bytes(corrupt(data, sbu_text(rng, data.draw(st.integers(1, 4)))))
    try:
        seq = read_sbu_file(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert seq.dtype == np.float32 and seq.shape[1:] == (2, 15, 3)
        assert seq.shape[0] >= 1 and np.isfinite(seq).all()


# ---- the real data (skipped with the reason when the shared copy is absent)

def test_real_sbu_counts_folds_and_batching(sbu_root):
    start = time.perf_counter()
    train = SBUKinectInteraction(sbu_root, fold=1, split='train')
    seconds = time.perf_counter() - start
    assert seconds < 20, f'processing the 282 SBU sequences took {seconds:.1f} s'
    assert len(train.all_meta('y')) == 282
    assert torch.bincount(train.all_meta('y')).tolist() == SBU_CLASS_COUNTS
    assert len(train.class_names) == len(SBU_CLASSES) == 8
    length = train.all_meta('length')
    assert (length.min().item(), length.max().item()) == (10, 46)
    sizes = []
    for k in range(1, 6):
        test = SBUKinectInteraction(sbu_root, fold=k, split='test')
        tr = SBUKinectInteraction(sbu_root, fold=k, split='train')
        assert len(test) + len(tr) == 282
        assert not set(test.meta('source')) & set(tr.meta('source'))
        sizes.append(len(test))
    assert sizes == SBU_FOLD_TEST_SIZES
    assert repr(train) == 'SBUKinectInteraction(227)'

    loader = DataLoader(train, batch_size=8, shuffle=True)
    batch = next(iter(loader))
    assert batch.x.shape == (8 * 30, 40, 3)
    assert batch.y.shape == (8,)
    assert batch.length.shape == (8,) and batch.fold.shape == (8,)
    assert len(batch.source) == 8 and len(batch.set_name) == 8
    assert batch.edge_index.max() < 8 * 30
    assert torch.isfinite(batch.x).all()


def test_on_error_skip_leaves_out_bad_and_missing_files(sbu_small):
    root, written = sbu_small
    total = len(SBUKinectInteraction(root, num_frames=8).all_meta('y'))
    bad = root / 'raw' / sorted(written)[5]
    bad.write_text(bad.read_text()[:-30])  # truncated last line
    gone = root / 'raw' / sorted(written)[7]
    gone.unlink()
    with pytest.warns(SkippedFileWarning, match=r'skipped 2 raw file') as record:
        ds = SBUKinectInteraction(root, num_frames=8, on_error='skip')
    assert len(ds.all_meta('y')) == total - 2
    report = (root / 'processed' / 'sbu_T8_m_skip_v1.skipped.txt').read_text()
    assert str(bad) in report and "expected 91 ','-separated values" in report
    assert f'{gone.parent}: expected a skeleton_pos.txt file' in report
    assert str(record[0].message).split('\n')[1:] == [
        f'  {line}' for line in report.splitlines()]
