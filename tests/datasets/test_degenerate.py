"""Degenerate but well-formed data: each case has a defined behaviour.

- One frame: kept; resampling repeats it (``length`` stays 1).
- Identical frames (no motion): kept unchanged; NTU's body ranking by motion
  then keeps the bodies in order of first appearance.
- A body that disappears mid-sequence (NTU): zero in the frames where it is
  not tracked. SBU cannot express it: every line holds both persons, so a
  frame with one person is a malformed line.
- Huge coordinates: rejected above ``MAX_COORDINATE`` (1e6; metres,
  millimetres, pixels and normalised units all stay far below) with a
  ValueError naming file and line; float32 squares would overflow from about
  1.8e19, and norms, ScaleNormalize and the loss would turn to inf/NaN.
  Columns that are not coordinates (NTU depth/colour, MSR confidence) only
  need to be finite float32.
- One class: the dataset loads; ``num_classes`` stays the label space.
- An empty split: SBU names the fold and its missing (or empty) sets; NTU
  names the benchmark and split.
"""
import re
import shutil

import numpy as np
import pytest
import torch

from tcmp_pyg.datasets import (NTURGBD, SBUKinectInteraction,
                               SkippedSequenceWarning, skeleton_to_data)
from tcmp_pyg.datasets.base import MAX_COORDINATE, check_coordinates
from tcmp_pyg.datasets.fpha import read_fpha_skeleton
from tcmp_pyg.datasets.msr import read_msr_file
from tcmp_pyg.datasets.ntu import parse_ntu_skeleton
from tcmp_pyg.datasets.sbu import SBU_FOLDS, read_sbu_file, sbu_to_metres
from tcmp_pyg.datasets.utkinect import read_utkinect_joints
from tcmp_pyg.layouts import get_layout
from tcmp_pyg.train import check_labels
from tcmp_pyg.transforms import CenterJoint, ScaleNormalize
from test_ntu import A, B, BODY_INFO, C, JOINT_REST, ntu_text

both_storages = pytest.mark.parametrize('on_disk', [False, True])


def ntu_root(tmp_path, files):
    """files: {name: frames} -> a root whose raw/ holds those samples."""
    raw = tmp_path / 'ntu' / 'raw'
    raw.mkdir(parents=True)
    for name, frames in files.items():
        (raw / f'{name}.skeleton').write_text(ntu_text(frames))
    return tmp_path / 'ntu'


def pose(rng, offset=0.0):
    return rng.normal(0, 1, (25, 3)) + offset


# ---- one frame, identical frames ---------------------------------------------

@both_storages
def test_one_frame_is_repeated_to_num_frames(tmp_path, on_disk):
    rng = np.random.default_rng(0)
    joints = pose(rng)
    root = ntu_root(tmp_path, {'S001C001P001R001A001': [[(A, joints)]],
                               'S001C001P002R001A002': [[(A, pose(rng))]] * 3})
    ds = NTURGBD(root, num_frames=6, on_disk=on_disk, num_workers=0)
    data = ds[0]
    assert data.length.item() == 1 and data.x.shape == (50, 6, 3)
    assert torch.allclose(data.x[:25, 0], torch.tensor(joints, dtype=torch.float32),
                          atol=1e-5)
    assert torch.equal(data.x, data.x[:, :1].expand(-1, 6, -1))
    assert (data.x[25:] == 0).all()  # no second body


def test_one_frame_sbu_sequence(sbu_small):
    root, written = sbu_small
    source = 's01s02/01/001/skeleton_pos.txt'
    line = (root / 'raw' / source).read_text().splitlines()[0]
    (root / 'raw' / source).write_text(line + '\n')
    ds = SBUKinectInteraction(root, fold=1, split='test', num_frames=5)
    data = ds[ds.meta('source').index(source)]
    assert data.length.item() == 1
    assert torch.equal(data.x, data.x[:, :1].expand(-1, 5, -1))
    assert torch.allclose(data.x[:, 0], torch.tensor(
        sbu_to_metres(written[source][0].reshape(30, 3)), dtype=torch.float32),
        atol=1e-5)


