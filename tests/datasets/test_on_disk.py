import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import NTURGBD, SkippedSequenceWarning
from tcmp_pyg.datasets.on_disk import (OnDiskSamples, npy_header,
                                       on_disk_file_names, read_parallel,
                                       remove_stale_tmp, save_on_disk)
from test_ntu import SAMPLES, ntu_text, scene

REPO = Path(__file__).resolve().parents[2]
ignore_skipped = pytest.mark.filterwarnings(
    'ignore::tcmp_pyg.datasets.parsing.SkippedSequenceWarning')


@pytest.fixture
def ntu_root(tmp_path):
    """The samples of test_ntu.py's tree (both variants), one sample without
    any body and one listed as missing."""
    rng = np.random.default_rng(1)
    raw = tmp_path / 'ntu' / 'raw' / 'nturgb+d_skeletons'
    raw.mkdir(parents=True)
    for s, c, p, a in SAMPLES + [(1, 3, 9, 7), (4, 2, 10, 12)]:
        name = f'S{s:03d}C{c:03d}P{p:03d}R001A{a:03d}.skeleton'
        (raw / name).write_text(ntu_text(scene(rng, T=int(rng.integers(3, 7)))))
    (raw / 'S001C003P007R001A005.skeleton').write_text(ntu_text([[], []]))
    (raw / 'S001C001P008R002A009.skeleton').write_text('listed missing')
    (tmp_path / 'ntu' / 'raw' / 'NTU_RGBD_samples_with_missing_skeletons.txt'
     ).write_text('S001C001P008R002A009\n')
    return tmp_path / 'ntu'


def processed(root):
    folder = root / 'processed'
    return sorted(f for f in os.listdir(folder) if f.startswith('ntu_')) \
        if folder.is_dir() else []


def assert_same_graphs(a, b):
    assert len(a) == len(b)
    for i in range(len(a)):
        da, db = a[i], b[i]
        assert sorted(da.keys()) == sorted(db.keys())
        for key in da.keys():
            va, vb = da[key], db[key]
            if isinstance(va, torch.Tensor):
                assert va.dtype == vb.dtype and torch.equal(va, vb), key
            else:
                assert va == vb, key


@ignore_skipped
@pytest.mark.parametrize('variant, benchmark', [
    ('60', 'xsub'), ('60', 'xview'), ('120', 'xsub'), ('120', 'xset')])
def test_on_disk_gives_the_same_graphs_metadata_and_splits(ntu_root, variant,
                                                           benchmark):
    for split in ('train', 'test'):
        kwargs = dict(variant=variant, benchmark=benchmark, split=split,
                      num_frames=8, num_workers=0)
        mem = NTURGBD(ntu_root, on_disk=False, **kwargs)
        disk = NTURGBD(ntu_root, on_disk=True, **kwargs)
        assert not mem.on_disk and disk.on_disk
        assert repr(disk) == repr(mem) and len(disk) > 0
        assert_same_graphs(mem, disk)
        for key in ('y', 'length', 'subject', 'camera', 'setup', 'source'):
            assert disk.has_meta(key)
            if key == 'source':
                assert disk.meta(key) == mem.meta(key)
                assert disk.all_meta(key) == mem.all_meta(key)
            else:
                assert torch.equal(disk.meta(key), mem.meta(key))
                assert torch.equal(disk.all_meta(key), mem.all_meta(key))
        assert disk.num_classes == mem.num_classes == int(variant)
        batch_m = next(iter(DataLoader(mem, batch_size=3)))
        batch_d = next(iter(DataLoader(disk, batch_size=3)))
        for key in ('x', 'y', 'edge_index', 'batch', 'subject'):
            assert torch.equal(batch_m[key], batch_d[key])
        assert batch_m.source == batch_d.source
    name = f'ntu_{variant}_T8_v1'
    # Each storage keeps the data warnings (one sample without a body) beside it.
    assert processed(ntu_root) == [f'{name}.index.pt', f'{name}.npy',
                                   f'{name}.npy.warnings.json', f'{name}.pt',
                                   f'{name}.pt.warnings.json']
    x = np.load(ntu_root / 'processed' / f'{name}.npy', mmap_mode='r')
    assert x.dtype == np.float32 and x.shape == (len(disk.all_meta('y')), 50, 8, 3)
    assert np.array_equal(x[disk.indices()[0]], disk[0].x.numpy())


