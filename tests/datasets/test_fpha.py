import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import FPHA, SkippedSequenceWarning
from tcmp_pyg.datasets.fpha import read_fpha_skeleton, read_fpha_split

SPLIT = """Training 4
Subject_1/charge_cell_phone/1 0
Subject_1/open_milk/2 1
Subject_2/charge_cell_phone/1 0
Subject_2/open_milk/1 1
Test 3
Subject_3/open_milk/1 1
Subject_3/charge_cell_phone/3 0
Subject_4/write/1 44
"""


def skeleton_text(rng, T):
    # frame index, then 21 joints x (x y z) in millimetres
    return '\n'.join(f'{t} ' + ' '.join(f'{v:.4f}' for v in rng.normal(0, 80, 63))
                     for t in range(T)) + '\n'


@pytest.fixture
def fpha_small(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / 'fpha' / 'raw'
    raw.mkdir(parents=True)
    (raw / 'data_split_action_recognition.txt').write_text(SPLIT)
    for line in SPLIT.splitlines():
        if line.startswith('Subject_'):
            folder = raw / 'Hand_pose_annotation_v1' / line.split()[0]
            folder.mkdir(parents=True)
            (folder / 'skeleton.txt').write_text(skeleton_text(rng, int(rng.integers(5, 30))))
    # Two empty files, as a few in the release.
    for seq in ('Subject_2/open_milk/1', 'Subject_4/write/1'):
        (raw / 'Hand_pose_annotation_v1' / seq / 'skeleton.txt').write_text('')
    return tmp_path / 'fpha'


def test_fpha_split_labels_and_empty_files(fpha_small):
    with pytest.warns(SkippedSequenceWarning) as record:
        train = FPHA(fpha_small, num_frames=16)
    assert len(record) == 1  # ONE warning listing every empty file
    assert 'Subject_2/open_milk/1, Subject_4/write/1' in str(record[0].message)
    test = FPHA(fpha_small, split='test', num_frames=16)
    assert train.meta('source') == ['Subject_1/charge_cell_phone/1',
                                    'Subject_1/open_milk/2',
                                    'Subject_2/charge_cell_phone/1']
    assert train.meta('y').tolist() == [0, 1, 0]
    assert test.meta('subject').tolist() == [3, 3]
    assert train.class_names[:2] == ('charge_cell_phone', 'open_milk')
    assert train.class_names[44] == 'class_44'  # only an empty file had it
    assert len(train.class_names) == 45
    data = train[1]
    assert data.x.shape == (21, 16, 3) and data.action == 'open_milk'
    assert data.train.item() == 1 and data.edge_index.shape == (2, 40)
    batch = next(iter(DataLoader(train, batch_size=3)))
    assert batch.x.shape == (3 * 21, 16, 3) and batch.y.shape == (3,)


def test_missing_listed_file(fpha_small):
    (fpha_small / 'raw' / 'Hand_pose_annotation_v1' / 'Subject_1' / 'open_milk'
     / '2' / 'skeleton.txt').unlink()
    with pytest.raises(FileNotFoundError, match='Subject_1/open_milk/2/skeleton.txt: '
                                                'listed in data_split'):
        FPHA(fpha_small)


def test_missing_raw(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"raw files not found .*missing .*"
                                                r"data_split_action_recognition\.txt"
                                                r".*guiggh\.github\.io"):
        FPHA(tmp_path)


@pytest.mark.parametrize('text, match', [
    ('Subject_1/a/1 0\n', "line 1: expected a 'Training N' header"),
    ('Training 2\nSubject_1/a/1 0\n', r"line 1: 'Training 2' announces 2 entries \(got 1"),
    ('Training x\n', r'line 1: expected an integer \(entry count\)'),
    ('Training 1\nSubject_1/a/1 45\n', r'line 2: expected a label in 0\.\.44'),
    ('Training 1\nSubject_1/a/1 -1\n', r'line 2: expected label >= 0'),
    ('Training 1\nSubject_1/a 0\n', 'line 2: expected a sequence path'),
    ('Training 1\nPerson_1/a/1 0\n', 'line 2: expected a sequence path'),
    ('Training 1\nSubject_1/../1 0\n', 'line 2: expected a sequence path'),
    ('Training 2\nSubject_1/a/1 0\nSubject_1/b/1 0\n', "line 3: label 0 is action 'a'"),
    ('Training 2\nSubject_1/a/1 0\nSubject_1/a/1 0\n', 'line 3: .* listed twice'),
    ('Training 1\nSubject_1/a/1\n', r"line 2: expected 'Subject_k/<action>/<seq> <label>'"),
    ('', 'empty file'),
])
def test_split_file_errors(tmp_path, text, match):
    path = tmp_path / 'data_split_action_recognition.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_fpha_split(str(path))


def test_split_file_with_crlf(tmp_path):
    path = tmp_path / 'split.txt'
    path.write_bytes(SPLIT.replace('\n', '\r\n').encode())
    entries = read_fpha_split(str(path))
    assert len(entries) == 7 and sum(e.train for e in entries) == 4


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_skeleton_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    path = fuzz_dir / 'skeleton.txt'
    path.write_bytes(corrupt(data, skeleton_text(rng, data.draw(st.integers(1, 3)))))
    try:
        seq = read_fpha_skeleton(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:  # T == 0 (empty) is the documented skip case
        assert seq.shape[1:] == (1, 21, 3) and np.isfinite(seq).all()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_split_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    path = fuzz_dir / 'data_split_action_recognition.txt'
    path.write_bytes(corrupt(data, SPLIT))
    try:
        entries = read_fpha_split(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert all(0 <= e.label < 45 for e in entries)
        assert len({e.path for e in entries}) == len(entries)
        assert torch.tensor([e.train for e in entries]).dtype == torch.bool


def test_file_of_another_format_is_not_called_truncated(tmp_path):
    # 26-joint hand data, one joint (x y z) a line: not FPHA's one frame a line.
    rng = np.random.default_rng(0)
    path = tmp_path / 'skeleton.txt'
    path.write_text(''.join(f'{x:.4f} {y:.4f} {z:.4f}\n'
                            for x, y, z in rng.normal(size=(2 * 26, 3))))
    with pytest.raises(ValueError) as info:
        read_fpha_skeleton(str(path))
    message = str(info.value)
    assert 'truncated' not in message
    assert message.startswith(f'{path}, line 1: expected 64 whitespace-separated '
                              f'values')
    assert message.endswith('(got 3) (every line has 3: a file of another format?)')
