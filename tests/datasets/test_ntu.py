import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import (NTURGBD, SkippedFileWarning, SkippedSequenceWarning,
                               parse_ntu_skeleton)
from tcmp_pyg.datasets.ntu import (NTUSample, parse_ntu_name, read_ntu_missing,
                                   read_ntu_sample)

BODY_INFO = '0 1 1 1 1 0 -0.2372897 0.3077246 2'
JOINT_REST = '277.419 191.8218 1036.233 519.1677 -0.2059419 0.05349275 0.9692602 -0.1239271 2'


def ntu_text(frames):
    """frames: per frame a list of (bodyID, joints [25, 3]) -> .skeleton text."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f'{body_id} {BODY_INFO}')
            lines.append('25')
            lines += [f'{x:.7g} {y:.7g} {z:.7g} {JOINT_REST}' for x, y, z in joints]
    return '\r\n'.join(lines) + '\r\n'  # the release uses CRLF line ends


A, B, C = '72057594037931101', '72057594037931102', '72057594037931103'


def scene(rng, T=5):
    """Frame 0 has no body; A moves a lot, B a little (frames 2-4 only), and
    C is a static ghost in frames 1-2."""
    frames = [[]]
    for t in range(1, T):
        bodies = [(A, rng.normal(0, 1, (25, 3)) + t)]
        if t >= 2:
            bodies.append((B, rng.normal(0, 0.1, (25, 3)) + 5))
        if t in (1, 2):
            bodies.append((C, np.full((25, 3), 9.0)))
        frames.append(bodies)
    return frames


def test_parser_drops_empty_frames_and_keeps_the_most_moving_bodies(tmp_path):
    frames = scene(np.random.default_rng(0))
    path = tmp_path / 'S001C001P001R001A001.skeleton'
    path.write_text(ntu_text(frames))
    seq = parse_ntu_skeleton(str(path))
    assert seq.shape == (4, 2, 25, 3) and seq.dtype == np.float32
    a = np.stack([dict(f)[A] for f in frames[1:]])
    assert np.allclose(seq[:, 0], a, atol=1e-5)
    assert (seq[0, 1] == 0).all()  # B first appears in frame 2 (kept index 1)
    assert np.allclose(seq[1:, 1], np.stack([dict(f)[B] for f in frames[2:]]), atol=1e-5)
    assert not np.isclose(seq, 9.0).all(axis=(2, 3)).any()  # the ghost is gone
    # One body only: the second slot stays zero; no body at all: T == 0.
    path.write_text(ntu_text([[(A, np.ones((25, 3)))], [(A, np.ones((25, 3)))]]))
    one = parse_ntu_skeleton(str(path))
    assert one.shape == (2, 2, 25, 3) and (one[:, 1] == 0).all()
    path.write_text(ntu_text([[], []]))
    assert parse_ntu_skeleton(str(path)).shape == (0, 2, 25, 3)


def test_repeated_body_id_in_a_frame_is_kept_apart(tmp_path):
    path = tmp_path / 'x.skeleton'
    path.write_text(ntu_text([[(A, np.zeros((25, 3))), (A, np.ones((25, 3)))]]))
    seq = parse_ntu_skeleton(str(path))
    assert seq.shape == (1, 2, 25, 3)
    assert sorted(seq[0].sum(axis=(1, 2)).tolist()) == [0.0, 75.0]


@pytest.mark.parametrize('edit, match', [
    (lambda ls: ls[:1] + ['x'] + ls[2:],
     r'line 2: expected an integer \(body count of frame 1\)'),
    (lambda ls: ls[:3] + ['24'] + ls[4:],
     r'line 4: expected joint count of frame 1, body 1 to be 25 \(got 24\)'),
    (lambda ls: ls[:10], r'line 10: the file ends while reading the 25 joint lines'),
    (lambda ls: ls[:2] + [ls[2].rsplit(' ', 1)[0]] + ls[3:],
     r'line 3: expected 10 whitespace'),
    (lambda ls: ls[:2] + ['1.5 ' + BODY_INFO] + ls[3:],
     r'line 3: expected an integer \(bodyID\)'),
    (lambda ls: ls[:5] + [ls[5].replace('277.419', 'nan')] + ls[6:],
     r'line 6: expected a finite'),
    (lambda ls: ls + ['1'], r'line 30: expected the end of the file after the 1 frame\(s\)'),
    (lambda ls: ['2'] + ls[1:], 'the file ends while reading body count of frame 2'),
    (lambda ls: ['1 2'] + ls[1:], r'line 1: expected one integer \(frame count\)'),
    (lambda ls: [], 'expected a frame count on the first line'),
])
def test_parser_errors(tmp_path, edit, match):
    lines = ntu_text([[(A, np.ones((25, 3)))]]).splitlines()
    path = tmp_path / 'S001C001P001R001A001.skeleton'
    path.write_text('\n'.join(edit(lines)) + '\n')
    with pytest.raises(ValueError, match=match):
        parse_ntu_skeleton(str(path))


def test_read_ntu_sample_is_what_the_dataset_stores(ntu_small):
    raw = ntu_small / 'raw' / 'nturgb+d_skeletons'
    with pytest.warns(SkippedSequenceWarning):
        ds = NTURGBD(ntu_small, num_frames=8, num_workers=0)
    source = 'nturgb+d_skeletons/S001C001P001R001A001.skeleton'
    data = read_ntu_sample(NTUSample(str(raw / 'S001C001P001R001A001.skeleton'),
                                     source, 8))
    stored = ds[ds.meta('source').index(source)]
    assert sorted(data.keys()) == sorted(stored.keys())
    assert torch.equal(data.x, stored.x) and data.source == stored.source
    assert read_ntu_sample(NTUSample(str(raw / 'S001C003P007R001A005.skeleton'),
                                     'S001C003P007R001A005.skeleton', 8)) is None


def test_parallel_in_memory_processing_matches_serial(ntu_small):
    with pytest.warns(SkippedSequenceWarning):
        serial = NTURGBD(ntu_small, variant='120', num_frames=8, num_workers=0)
    with pytest.warns(SkippedSequenceWarning):
        parallel = NTURGBD(ntu_small, variant='120', num_frames=8, num_workers=2,
                           force_reload=True)
    assert not parallel.on_disk and len(parallel) == len(serial)
    for a, b in zip(serial, parallel):
        assert torch.equal(a.x, b.x) and a.source == b.source


def test_names_and_missing_list(tmp_path):
    assert parse_ntu_name('S017C003P020R002A060.skeleton') == (17, 3, 20, 2, 60)
    assert parse_ntu_name('S17C003P020R002A060') is None
    path = tmp_path / 'missing.txt'
    path.write_text('missing skeleton samples\n\nS001C002P005R002A008\r\n'
                    'S001C002P006R001A008  \n')
    assert read_ntu_missing(str(path)) == {'S001C002P005R002A008',
                                           'S001C002P006R001A008'}


SAMPLES = [  # (setup, camera, subject, action); NTU-120 only from setup 18 on
    (1, 1, 1, 1), (1, 2, 3, 1), (2, 3, 2, 2), (2, 1, 4, 60),
    (17, 2, 6, 3), (18, 1, 45, 62), (19, 1, 1, 61), (21, 2, 5, 120),
]


@pytest.fixture
def ntu_small(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / 'ntu' / 'raw' / 'nturgb+d_skeletons'
    raw.mkdir(parents=True)
    for s, c, p, a in SAMPLES:
        name = f'S{s:03d}C{c:03d}P{p:03d}R001A{a:03d}.skeleton'
        (raw / name).write_text(ntu_text(scene(rng, T=int(rng.integers(3, 7)))))
    (raw / 'S001C003P007R001A005.skeleton').write_text(ntu_text([[], []]))  # no body
    (raw / 'S001C001P008R002A009.skeleton').write_text('not parsed: listed missing')
    (tmp_path / 'ntu' / 'raw' / 'NTU_RGBD_samples_with_missing_skeletons.txt').write_text(
        'S001C001P008R002A009\n')
    return tmp_path / 'ntu'


def test_ntu60_benchmarks(ntu_small):
    with pytest.warns(SkippedSequenceWarning,
                      match=r'skipped 1 sequence.*without any body: S001C003P007R001A005'):
        train = NTURGBD(ntu_small, num_frames=8)
    # variant 60: actions <= 60 and setups <= 17 only
    assert len(train.all_meta('y')) == 5
    assert train.meta('subject').tolist() == [1, 4, 2]  # in file-name order
    test = NTURGBD(ntu_small, split='test', num_frames=8)
    assert test.meta('subject').tolist() == [3, 6]
    xview = NTURGBD(ntu_small, benchmark='xview', num_frames=8)
    assert sorted(xview.meta('camera').tolist()) == [2, 2, 3]
    data = train[0]
    assert data.x.shape == (50, 8, 3) and data.y.item() == 0
    assert data.source == 'nturgb+d_skeletons/S001C001P001R001A001.skeleton'
    assert (data.setup.item(), data.camera.item(), data.replication.item()) == (1, 1, 1)
    assert len(train.class_names) == 60
    batch = next(iter(DataLoader(train, batch_size=3)))
    assert batch.x.shape == (3 * 50, 8, 3) and batch.y.shape == (3,)
    assert batch.edge_index.shape == (2, 3 * 2 * 24 * 2)


def test_ntu120_benchmarks(ntu_small):
    with pytest.warns(SkippedSequenceWarning):
        xsub = NTURGBD(ntu_small, variant='120', num_frames=8)
    assert len(xsub.all_meta('y')) == 8
    assert sorted(xsub.meta('subject').tolist()) == [1, 1, 2, 4, 5, 45]
    xset = NTURGBD(ntu_small, variant='120', benchmark='xset', split='test',
                   num_frames=8)
    assert sorted(xset.meta('setup').tolist()) == [1, 1, 17, 19, 21]
    assert xset.meta('y').max().item() == 119 and len(xset.class_names) == 120


def test_invalid_arguments_and_names(ntu_small, tmp_path):
    with pytest.raises(ValueError, match=r"'benchmark' to be one of \['xsub', 'xview'\]"):
        NTURGBD(ntu_small, benchmark='xset')
    with pytest.raises(ValueError, match=r"'variant' to be one of \['60', '120'\]"):
        NTURGBD(ntu_small, variant='90')
    (ntu_small / 'raw' / 'sample.skeleton').write_text('1\n0\n')
    with pytest.raises(ValueError, match=r'sample\.skeleton: expected a file name '
                                         r'SsssCcccPpppRrrrAaaa'):
        NTURGBD(ntu_small)
    with pytest.raises(FileNotFoundError, match=r'no raw file found.*rose1\.ntu\.edu\.sg'):
        NTURGBD(tmp_path / 'none')


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_parser_only_raises_clear_value_errors(data, corrupt, fuzz_dir):
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    frames = [[(A, rng.normal(size=(25, 3))), (B, rng.normal(size=(25, 3)))]
              [:data.draw(st.integers(0, 2))]
              for _ in range(data.draw(st.integers(1, 3)))]
    path = fuzz_dir / 'S001C001P001R001A001.skeleton'
    path.write_bytes(corrupt(data, ntu_text(frames)))
    try:
        seq = parse_ntu_skeleton(str(path))
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert seq.shape[1:] == (2, 25, 3) and np.isfinite(seq).all()
        assert torch.from_numpy(seq).dtype == torch.float32


@pytest.mark.parametrize('variant, name, match', [
    ('60', 'S001C001P001R001A000', r'S001C001P001R001A000\.skeleton: action code '
     r'A000 is outside NTU-60 \(expected A001-A060 in setups S001-S017\)'),
    ('60', 'S003C001P001R001A061', r'A061 is outside NTU-60 \(expected A001-A060'),
    ('120', 'S001C001P001R001A000', r'A000 is outside NTU-120 \(expected A001-A120 '
     r'in setups S001-S032\)'),
    ('120', 'S020C001P001R001A121', r'A121 is outside NTU-120'),
    ('60', 'S020C001P001R001A121', r'A121 is outside NTU RGB\+D \(expected A001-A120\)'),
    ('120', 'S033C001P001R001A001', r'setup code S033 is outside NTU RGB\+D'),
])
def test_action_code_outside_the_variant_is_refused(ntu_small, variant, name, match):
    raw = ntu_small / 'raw' / 'nturgb+d_skeletons'
    (raw / f'{name}.skeleton').write_text(ntu_text([[(A, np.ones((25, 3)))]]))
    with pytest.raises(ValueError, match=match):
        NTURGBD(ntu_small, variant=variant, num_frames=8, num_workers=0)
    with pytest.raises(ValueError, match=r'action code A000 is outside'):
        read_ntu_sample(NTUSample(str(raw / 'x.skeleton'),
                                  'S001C001P001R001A000.skeleton', 8))


def test_on_error_skip_processes_the_rest_and_reports_every_bad_file(ntu_small):
    raw = ntu_small / 'raw' / 'nturgb+d_skeletons'
    good = raw / 'S001C001P001R001A001.skeleton'
    text = good.read_text()
    (raw / 'S002C001P009R001A003.skeleton').write_text(text[:len(text) // 2])
    (raw / 'S002C002P009R001A003.skeleton').write_text(text[:-40])  # mid-line
    (raw / 'S002C003P009R001A000.skeleton').write_text(text)
    with pytest.raises(ValueError, match=r'S002C003P009R001A000\.skeleton: action '
                                         r'code A000 is outside NTU-60'):
        NTURGBD(ntu_small, num_frames=8, num_workers=0)  # on_error='raise'
    for workers, on_disk in ((0, False), (2, True)):
        with pytest.warns(SkippedFileWarning) as record:
            ds = NTURGBD(ntu_small, num_frames=8, num_workers=workers,
                         on_disk=on_disk, on_error='skip', force_reload=True)
        skipped = [w for w in record if w.category is SkippedFileWarning]
        assert len(skipped) == 1  # one warning for all of them
        message = str(skipped[0].message)
        assert 'skipped 3 raw file(s)' in message and "on_error='skip'" in message
        lines = message.split('\n')[1:]
        assert [line.split('.skeleton')[0][-20:] for line in lines] == [
            'S002C003P009R001A000', 'S002C001P009R001A003', 'S002C002P009R001A003']
        assert 'action code A000 is outside NTU-60' in lines[0]
        assert 'the file ends while reading' in lines[1]  # truncated
        assert 'expected 12 whitespace-separated values' in lines[2]
        # Every other sample is there; the report lists the same lines.
        assert len(ds.all_meta('y')) == 5
        report = ntu_small / 'processed' / (
            'ntu_60_T8_skip_v1.skipped.txt')
        assert str(report) in message and ds.skip_report_path == str(report)
        assert report.read_text().splitlines() == [line.strip() for line in lines]
    # From the processed cache: the same warning again.
    with pytest.warns(SkippedFileWarning, match='skipped 3 raw file'):
        NTURGBD(ntu_small, num_frames=8, on_disk=True, on_error='skip')
    with pytest.raises(ValueError, match=r"'on_error' to be one of \['raise', 'skip'\]"):
        NTURGBD(ntu_small, on_error='ignore')