def test_parallel_processing_matches_serial(ntu_root):
    with pytest.warns(SkippedSequenceWarning, match='without any body: '
                                                    'S001C003P007R001A005'):
        serial = NTURGBD(ntu_root, num_frames=8, on_disk=True, num_workers=0)
    x_serial = (ntu_root / 'processed' / 'ntu_60_T8_v1.npy').read_bytes()
    with pytest.warns(SkippedSequenceWarning, match='S001C003P007R001A005'):
        parallel = NTURGBD(ntu_root, num_frames=8, on_disk=True, num_workers=2,
                           force_reload=True)
    assert (ntu_root / 'processed' / 'ntu_60_T8_v1.npy').read_bytes() == x_serial
    assert_same_graphs(serial, parallel)


@ignore_skipped
def test_storage_is_chosen_by_the_estimated_size(ntu_root, monkeypatch):
    small = NTURGBD(ntu_root, num_frames=8)  # on_disk=None: a few KB
    assert not small.on_disk and processed(ntu_root) == [
        'ntu_60_T8_v1.pt', 'ntu_60_T8_v1.pt.warnings.json']
    files = 9  # variant 60: actions <= 60, setups <= 17, incl. the two skipped
    assert small.estimated_nbytes() == files * 50 * 8 * 3 * 4
    monkeypatch.setattr('tcmp_pyg.datasets.base.ON_DISK_THRESHOLD',
                        small.estimated_nbytes() - 1)
    large = NTURGBD(ntu_root, num_frames=8)
    assert large.on_disk and 'ntu_60_T8_v1.npy' in processed(ntu_root)
    assert_same_graphs(small, large)


def test_a_bad_file_fails_in_a_worker_with_its_name_and_line(ntu_root):
    bad = ntu_root / 'raw' / 'nturgb+d_skeletons' / 'S002C001P003R001A004.skeleton'
    bad.write_text('1\n1\n72057594037931101 0 1 1 1 1 0 x 0.3 2\n')
    with pytest.raises(ValueError, match=re.escape(f'{bad}, line 3: expected a number')):
        NTURGBD(ntu_root, num_frames=8, on_disk=True, num_workers=2)
    assert processed(ntu_root) == []


class FailAfter:
    """A pre_filter that raises at sample ``after`` while ``armed`` (its repr,
    hence the processed file name, does not depend on it)."""
    def __init__(self, after, armed=True):
        self.after, self.armed, self.seen = after, armed, 0

    def __call__(self, data):
        self.seen += 1
        if self.armed and self.seen > self.after:
            raise RuntimeError('interrupted')
        return True

    def __repr__(self):
        return 'FailAfter()'


@ignore_skipped
def test_an_error_midway_leaves_no_file_a_later_run_would_trust(ntu_root):
    with pytest.raises(RuntimeError, match='interrupted'):
        NTURGBD(ntu_root, num_frames=8, on_disk=True, num_workers=2,
                pre_filter=FailAfter(3))
    assert processed(ntu_root) == []  # neither the pair nor temporary files
    ds = NTURGBD(ntu_root, num_frames=8, on_disk=True, pre_filter=FailAfter(3, False))
    assert_same_graphs(ds, NTURGBD(ntu_root, num_frames=8, on_disk=False))


SLOW_RUN = textwrap.dedent('''
    import sys, time
    from tcmp_pyg.datasets import NTURGBD

    class Slow:
        def __call__(self, data):
            time.sleep(0.5)
            return True

        def __repr__(self):
            return 'Slow()'

    NTURGBD(sys.argv[1], num_frames=8, on_disk=True, num_workers=0,
            pre_filter=Slow())
''')


class Slow:
    def __call__(self, data):
        return True

    def __repr__(self):
        return 'Slow()'


