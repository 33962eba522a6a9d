import os
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import SkeletonArrays, UnsafePickleError
from tcmp_pyg.datasets.arrays import CACHE_SUFFIX, repeat_period, trailing_length
from tcmp_pyg.datasets.base import skeleton_to_data
from tcmp_pyg.layouts import NTU, SkeletonLayout
from tcmp_pyg.nn import build_model
from tcmp_pyg.transforms import CenterJoint, resample_frames

LENGTHS = [12, 40, 7, 300, 25]  # true lengths; the file pads to 300
LABELS = [3, 0, 2, 1, 3]
NAMES = [f'S001C001P00{k}R001A00{k}.skeleton' for k in range(5)]


def stgcn_array(lengths=LENGTHS, seed=0, T=300, V=25, M=2, C=3):
    """(N, C, T, V, M) as ST-GCN's gendata writes it: trailing frames zero,
    body 1 present only in sample 1 (two-person action), zero elsewhere."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), C, T, V, M), dtype=np.float32)
    for n, length in enumerate(lengths):
        x[n, :, :length, :, 0] = rng.normal(size=(C, length, V))
        if n == 1:
            x[n, :, :length, :, 1] = rng.normal(size=(C, length, V))
    x[0, :, 5] = 0.0  # a lost frame in the middle stays a (zero) frame
    return x


def write_stgcn(folder: Path, x=None, labels=LABELS, names=NAMES, protocol=4):
    x = stgcn_array() if x is None else x
    data, label = folder / 'train_data_joint.npy', folder / 'train_label.pkl'
    np.save(data, x)
    with open(label, 'wb') as f:  # as ST-GCN's tools/ntu_gendata.py
        pickle.dump((list(names), list(labels)), f, protocol=protocol)
    return data, label, x


def expected_x(sample, num_frames, bodies=2):
    """Independent reference: trim trailing zero frames, resample, node-first."""
    C, T, V, M = sample.shape
    length = max(i for i in range(T) if np.any(sample[:, i] != 0)) + 1
    seq = torch.from_numpy(sample[:, :length]).permute(1, 3, 2, 0)  # T, M, V, C
    if M < bodies:
        seq = torch.cat([seq, seq.new_zeros(length, bodies - M, V, C)], dim=1)
    seq = resample_frames(seq, num_frames, dim=0)
    return seq.reshape(num_frames, bodies * V, C).transpose(0, 1), length


def cache_files(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.pt')
                  and f.startswith('arrays_'))


def test_npy_and_label_pickle_become_graphs(tmp_path):
    data, label, x = write_stgcn(tmp_path)
    ds = SkeletonArrays(data, label, 'ntu', num_frames=16)
    assert repr(ds) == 'SkeletonArrays(5)'
    assert ds.layout == NTU
    assert ds.class_names == ('0', '1', '2', '3')
    assert ds.meta('source') == NAMES
    assert ds.meta('y').tolist() == LABELS
    assert ds.meta('length').tolist() == LENGTHS
    for n in range(5):
        d = ds[n]
        ref, length = expected_x(x[n], 16)
        assert d.x.shape == (50, 16, 3) and d.x.dtype == torch.float32
        assert torch.allclose(d.x, ref, atol=1e-6)
        assert d.length.tolist() == [length]
        assert torch.equal(d.edge_index, NTU.edge_index())
    # The zero-padded second body stays zeros; the real one does not.
    assert torch.all(ds[0].x[25:] == 0) and torch.any(ds[1].x[25:] != 0)
    # A zero frame before the end is kept: sample 0 still has 12 frames.
    assert ds[0].length.item() == 12


def test_path_is_memory_mapped_not_read_whole(tmp_path, monkeypatch):
    x = stgcn_array(lengths=[300] * 64, seed=1)  # 11.5 MB
    data, label, _ = write_stgcn(tmp_path, x, labels=[0] * 64,
                                 names=[str(k) for k in range(64)])
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        out = real_load(*args, **kwargs)
        calls.append((kwargs.get('mmap_mode'), type(out)))
        return out

    monkeypatch.setattr(np, 'load', spy)
    tracemalloc.start()
    try:
        ds = SkeletonArrays(data, label, 'ntu', num_frames=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert calls == [('r', np.memmap)]
    assert isinstance(ds.array, np.memmap)
    assert peak < x.nbytes / 4, f'peak {peak} of a {x.nbytes}-byte file'
    ref, _ = expected_x(x[63], 8)
    assert torch.allclose(ds[63].x, ref, atol=1e-6)


def test_array_in_memory_matches_file_and_writes_nothing(tmp_path, monkeypatch):
    data, label, x = write_stgcn(tmp_path)
    from_file = SkeletonArrays(data, label, 'ntu', num_frames=16)
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.chdir(work)
    in_memory = SkeletonArrays(x, np.array(LABELS), 'ntu', num_frames=16)
    assert os.listdir(work) == []
    assert in_memory.array is None  # no second copy kept
    assert in_memory.meta('source') == ['0', '1', '2', '3', '4']
    for n in range(5):
        assert torch.equal(in_memory[n].x, from_file[n].x)
        assert torch.equal(in_memory[n].length, from_file[n].length)


def test_cache_beside_file_or_under_root_follows_the_input(tmp_path, monkeypatch):
    data, label, x = write_stgcn(tmp_path)
    cache = tmp_path / ('train_data_joint.npy' + CACHE_SUFFIX)
    a = SkeletonArrays(data, label, 'ntu', num_frames=16)
    assert len(cache_files(cache)) == 1

    # A second construction reads the cache: nothing is parsed again.
    def boom(self):
        raise AssertionError('re-processed')
    with monkeypatch.context() as m:
        m.setattr(SkeletonArrays, 'read_data_list', boom)
        b = SkeletonArrays(data, label, 'ntu', num_frames=16)
    assert torch.equal(a[1].x, b[1].x)

    # Other options, other labels, another file content: new cache files.
    SkeletonArrays(data, label, 'ntu', num_frames=8)
    SkeletonArrays(data, [0, 0, 0, 0, 1], 'ntu', num_frames=16)
    assert len(cache_files(cache)) == 3
    x2 = x.copy()
    x2[:, 0] += 1.0
    np.save(data, x2)
    os.utime(data, ns=(1, 1))  # even with an old time stamp: size/time changed
    c = SkeletonArrays(data, label, 'ntu', num_frames=16)
    assert len(cache_files(cache)) == 4
    assert not torch.equal(c[1].x, a[1].x)

    root = tmp_path / 'root'
    d = SkeletonArrays(data, label, 'ntu', num_frames=16, root=root)
    assert len(cache_files(root / 'processed')) == 1
    assert len(cache_files(cache)) == 4  # nothing new beside the file
    assert torch.equal(d[1].x, c[1].x)

    # In-memory arrays with a root are cached under a hash of their bytes.
    SkeletonArrays(x2, LABELS, 'ntu', num_frames=16, root=root)
    SkeletonArrays(x2, LABELS, 'ntu', num_frames=16, root=root)
    assert len(cache_files(root / 'processed')) == 2


@pytest.mark.parametrize('form', ['list', 'array', 'one_hot', 'npy',
                                  'pkl_numpy', 'pkl_protocol0'])
def test_label_forms(tmp_path, form):
    x = stgcn_array()
    labels = {
        'list': LABELS,
        'array': np.array(LABELS, dtype=np.int32),
        'one_hot': np.eye(4, dtype=np.float32)[LABELS],
    }.get(form)
    if form == 'npy':
        labels = tmp_path / 'labels.npy'
        np.save(labels, np.array(LABELS))
    elif form.startswith('pkl'):
        labels = tmp_path / 'labels.pkl'
        values = [np.int64(v) for v in LABELS] if form == 'pkl_numpy' else LABELS
        with open(labels, 'wb') as f:
            pickle.dump((NAMES, values), f,
                        protocol=0 if form == 'pkl_protocol0' else 2)
    ds = SkeletonArrays(x, labels, 'ntu', num_frames=8)
    assert ds.meta('y').tolist() == LABELS
    if form.startswith('pkl'):
        assert ds.meta('source') == NAMES


def test_fewer_bodies_are_padded_more_are_an_error(tmp_path):
    x = stgcn_array()[..., :1]  # (N, C, T, V, 1)
    ds = SkeletonArrays(x, LABELS, 'ntu', num_frames=16)
    assert ds[2].x.shape == (50, 16, 3)
    assert torch.all(ds[2].x[25:] == 0)
    ref, _ = expected_x(x[2], 16, bodies=2)
    assert torch.allclose(ds[2].x, ref, atol=1e-6)

    three = np.concatenate([stgcn_array()] + [stgcn_array()[..., :1]], axis=-1)
    with pytest.raises(ValueError, match=r"M=3 bodies.*pass num_bodies=3"):
        SkeletonArrays(three, LABELS, 'ntu')
    ds3 = SkeletonArrays(three, LABELS, 'ntu', num_frames=16, num_bodies=3)
    assert ds3.layout.num_bodies == 3 and ds3[0].x.shape == (75, 16, 3)
    assert ds3[0].edge_index.shape == (2, 3 * 2 * len(NTU.bones))


def test_all_zero_sample_is_kept_with_length_zero():
    x = stgcn_array()
    x[2] = 0.0  # nobody detected in the whole clip
    ds = SkeletonArrays(x, LABELS, 'ntu', num_frames=16)
    assert len(ds) == 5
    assert ds[2].length.item() == 0 and torch.all(ds[2].x == 0)
    kept = SkeletonArrays(x, LABELS, 'ntu', num_frames=16,
                          pre_filter=lambda d: int(d.length) > 0)
    assert kept.meta('source') == ['0', '1', '3', '4']


@pytest.mark.parametrize('length', [0, 1, 5, 300])
def test_trailing_length(length):
    sample = np.zeros((3, 300, 4, 2))
    sample[1, :length, 2, 1] = 0.5
    assert trailing_length(sample, time_axis=1) == length


def test_custom_layout_and_two_channels():
    arm = SkeletonLayout('arm', ['shoulder', 'elbow', 'hand'],
                         [(0, 1), (1, 2)], center=0)
    x = np.zeros((2, 2, 50, 3, 1), dtype=np.float32)
    x[0, :, :10] = 1.0
    x[1, :, :50] = 2.0
    ds = SkeletonArrays(x, [0, 1], arm, num_frames=4, root=None)
    assert ds.layout == arm
    assert ds[0].x.shape == (3, 4, 2) and ds.meta('length').tolist() == [10, 50]
    assert torch.equal(ds[1].edge_index, arm.edge_index())


def test_batches_feed_a_model(tmp_path):
    data, label, _ = write_stgcn(tmp_path)
    ds = SkeletonArrays(data, label, 'ntu', num_frames=16,
                        transform=CenterJoint('ntu'))
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch.num_graphs == 4 and batch.x.shape == (4 * 50, 16, 3)
    assert batch.y.tolist() == LABELS[:4] and batch.source == NAMES[:4]
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, len(ds.class_names), ds.layout)
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (4, 4) and torch.isfinite(out).all()


def test_malicious_label_pickle_is_refused(tmp_path):
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    label = tmp_path / 'train_label.pkl'
    label.write_bytes(pickle.dumps((NAMES, [Evil()] * 5)))
    with pytest.raises(UnsafePickleError, match=r"refused to load the global "
                                                r"'(posix|os|nt)\.system'"):
        SkeletonArrays(stgcn_array(), label, 'ntu')
    assert not marker.exists()


def test_bad_inputs_have_clear_errors(tmp_path):
    x = stgcn_array()
    with pytest.raises(ValueError, match=r"shape \(N, C, T, V, M\).*got shape "
                                         r"\(5, 3, 300, 25\)"):
        SkeletonArrays(x[..., 0], LABELS, 'ntu')
    with pytest.raises(ValueError, match=r"V = 25 joints of layout 'ntu'.*"
                                         r"V = 17.*\['coco'\]"):
        SkeletonArrays(np.zeros((2, 3, 10, 17, 1)), [0, 1], 'ntu')
    with pytest.raises(ValueError, match=r"axis 2 has 25 entries.*transpose"):
        SkeletonArrays(x.transpose(0, 2, 3, 1, 4), LABELS, 'ntu')  # N, T, V, C, M
    with pytest.raises(ValueError, match=r"C = 2 \(x, y\).*C = 5"):
        SkeletonArrays(np.zeros((2, 5, 10, 25, 2)), [0, 1], 'ntu')
    with pytest.raises(ValueError, match=r"'labels' has 4 labels but the data "
                                         r"has 5 samples"):
        SkeletonArrays(x, LABELS[:4], 'ntu')
    with pytest.raises(ValueError, match=r"integer class indices >= 0"):
        SkeletonArrays(x, [0, 1, -1, 2, 3], 'ntu')
    with pytest.raises(ValueError, match=r"integer class indices >= 0"):
        SkeletonArrays(x, ['a', 'b', 'c', 'd', 'e'], 'ntu')
    with pytest.raises(ValueError, match=r"'class_names' has 2 names"):
        SkeletonArrays(x, LABELS, 'ntu', class_names=['a', 'b'])
    with pytest.raises(ValueError, match=r"'num_frames' to be an integer >= 1"):
        SkeletonArrays(x, LABELS, 'ntu', num_frames=0)
    with pytest.raises(ValueError, match=r"Unknown skeleton layout 'nut'"):
        SkeletonArrays(x, LABELS, 'nut')
    with pytest.raises(ValueError, match=r"SkeletonArrays: no sequence left "
                                         r"from the arrays given \(after pre_filter\)"):
        SkeletonArrays(x, LABELS, 'ntu', pre_filter=lambda d: False)
    with pytest.raises(ValueError, match=r"numeric array"):
        SkeletonArrays(np.array([['a']]), LABELS, 'ntu')

    bad = tmp_path / 'bad_label.pkl'
    bad.write_bytes(pickle.dumps({'labels': LABELS}))
    with pytest.raises(ValueError, match=r"bad_label.pkl' to hold "
                                         r"\(sample_names, labels\)"):
        SkeletonArrays(x, bad, 'ntu')
    short = tmp_path / 'short_label.pkl'
    short.write_bytes(pickle.dumps((NAMES[:3], LABELS[:3])))
    with pytest.raises(ValueError, match=r"short_label.pkl' has 3 labels"):
        SkeletonArrays(x, short, 'ntu')
    with pytest.raises(FileNotFoundError, match=r"data file '.*missing.npy' "
                                                r"not found"):
        SkeletonArrays(tmp_path / 'missing.npy', LABELS, 'ntu')
    npz = tmp_path / 'NTU60_CS.npz'
    np.savez(npz, x_train=np.zeros((2, 10, 150)))
    with pytest.raises(ValueError, match=r"expected a \.npy file.*CTR-GCN"):
        SkeletonArrays(npz, [0, 1], 'ntu')
    txt = tmp_path / 'labels.txt'
    txt.write_text('0\n1\n')
    with pytest.raises(ValueError, match=r"\.pkl of \(sample_names, labels\) "
                                         r"or a \.npy"):
        SkeletonArrays(np.zeros((2, 3, 10, 25, 2)), txt, 'ntu')


def pad_with_previous_frames(data):
    """The "pad the null frames with the previous frames" step of the
    pre_normalization of 2s-AGCN / MS-G3D, re-implemented as those scripts do
    it: for each sample and body, the body's non-zero frames are copied to the
    front if its first frame is empty, then the frames after its last one are
    filled by repeating its frames from the start (the remainder a prefix)."""
    s = np.transpose(data, [0, 4, 2, 3, 1]).copy()  # N, C, T, V, M -> N, M, T, V, C
    for i_s, skeleton in enumerate(s):
        for i_p, person in enumerate(skeleton):
            if person.sum() == 0:
                continue
            if person[0].sum() == 0:
                index = person.sum(-1).sum(-1) != 0
                tmp = person[index].copy()
                person *= 0
                person[:len(tmp)] = tmp
            for i_f, frame in enumerate(person):
                if frame.sum() == 0 and person[i_f:].sum() == 0:
                    rest = len(person) - i_f
                    num = int(np.ceil(rest / i_f))
                    pad = np.concatenate([person[0:i_f] for _ in range(num)], 0)[:rest]
                    s[i_s, i_p, i_f:] = pad
                    break
    return np.transpose(s, [0, 4, 2, 3, 1])


# (true length of body 0, of body 1; 0: absent). 100 and 150 divide 300.
REPEATED = [(40, 0), (100, 0), (150, 0), (299, 0), (300, 0), (7, 0),
            (60, 60), (80, 50), (120, 120)]


def repeat_padded_array(T=300):
    rng = np.random.default_rng(3)
    original = np.zeros((len(REPEATED), 3, T, 25, 2), dtype=np.float32)
    for n, lengths in enumerate(REPEATED):
        for m, length in enumerate(lengths):
            original[n, :, :length, :, m] = rng.normal(size=(3, length, 25))
    return original, pad_with_previous_frames(original)


def reference_x(sample, length, num_frames):
    seq = sample[:, :length].transpose(1, 3, 2, 0)  # T, M, V, C
    return skeleton_to_data(seq, NTU, 0, num_frames).x


def test_repeat_padding_is_detected_and_cut_to_the_true_length(tmp_path):
    original, padded = repeat_padded_array()
    assert (padded[:, :, -1] != 0).any(axis=(1, 2, 3)).all()  # every sample fills T
    data, label, _ = write_stgcn(tmp_path, padded, labels=[0] * len(REPEATED),
                                 names=[str(n) for n in range(len(REPEATED))])
    ds = SkeletonArrays(data, label, 'ntu', num_frames=32)  # padding='auto'
    true = [max(lengths) for lengths in REPEATED]
    assert ds.meta('length').tolist() == true
    for n, length in enumerate(true):
        # The frames are the original ones: one copy, body 1 zero after its end.
        assert torch.equal(ds[n].x, reference_x(original[n], length, 32)), n
    forced = SkeletonArrays(data, label, 'ntu', num_frames=32, padding='repeat')
    assert forced.meta('length').tolist() == true
    # 'zero' reads every frame as data, as before: all 300 frames.
    zero = SkeletonArrays(data, label, 'ntu', num_frames=32, padding='zero')
    assert zero.meta('length').tolist() == [300] * len(REPEATED)
    assert torch.equal(zero[0].x, reference_x(padded[0], 300, 32))
    # Each option has its own processed file.
    names = cache_files(str(data) + CACHE_SUFFIX)
    assert len(names) == 3 and [any(f'_{p}pad_' in f for f in names)
                                for p in ('auto', 'repeat', 'zero')] == [True] * 3


def test_repeat_padding_edge_cases():
    original, padded = repeat_padded_array()
    # Static: all frames equal (also a one-frame sequence padded): its padding
    # cannot be told from its frames; kept whole, the graph is the same.
    static = np.zeros((2, 3, 300, 25, 2), dtype=np.float32)
    static[0, :, :40, :, 0] = original[0, :, :1, :, 0]
    static[1, :, :1, :, 0] = original[1, :, :1, :, 0]
    static = pad_with_previous_frames(static)
    ds = SkeletonArrays(static, [0, 0], 'ntu', num_frames=16)
    assert ds.meta('length').tolist() == [300, 300]
    assert torch.allclose(ds[0].x, reference_x(static[0], 1, 16), atol=1e-6)
    # Repeats followed by zero frames: 'auto' sees zero padding only,
    # 'repeat' also looks for the repetition.
    tail = padded[:1].copy()
    tail[:, :, 250:] = 0
    assert SkeletonArrays(tail, [0], 'ntu').meta('length').tolist() == [250]
    forced = SkeletonArrays(tail, [0], 'ntu', num_frames=16, padding='repeat')
    assert forced.meta('length').tolist() == [40]
    assert torch.equal(forced[0].x, reference_x(original[0], 40, 16))
    # Zero-padded data is unchanged by 'auto' (nothing repeats).
    x = stgcn_array()
    assert SkeletonArrays(x, LABELS, 'ntu').meta('length').tolist() == LENGTHS
    with pytest.raises(ValueError, match=r"'padding' to be one of \['auto', "
                                         r"'zero', 'repeat'\] \(got 'tile'\)"):
        SkeletonArrays(x, LABELS, 'ntu', padding='tile')


@pytest.mark.parametrize('frames, period', [
    ([1, 2, 3, 1, 2, 3, 1], 3), ([1, 2, 3, 4], 4), ([5, 5, 5], 1), ([1], 1),
    ([1, 2, 1, 2], 2), ([1, 2, 1, 3], 4), ([0, 0, 1, 0, 0], 3)])
def test_repeat_period(frames, period):
    assert repeat_period(np.array(frames, dtype=np.float32)[:, None]) == period


def test_truncated_npy_says_truncated(tmp_path):
    data, label, x = write_stgcn(tmp_path)
    blob = data.read_bytes()
    data.write_bytes(blob[:len(blob) // 2])  # an interrupted copy
    with pytest.raises(ValueError, match=r"data file '.*train_data_joint\.npy' is "
                                         r"truncated: its header announces an array "
                                         r"of shape \(5, 3, 300, 25, 2\) float32 "
                                         rf"\({len(blob)} bytes with the header\) but "
                                         rf"the file holds {len(blob) // 2} bytes"):
        SkeletonArrays(data, label, 'ntu')
    labels = tmp_path / 'labels.npy'
    np.save(labels, np.array(LABELS))
    data.write_bytes(blob)
    labels.write_bytes(labels.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"labels file '.*labels\.npy' is truncated"):
        SkeletonArrays(data, labels, 'ntu')
    data.write_bytes(blob[:60])  # not even a whole header
    with pytest.raises(ValueError, match=r"is truncated: the file holds 60 bytes, "
                                         r"too few for a \.npy header"):
        SkeletonArrays(data, label, 'ntu')
