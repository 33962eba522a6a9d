import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tcmp_pyg.datasets import MSRAction3D, SkippedSequenceWarning
from tcmp_pyg.datasets.msr import MSR_TO_KINECT_V1, read_msr_file
from tcmp_pyg.layouts import get_layout

# MSR file order of the 20 joints (1-based in the comments of msr.py).
MSR_ORDER = ['left_shoulder', 'right_shoulder', 'shoulder_center', 'spine',
             'left_hip', 'right_hip', 'hip_center', 'left_elbow', 'right_elbow',
             'left_wrist', 'right_wrist', 'left_hand', 'right_hand', 'left_knee',
             'right_knee', 'left_ankle', 'right_ankle', 'left_foot', 'right_foot',
             'head']


def msr_text(frames):
    """frames: [T, 20, 3] in MSR joint order -> 'x y z c' lines, 20 per frame."""
    lines = []
    for frame in frames:
        for x, y, z in frame:
            lines.append(f'{x:.6f} {y:.6f} {z:.6f} {0.5 if (x or y or z) else 0:.6f} ')
    return '\n'.join(lines) + '\n'


def write_msr(folder, name, frames):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(msr_text(frames))


def test_joint_order_mapping_matches_the_names():
    kinect = get_layout('kinect_v1').joint_names
    assert [MSR_ORDER[i] for i in MSR_TO_KINECT_V1] == list(kinect)


def test_parse_reorders_and_drops_zero_frames(tmp_path):
    frames = np.zeros((4, 20, 3))
    frames[1:] = np.arange(1, 21)[None, :, None] * np.array([1.0, 10.0, 100.0])
    frames[2] += 0.25  # frame 0 is all zero: dropped
    path = tmp_path / 'a01_s01_e01_skeleton3D.txt'
    path.write_text(msr_text(frames))
    seq = read_msr_file(str(path))
    assert seq.shape == (3, 1, 20, 3) and seq.dtype == np.float32
    kinect = get_layout('kinect_v1').joint_names
    # The x coordinate is the 1-based MSR line of the joint.
    got = {kinect[k]: int(seq[0, 0, k, 0]) for k in range(20)}
    assert got['hip_center'] == 7 and got['head'] == 20
    assert got['left_shoulder'] == 1 and got['right_foot'] == 19
    assert np.allclose(seq[1, 0, :, 0], seq[0, 0, :, 0] + 0.25)


def test_dataset_split_and_skips(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / 'msr' / 'raw' / 'MSRAction3DSkeletonReal3D'
    for a, s, e in [(1, 1, 1), (1, 2, 1), (5, 3, 2), (20, 10, 3)]:
        write_msr(raw, f'a{a:02d}_s{s:02d}_e{e:02d}_skeleton3D.txt',
                  rng.normal(size=(int(rng.integers(5, 12)), 20, 3)))
    write_msr(raw, 'a02_s01_e01_skeleton3D.txt', np.zeros((3, 20, 3)))
    (raw / 'a03_s01_e01_skeleton3D.txt').write_text('')
    (raw / 'README.txt').write_text('not a sequence')
    with pytest.warns(SkippedSequenceWarning,
                      match=r'skipped 2 sequence.*a02_s01_e01_skeleton3D.txt, '
                            r'.*a03_s01_e01_skeleton3D.txt'):
        train = MSRAction3D(tmp_path / 'msr', num_frames=10)
    test = MSRAction3D(tmp_path / 'msr', split='test', num_frames=10)
    assert train.meta('subject').tolist() == [1, 3]
    assert test.meta('subject').tolist() == [2, 10]
    assert train.meta('y').tolist() == [0, 4] and test.meta('y').tolist() == [0, 19]
    data = test[1]
    assert data.x.shape == (20, 10, 3) and data.repetition.item() == 3
    assert data.source == 'MSRAction3DSkeletonReal3D/a20_s10_e03_skeleton3D.txt'
    assert len(train.class_names) == 20


def test_errors(tmp_path):
    raw = tmp_path / 'msr' / 'raw'
    write_msr(raw, 'a21_s01_e01_skeleton3D.txt', np.ones((2, 20, 3)))
    with pytest.raises(ValueError, match='expected an action number 01..20'):
        MSRAction3D(tmp_path / 'msr')
    path = raw / 'a21_s01_e01_skeleton3D.txt'
    path.write_text('\n'.join(msr_text(np.ones((2, 20, 3))).splitlines()[:-3]))
    with pytest.raises(ValueError, match=r'line 37: expected 20 joint lines per '
                                         r'frame \(got 37 lines'):
        read_msr_file(str(path))
    with pytest.raises(FileNotFoundError, match=r'no raw file found.*skeleton3D'):
        MSRAction3D(tmp_path / 'none')


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    text = msr_text(rng.normal(size=(data.draw(st.integers(1, 2)), 20, 3)))
    path = fuzz_dir / 'a01_s01_e01_skeleton3D.txt'
    path.write_bytes(corrupt(data, text))
    try:
        seq = read_msr_file(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert seq.shape[1:] == (1, 20, 3) and np.isfinite(seq).all()
        assert torch.from_numpy(seq).abs().sum(dim=(1, 2, 3)).gt(0).all()