def test_identical_frames_keep_the_order_of_first_appearance(tmp_path):
    rng = np.random.default_rng(0)
    still_b, still_a = pose(rng, 5), pose(rng)
    frames = [[(B, still_b), (A, still_a)]] * 4  # no motion at all
    root = ntu_root(tmp_path, {'S001C001P001R001A001': frames,
                               'S001C001P002R001A002': frames})
    seq = parse_ntu_skeleton(str(root / 'raw' / 'S001C001P001R001A001.skeleton'))
    assert np.allclose(seq[:, 0], still_b, atol=1e-5)  # B came first
    assert np.allclose(seq[:, 1], still_a, atol=1e-5)
    data = NTURGBD(root, num_frames=7, on_disk=False, num_workers=0)[0]
    assert torch.equal(data.x, data.x[:, :1].expand(-1, 7, -1))
    for transform in (CenterJoint('ntu'), ScaleNormalize('ntu')):
        data = transform(data)
        assert torch.isfinite(data.x).all()


def test_identical_frames_through_skeleton_to_data():
    seq = np.ones((3, 2, 15, 3), dtype=np.float32)
    data = skeleton_to_data(seq, get_layout('sbu'), 0, num_frames=8)
    assert torch.equal(data.x, torch.ones(30, 8, 3)) and data.length.item() == 3


# ---- a body that disappears --------------------------------------------------

@both_storages
def test_a_body_leaving_mid_sequence_is_zero_from_then_on(tmp_path, on_disk):
    rng = np.random.default_rng(0)
    a = [pose(rng) * (t + 1) for t in range(6)]  # A moves most: body 0
    b = [pose(rng, 3) for _ in range(3)]         # B: frames 1-3 only
    ghost = np.full((25, 3), -3.0)               # C: appears late, static
    frames = [[(A, a[t])] + ([(B, b[t])] if t < 3 else []) for t in range(6)]
    seq = parse_ntu_skeleton(str(ntu_root(tmp_path / 'p', {'x': frames}) /
                                 'raw' / 'x.skeleton'))
    assert np.allclose(seq[:3, 1], np.stack(b), atol=1e-5)
    assert (seq[3:, 1] == 0).all()
    frames[4].append((C, ghost))
    frames[5].append((C, ghost))
    root = ntu_root(tmp_path, {'S001C001P001R001A001': frames})
    # num_frames == T: no interpolation, the zeros stay exact.
    data = NTURGBD(root, num_frames=6, on_disk=on_disk, num_workers=0)[0]
    x = data.x.view(2, 25, 6, 3)
    assert torch.allclose(x[0], torch.tensor(np.stack(a), dtype=torch.float32)
                          .permute(1, 0, 2), atol=1e-4)
    # C (no spread, no motion) ranks last and is dropped; B is kept and is
    # zero after it left.
    assert (x[1, :, 3:] == 0).all() and (x[1, :, :3] != 0).any()


def test_sbu_cannot_lose_a_person_mid_sequence(tmp_path):
    full = ','.join(['1'] + ['0.5'] * 90)
    one_person = ','.join(['2'] + ['0.5'] * 45)
    path = tmp_path / 'skeleton_pos.txt'
    path.write_text(f'{full}\n{one_person}\n')
    with pytest.raises(ValueError, match=r"line 2: expected 91 ','-separated "
                                         r"values .* \(got 46\) \(truncated line\?\)"):
        read_sbu_file(str(path))


# ---- huge coordinates ----------------------------------------------------------

def ntu_joint_line(x, rest=JOINT_REST):
    return f'{x} 0.1 3 {rest}'