@ignore_skipped
def test_a_killed_processing_leaves_no_file_a_later_run_would_trust(ntu_root):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, '-c', SLOW_RUN, str(ntu_root)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(f.endswith('.tmp') for f in processed(ntu_root)):
            assert proc.poll() is None, 'the processing ended before it was killed'
            assert time.monotonic() < deadline, 'no temporary file appeared'
            time.sleep(0.05)
        time.sleep(0.6)  # a sample or two written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = processed(ntu_root)
    assert left and all(f.endswith('.tmp') for f in left)
    ds = NTURGBD(ntu_root, num_frames=8, on_disk=True, pre_filter=Slow())
    assert not any(f.endswith('.tmp') for f in processed(ntu_root))  # cleaned
    assert_same_graphs(ds, NTURGBD(ntu_root, num_frames=8, on_disk=False))


@ignore_skipped
def test_corrupt_or_mismatched_files_say_what_to_delete(ntu_root):
    NTURGBD(ntu_root, num_frames=8, on_disk=True)
    npy = ntu_root / 'processed' / 'ntu_60_T8_v1.npy'
    npy.write_bytes(npy.read_bytes()[:-100])
    with pytest.raises(RuntimeError, match=r"processed files '.*npy' and "
                                           r"'.*index\.pt' could not be loaded.*"
                                           r"stale or corrupt: delete '.*processed'"):
        NTURGBD(ntu_root, num_frames=8, on_disk=True)
    NTURGBD(ntu_root, num_frames=8, on_disk=True, force_reload=True)
    # An index of another processing (another sample count) beside the array:
    NTURGBD(ntu_root, variant='120', num_frames=8, on_disk=True)
    folder = ntu_root / 'processed'
    (folder / 'ntu_60_T8_v1.index.pt').write_bytes(
        (folder / 'ntu_120_T8_v1.index.pt').read_bytes())
    with pytest.raises(RuntimeError, match=r'holds float32 of shape \(7, 50, 8, 3\) '
                                           r'but its index .* describes float32 '
                                           r'of shape \(10, 50, 8, 3\)'):
        NTURGBD(ntu_root, num_frames=8, on_disk=True)


@ignore_skipped
def test_pickling_and_loader_workers_do_not_copy_the_array(ntu_root):
    ds = NTURGBD(ntu_root, num_frames=8, on_disk=True)
    ds[0]  # maps the file in this process
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the index, not the array
    assert_same_graphs(pickle.loads(blob), ds)
    serial = list(DataLoader(ds, batch_size=2))
    workers = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(serial) == len(workers) == 2
    for a, b in zip(serial, workers):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


class ScaleX:
    def __call__(self, data):
        data.x = data.x * 2
        return data

    def __repr__(self):
        return 'ScaleX()'


def odd_subject(data):
    return data.subject.item() % 2 == 1


@ignore_skipped
def test_pre_transform_and_pre_filter_on_disk(ntu_root):
    kwargs = dict(variant='120', num_frames=8, pre_transform=ScaleX(),
                  pre_filter=odd_subject)
    disk = NTURGBD(ntu_root, on_disk=True, **kwargs)
    mem = NTURGBD(ntu_root, on_disk=False, **kwargs)
    assert_same_graphs(disk, mem)
    assert set(disk.all_meta('subject').remainder(2).tolist()) == {1}
    plain = NTURGBD(ntu_root, variant='120', num_frames=8, on_disk=True)
    source = plain.meta('source').index(disk[0].source)
    assert torch.equal(disk[0].x, 2 * plain[source].x)


def sample(T=4, y=0, **extra):
    data = Data(x=torch.rand(6, T, 3), edge_index=torch.tensor([[0, 1], [1, 0]]),
                y=torch.tensor([y]), source=f's{y}')
    for key, value in extra.items():
        data[key] = value
    return data


@pytest.mark.parametrize('samples, match', [
    ([sample(), sample(T=5)], r"'x' of every sample to have shape \(6, 4, 3\) "
                              r"for the on-disk storage \(got \(6, 5, 3\) for sample 1\)"),
    ([sample(), Data(x=torch.zeros(6, 4, 3, dtype=torch.float64))],
     r"'x' of every sample to be a float32 tensor .* \(got torch.float64 for sample 1\)"),
    ([sample(), sample(length=torch.tensor([3]))],
     r"attributes \['source', 'y'\] \(got \['length', 'source', 'y'\]"),
    ([sample(), sample(y=[1, 2])],
     r"attribute 'y' of every sample to be a int64 tensor of shape \(1,\)"),
    ([sample(), Data(x=torch.rand(6, 4, 3), edge_index=torch.tensor([[1], [0]]),
                     y=torch.tensor([0]), source='s')],
     r"share one 'edge_index' .* \(sample 1 differs from sample 0\)"),
    ([], 'nothing to store'),
])
def test_save_on_disk_checks_the_samples_and_leaves_nothing(tmp_path, samples, match):
    x_path, index_path = str(tmp_path / 'd.npy'), str(tmp_path / 'd.index.pt')
    with pytest.raises(ValueError, match=match):
        save_on_disk(iter(samples), x_path, index_path, empty_message='nothing to store')
    assert os.listdir(tmp_path) == []


