import os
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import SkippedSequenceWarning, UTKinectAction3D
from tcmp_pyg.datasets.utkinect import (UTKINECT_CLASSES, read_utkinect_joints,
                                        read_utkinect_labels)
from tcmp_pyg.transforms import resample_frames


def joint_line(frame_id, coords):
    # As in joints_sXX_eYY.txt: runs of spaces and a trailing space.
    return f'{frame_id}   ' + '  '.join(f'{v:.6f}' for v in coords.reshape(-1)) + ' '


def write_recording(folder, name, ids, rng):
    coords = rng.normal(0, 1, size=(len(ids), 20, 3)).round(6)
    lines = [joint_line(i, c) for i, c in zip(ids, coords)]
    (folder / f'joints_{name}.txt').write_text('\n'.join(lines) + '\n')
    return np.array(ids), coords.astype(np.float32)


# As actionLabel.txt: a trailing space after some ranges, 'carry:  NaN NaN'.
LABELS = ('s01_e01\n'
          'walk: 10 14\n'
          'sitDown: 16 19 \n'
          'carry:  NaN NaN\n'
          's02_e01\n'
          'walk: 5 9\n'
          'pickUp: 11 15\n'
          's03_e01\n'
          'clapHands: 2 6\n')


@pytest.fixture
def utk_small(tmp_path):
    """A tiny UTKinect release in root/raw/joints/ (as distributed)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / 'utk' / 'raw' / 'joints'
    folder.mkdir(parents=True)
    (folder / 'actionLabel.txt').write_text(LABELS)
    (folder / 'actionLabel_modified.txt').write_text(LABELS.replace('walk: 10 14', 'walk: 11 14'))
    rec = {
        # Frame 12 appears twice with other coordinates, 15 is not labelled.
        (1, 1): write_recording(folder, 's01_e01', [8, 10, 12, 12, 14, 15, 16, 18, 19, 20], rng),
        (2, 1): write_recording(folder, 's02_e01', [5, 7, 9, 11, 13, 15], rng),
        (3, 1): write_recording(folder, 's03_e01', [1, 2, 3, 4, 6, 7], rng),
    }
    return tmp_path / 'utk', rec


def test_segments_keep_every_line_in_file_order(utk_small):
    root, rec = utk_small
    train = UTKinectAction3D(root, num_frames=6)
    test = UTKinectAction3D(root, split='test', num_frames=6)
    assert len(train) + len(test) == 5  # carry of s01_e01 is NaN NaN
    assert test.meta('subject').tolist() == [2, 2] and len(train) == 3
    walk = next(train[i] for i in range(len(train))
                if train[i].y.item() == 0 and train[i].subject.item() == 1)
    ids, coords = rec[(1, 1)]
    keep = (ids >= 10) & (ids <= 14)
    assert walk.length.item() == 4  # 10, 12, 12, 14
    expected = resample_frames(torch.from_numpy(coords[keep]), 6, dim=0).transpose(0, 1)
    assert torch.allclose(walk.x, expected, atol=1e-6)
    assert (walk.start.item(), walk.end.item()) == (10, 14)
    assert walk.source == 'joints_s01_e01.txt' and walk.repetition.item() == 1
    assert walk.x.shape == (20, 6, 3) and walk.edge_index.shape == (2, 38)


def test_flat_raw_folder_and_modified_labels(utk_small, tmp_path):
    root, _ = utk_small
    flat = tmp_path / 'flat'
    flat.mkdir()
    (flat / 'raw').symlink_to(root / 'raw' / 'joints', target_is_directory=True)
    a = UTKinectAction3D(flat, num_frames=6)
    b = UTKinectAction3D(root, num_frames=6)
    assert torch.equal(a.all_meta('length'), b.all_meta('length'))
    mod = UTKinectAction3D(root, num_frames=6, labels='modified')
    assert mod.all_meta('length')[0].item() == 3  # walk: 11 14
    assert sorted(os.listdir(root / 'processed'))[-2:] == [
        'utkinect_modified_T6_v1.pt', 'utkinect_original_T6_v1.pt']


def test_protocols(utk_small):
    root, _ = utk_small
    loso = UTKinectAction3D(root, protocol='loso', test_subject=3, split='test')
    assert loso.meta('subject').tolist() == [3]
    assert len(UTKinectAction3D(root, protocol='loso', test_subject=3)) == 4
    with pytest.raises(ValueError, match="'loso' protocol needs 'test_subject'"):
        UTKinectAction3D(root, protocol='loso')
    with pytest.raises(ValueError, match="only used by protocol='loso'"):
        UTKinectAction3D(root, test_subject=2)
    with pytest.raises(ValueError, match="'test_subject' to be one of"):
        UTKinectAction3D(root, protocol='loso', test_subject=11)
    with pytest.raises(ValueError, match="'labels' to be one of"):
        UTKinectAction3D(root, labels='fixed')


def test_empty_segment_is_skipped_with_a_warning(utk_small):
    root, _ = utk_small
    labels = root / 'raw' / 'joints' / 'actionLabel.txt'
    labels.write_text(LABELS.replace('clapHands: 2 6',
                                     'clapHands: 2 6\nthrow: 100 120'))
    with pytest.warns(SkippedSequenceWarning,
                      match=r'skipped 1 sequence.*joints_s03_e01.txt throw \[100, 120\]'):
        ds = UTKinectAction3D(root, num_frames=6)
    assert len(ds.all_meta('y')) == 5


def test_missing_joint_file_and_missing_raw(utk_small, tmp_path):
    root, _ = utk_small
    os.remove(root / 'raw' / 'joints' / 'joints_s02_e01.txt')
    with pytest.raises(FileNotFoundError, match=r'joints_s02_e01.txt: the joint '
                                                r'file of recording s02_e01'):
        UTKinectAction3D(root)
    with pytest.raises(FileNotFoundError, match=r"raw files not found .*"
                                                r"actionLabel\.txt.*HOJ3D"):
        UTKinectAction3D(tmp_path / 'empty')


@pytest.mark.parametrize('text, match', [
    ('walk: 1 2\n', r"line 1: expected a recording name like 's01_e01' before"),
    ('s01_e01\njump: 1 2\n', r"line 2: expected an action among \['walk'"),
    ('s01_e01\nwalk: 5 2\n', r'line 2: expected start <= end \(got 5 > 2\)'),
    ('s01_e01\nwalk: NaN 2\n', r"line 2: expected two frame ids or 'NaN NaN'"),
    ('s01_e01\nwalk: 1 2\nwalk: 3 4\n', "line 3: action 'walk' is listed twice"),
    ('s01_e01\nwalk: 1\n', r"line 2: expected a recording name .* or 'action: start end'"),
    ('s01_e01\nwalk: 1 2.5\n', r'line 2: expected an integer \(end frame id\)'),
    ('s01_e01\ns01_e01\n', "line 2: recording 's01_e01' is listed twice"),
    ('\n\n', 'got an empty file'),
])
def test_label_file_errors(tmp_path, text, match):
    path = tmp_path / 'actionLabel.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_utkinect_labels(str(path))


def test_joint_file_errors(tmp_path):
    path = tmp_path / 'joints_s01_e01.txt'
    rng = np.random.default_rng(1)
    good = [joint_line(i, rng.normal(size=(20, 3))) for i in (1, 2)]
    path.write_text('\n'.join(good + [good[0].replace('1   ', '1.5   ', 1)]))
    with pytest.raises(ValueError, match=r'line 3: expected an integer frame id'):
        read_utkinect_joints(str(path))
    path.write_text('\n'.join(good + [good[1].rsplit(' ', 3)[0]]))
    with pytest.raises(ValueError, match=r'line 3: expected 61 whitespace-separated'):
        read_utkinect_joints(str(path))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_label_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    path = fuzz_dir / 'actionLabel.txt'
    path.write_bytes(corrupt(data, LABELS))
    try:
        labels = read_utkinect_labels(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:
        for segments in labels.values():
            assert set(segments) <= set(UTKINECT_CLASSES)
            assert all(s is None or s[0] <= s[1] for s in segments.values())


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_joint_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    text = '\n'.join(joint_line(i, rng.normal(size=(20, 3)))
                     for i in range(data.draw(st.integers(1, 3)))) + '\n'
    path = fuzz_dir / 'joints_s01_e01.txt'
    path.write_bytes(corrupt(data, text))
    try:
        ids, joints = read_utkinect_joints(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert joints.shape == (len(ids), 20, 3) and len(ids) >= 1
        assert np.isfinite(joints).all() and ids.dtype == np.int64


# ---- the real data (skipped with the reason when the shared copy is absent)

def count_lines_in_range(path, start, end):
    """Independent count: lines of a joint file whose frame id is in range."""
    with open(path) as f:
        return sum(start <= int(line.split()[0]) <= end for line in f if line.strip())


def test_real_utkinect(utkinect_root):
    start = time.perf_counter()
    train = UTKinectAction3D(utkinect_root)
    seconds = time.perf_counter() - start
    assert seconds < 20, f'processing UTKinect took {seconds:.1f} s'
    y = train.all_meta('y')
    assert len(y) == 199
    assert torch.bincount(y).tolist() == [20, 20, 20, 20, 19, 20, 20, 20, 20, 20]
    test = UTKinectAction3D(utkinect_root, split='test')
    assert (len(train), len(test)) == (100, 99)
    assert set(train.meta('subject').tolist()) == {1, 3, 5, 7, 9}
    for s in range(1, 11):
        held = UTKinectAction3D(utkinect_root, protocol='loso', test_subject=s,
                                split='test')
        rest = UTKinectAction3D(utkinect_root, protocol='loso', test_subject=s)
        assert len(held) == (19 if s == 10 else 20) and len(held) + len(rest) == 199
    # Repeated frame ids are kept: s01_e01 walk (252..390) against a plain count.
    walk = train[0]
    assert (walk.source, walk.y.item(), walk.start.item()) == ('joints_s01_e01.txt', 0, 252)
    raw = utkinect_root / 'raw' / 'joints' / 'joints_s01_e01.txt'
    assert walk.length.item() == count_lines_in_range(raw, 252, 390)
    assert int(train.all_meta('length').sum()) == 6222  # counted independently

    batch = next(iter(DataLoader(train, batch_size=16)))
    assert batch.x.shape == (16 * 20, 40, 3) and batch.y.shape == (16,)
    assert batch.subject.shape == (16,) and torch.isfinite(batch.x).all()


def test_real_utkinect_flat_raw_and_modified_labels(utkinect_flat_root):
    ds = UTKinectAction3D(utkinect_flat_root, labels='modified', split='test')
    assert len(ds.all_meta('y')) == 199 and len(ds) == 99
    assert ds.all_meta('length').max().item() < 174  # the corrected ranges are shorter