@pytest.mark.parametrize('value', ['1e30', '-2e7', '1000001'])
def test_huge_coordinates_are_rejected_naming_file_and_line(tmp_path, value):
    # NTU: line 6 is the second joint of the only body.
    lines = ntu_text([[(A, np.ones((25, 3)))]]).splitlines()
    lines[5] = ntu_joint_line(value)
    path = tmp_path / 'S001C001P001R001A001.skeleton'
    path.write_text('\n'.join(lines) + '\n')
    shown = re.escape(f'{float(value):.7g}')
    with pytest.raises(ValueError, match=re.escape(
            f'{path}, line 6: expected joint coordinates x y z within +-1e+06 '
            f'(got ') + shown + r'\)'):
        parse_ntu_skeleton(str(path))

    sbu = tmp_path / 'skeleton_pos.txt'
    sbu.write_text(','.join(['1'] + ['0.5'] * 90) + '\n' +
                   ','.join(['2'] + ['0.5'] * 89 + [value]) + '\n')
    with pytest.raises(ValueError, match=rf'line 2: expected joint coordinates '
                                         rf'within \+-1e\+06 \(got {shown}\)'):
        read_sbu_file(str(sbu))

    utk = tmp_path / 'joints_s01_e01.txt'
    utk.write_text(' '.join(['7'] + ['0.1'] * 59 + [value]) + '\n')
    with pytest.raises(ValueError, match=r'line 1: expected joint coordinates'):
        read_utkinect_joints(str(utk))

    msr = tmp_path / 'a01_s01_e01_skeleton3D.txt'
    msr.write_text('0.1 0.2 3 0.5\n' * 5 + f'0.1 {value} 3 0.5\n' + '0.1 0.2 3 0.5\n' * 14)
    with pytest.raises(ValueError, match=r'line 6: expected joint coordinates'):
        read_msr_file(str(msr))

    fpha = tmp_path / 'skeleton.txt'
    fpha.write_text(' '.join(['0'] + ['12.5'] * 62 + [value]) + '\n')
    with pytest.raises(ValueError, match=r'line 1: expected joint coordinates'):
        read_fpha_skeleton(str(fpha))


def test_coordinates_at_the_bound_stay_finite_through_the_transforms(tmp_path):
    assert MAX_COORDINATE == 1e6
    lines = ntu_text([[(A, np.full((25, 3), 1e6))], [(A, np.full((25, 3), -1e6))]])
    root = tmp_path / 'ntu'
    (root / 'raw').mkdir(parents=True)
    (root / 'raw' / 'S001C001P001R001A001.skeleton').write_text(lines)
    data = NTURGBD(root, num_frames=4, num_workers=0)[0]
    assert data.x.abs().max().item() == 1e6
    for transform in (CenterJoint('ntu'), ScaleNormalize('ntu')):
        data = transform(data)
        assert torch.isfinite(data.x).all()
    assert torch.isfinite((data.x ** 2).sum())


def test_other_columns_only_need_to_be_finite_float32(tmp_path):
    # depthX of NTU and the confidence of MSR are not coordinates.
    lines = ntu_text([[(A, np.ones((25, 3)))]]).splitlines()
    lines[5] = ntu_joint_line('1', rest='1e30 ' + JOINT_REST.split(' ', 1)[1])
    path = tmp_path / 'S001C001P001R001A001.skeleton'
    path.write_text('\n'.join(lines) + '\n')
    assert parse_ntu_skeleton(str(path)).shape == (1, 2, 25, 3)
    msr = tmp_path / 'a01_s01_e01_skeleton3D.txt'
    msr.write_text('0.1 0.2 3 1e30\n' * 20)
    assert read_msr_file(str(msr)).shape == (1, 1, 20, 3)
    body = f'{A} {BODY_INFO}'.replace('-0.2372897', '3e38')  # leanX
    lines = ntu_text([[(A, np.ones((25, 3)))]]).splitlines()
    lines[2] = body
    path.write_text('\n'.join(lines) + '\n')
    assert parse_ntu_skeleton(str(path)).shape == (1, 2, 25, 3)