def test_save_and_read_back(tmp_path):
    samples = [sample(y=k, length=torch.tensor([k + 1])) for k in range(5)]
    x_path, index_path = str(tmp_path / 'd.npy'), str(tmp_path / 'd.index.pt')
    assert save_on_disk(samples, x_path, index_path, capacity=2) == 5  # grows
    stored = OnDiskSamples(x_path, index_path)
    assert len(stored) == 5 and repr(stored) == 'OnDiskSamples(5)'
    assert torch.equal(stored.meta('y'), torch.arange(5))
    assert stored.meta('source') == [f's{k}' for k in range(5)]
    for k, expected in enumerate(samples):
        got = stored.get(k)
        assert torch.equal(got.x, expected.x) and torch.equal(got.y, expected.y)
        assert got.source == expected.source and torch.equal(got.length, expected.length)
    got = stored.get(0)
    got.y += 10  # a copy: the index is untouched
    assert stored.get(0).y.item() == 0
    assert np.load(x_path).shape == (5, 6, 4, 3)
    assert on_disk_file_names('ntu_60_T64_v1.pt') == ['ntu_60_T64_v1.npy',
                                                      'ntu_60_T64_v1.index.pt']


@pytest.mark.parametrize('shape', [(0,), (2, 5, 4, 3), (114480, 50, 300, 3)])
def test_npy_header_is_read_by_numpy(tmp_path, shape):
    header = npy_header(shape)
    assert len(header) == 128
    path = tmp_path / 'a.npy'
    if len(shape) > 1 and shape[0] > 100:  # the header alone
        path.write_bytes(header)
        with open(path, 'rb') as f:
            assert np.lib.format.read_magic(f) == (1, 0)
            assert np.lib.format.read_array_header_1_0(f) == (shape, False,
                                                              np.dtype('<f4'))
        return
    values = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    path.write_bytes(header + values.tobytes())
    assert np.array_equal(np.load(path), values)


def test_remove_stale_tmp_keeps_running_processes(tmp_path):
    target = tmp_path / 'ntu_60_T64_v1.npy'
    dead = tmp_path / f'ntu_60_T64_v1.npy.{2**31 - 1}.tmp'
    alive = tmp_path / f'ntu_60_T64_v1.npy.{os.getpid()}.tmp'
    other = tmp_path / 'ntu_60_T64_v1.index.pt.123.tmp'
    for f in (dead, alive, other):
        f.write_bytes(b'')
    assert remove_stale_tmp(str(target)) == [str(dead)]
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, other.name])


def square(k):
    if k == 13:
        raise ValueError('item 13 is bad')
    return k * k


@pytest.mark.parametrize('num_workers', [0, 2])
def test_read_parallel_keeps_order_and_raises_worker_errors(num_workers):
    items = list(range(40))
    assert list(read_parallel(square, items[:13], num_workers, chunk_size=3)) == \
        [k * k for k in range(13)]
    with pytest.raises(ValueError, match='item 13 is bad'):
        list(read_parallel(square, items, num_workers, chunk_size=3))
    results = read_parallel(square, items[:13], num_workers, chunk_size=2)
    assert next(results) == 0
    results.close()  # a consumer that stops early shuts the workers down
    with pytest.raises(ValueError, match="'num_workers' to be an integer >= 0"):
        list(read_parallel(square, items, -1))


def test_invalid_storage_arguments(ntu_root):
    with pytest.raises(ValueError, match=r"'on_disk' to be one of \[False, True, None\]"):
        NTURGBD(ntu_root, on_disk='yes')
    with pytest.raises(ValueError, match="'num_workers' to be an integer >= 0"):
        NTURGBD(ntu_root, num_workers=-1)