def test_check_coordinates_names_the_first_bad_line():
    lines = [(3, 'a'), (7, 'b'), (9, 'c')]
    values = np.array([[0.0, 1.0], [5.0, -3e6], [2e9, 0.0]])
    with pytest.raises(ValueError, match=r'^f\.txt, line 7: expected xy within '
                                         r'\+-1e\+06 \(got -3000000\)$'):
        check_coordinates(values, 'f.txt', lines, 'xy')
    check_coordinates(values[:1], 'f.txt', lines, 'xy')
    check_coordinates(values, 'f.txt', lines, 'xy', bound=3e9)


# ---- one class, empty splits ---------------------------------------------------

@both_storages
def test_a_dataset_of_one_class(tmp_path, on_disk):
    rng = np.random.default_rng(0)
    root = ntu_root(tmp_path, {f'S001C001P00{p}R001A001': [[(A, pose(rng))]] * 2
                               for p in (1, 3)})
    train = NTURGBD(root, num_frames=4, on_disk=on_disk, num_workers=0)
    test = NTURGBD(root, split='test', num_frames=4, on_disk=on_disk, num_workers=0)
    assert train.meta('y').tolist() == [0] and test.meta('y').tolist() == [0]
    assert train.num_classes == 60 and len(train.class_names) == 60
    check_labels(train, train.num_classes, 'training')


def test_sbu_of_one_class(sbu_small):
    root, _ = sbu_small
    for set_dir in (root / 'raw').iterdir():
        if set_dir.is_dir():
            for cls in [c for c in set_dir.iterdir() if c.is_dir() and c.name != '01']:
                for seq in cls.iterdir():
                    shutil.move(str(seq), str(set_dir / '01' / f'{cls.name}_{seq.name}'))
                cls.rmdir()
    ds = SBUKinectInteraction(root, num_frames=4)
    assert set(ds.all_meta('y').tolist()) == {0}
    assert ds.num_classes == 8


def test_sbu_root_lacking_every_set_of_a_fold(sbu_small):
    root, _ = sbu_small
    for set_name in SBU_FOLDS[2]:
        shutil.rmtree(root / 'raw' / set_name)
    sets = ', '.join(SBU_FOLDS[2])
    with pytest.raises(FileNotFoundError, match=re.escape(
            '4 of the 21 set folders are missing in') + '.*' + re.escape(
            f'{sets}; without them fold 3 (test sets {sets}) would have no '
            f'test sequence')):
        SBUKinectInteraction(root, fold=1)


def test_sbu_fold_whose_sets_hold_no_sequence(sbu_small):
    root, _ = sbu_small
    for set_name in SBU_FOLDS[2]:  # the folders stay, their sequences go
        shutil.rmtree(root / 'raw' / set_name)
        (root / 'raw' / set_name).mkdir()
    assert len(SBUKinectInteraction(root, fold=1, split='test')) > 0
    assert len(SBUKinectInteraction(root, fold=3, split='train')) > 0
    with pytest.raises(ValueError, match=re.escape(
            f"SBUKinectInteraction: the test split of fold 3 (sets "
            f"{', '.join(SBU_FOLDS[2])}) has no sequence")):
        SBUKinectInteraction(root, fold=3, split='test')


def test_ntu_split_without_any_sample(tmp_path):
    rng = np.random.default_rng(0)
    root = ntu_root(tmp_path, {'S001C001P001R001A001': [[(A, pose(rng))]]})
    assert len(NTURGBD(root, num_frames=4, num_workers=0)) == 1  # subject 1 trains
    with pytest.raises(ValueError, match=r"NTURGBD: the test split of benchmark "
                                         r"'xsub' \(NTU-60\) has no sequence \(1 "
                                         r"processed from '.*raw'\)"):
        NTURGBD(root, split='test', num_frames=4, num_workers=0)


def test_only_bodiless_samples(tmp_path):
    root = ntu_root(tmp_path, {'S001C001P001R001A001': [[], []]})
    with pytest.warns(SkippedSequenceWarning, match='without any body'):
        with pytest.raises(ValueError, match='no usable sequence'):
            NTURGBD(root, num_frames=4, on_disk=True, num_workers=0)
    assert not [f for f in (root / 'processed').iterdir() if f.name.startswith('ntu_')]
