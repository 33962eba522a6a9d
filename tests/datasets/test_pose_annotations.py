import builtins
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import PoseAnnotations, UnsafePickleError, safe_load_pickle
from tcmp_pyg.datasets import pose_annotations as pose_module
from tcmp_pyg.datasets.arrays import CACHE_SUFFIX
from tcmp_pyg.layouts import COCO, NTU, OPENPOSE
from tcmp_pyg.nn import build_model
from tcmp_pyg.transforms import resample_frames

SPLITS = {'xsub_train': ['S001C001P001R001A001', 'S001C001P001R001A050',
                         'S001C001P001R001A007'],
          'xsub_val': ['S001C001P003R001A001', 'S001C001P003R001A050'],
          'xview_train': [], 'xview_val': []}
FRAME_DIRS = SPLITS['xsub_train'] + SPLITS['xsub_val']


def annotations_3d(seed=0):
    """pyskl's ntu60_3danno.pkl: (M, T, 25, 3) keypoints, M = 1 or 2, no
    scores; A050 is a two-person action."""
    rng = np.random.default_rng(seed)
    anns = []
    for k, name in enumerate(FRAME_DIRS):
        M, T = (2 if name.endswith('A050') else 1), 20 + 7 * k
        anns.append(dict(frame_dir=name, label=int(name[-3:]) - 1,
                         keypoint=rng.normal(size=(M, T, 25, 3)).astype(np.float32),
                         total_frames=T))
    return anns


def annotations_2d(seed=1):
    """pyskl's ntu60_hrnet.pkl: float16 (M, T, 17, 2) pixel keypoints, a
    keypoint_score (M, T, 17) and img_shape; the second person of a one-person
    action is zero padding."""
    rng = np.random.default_rng(seed)
    anns = []
    for k, name in enumerate(FRAME_DIRS):
        T = 15 + k
        kp = rng.uniform(0, 1000, size=(2, T, 17, 2)).astype(np.float16)
        score = rng.uniform(0, 1, size=(2, T, 17)).astype(np.float16)
        if not name.endswith('A050'):
            kp[1], score[1] = 0, 0
        anns.append(dict(frame_dir=name, label=int(name[-3:]) - 1, keypoint=kp,
                         keypoint_score=score, total_frames=T,
                         img_shape=(1080, 1920), original_shape=(1080, 1920)))
    return anns


def write(path: Path, anns, splits=SPLITS, protocol=2):
    """mmcv.dump writes protocol 2 pickles."""
    obj = anns if splits is None else {'split': splits, 'annotations': anns}
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def expected_x(kp, num_frames, bodies):
    """Reference: (M, T, V, C) -> pad bodies -> resample -> [M*V, T', C]."""
    kp = torch.from_numpy(np.asarray(kp, dtype=np.float32))
    M, T, V, C = kp.shape
    if M < bodies:
        kp = torch.cat([kp, kp.new_zeros(bodies - M, T, V, C)])
    kp = resample_frames(kp[:bodies], num_frames, dim=1)  # M, T', V, C
    return kp.permute(0, 2, 1, 3).reshape(bodies * V, num_frames, C)


def test_3d_annotations_and_splits(tmp_path):
    anns = annotations_3d()
    path = write(tmp_path / 'ntu60_3danno.pkl', anns)
    train = PoseAnnotations(path, 'xsub_train', 'ntu', num_frames=16)
    val = PoseAnnotations(path, 'xsub_val', 'ntu', num_frames=16)
    assert repr(train) == 'PoseAnnotations(3)' and repr(val) == 'PoseAnnotations(2)'
    assert train.meta('source') == SPLITS['xsub_train']
    assert val.meta('source') == SPLITS['xsub_val']
    assert train.class_names == tuple(str(k) for k in range(50))
    assert sorted(train.splits) == sorted(SPLITS)
    for ds, offset in ((train, 0), (val, 3)):
        for i in range(len(ds)):
            ann, d = anns[offset + i], ds[i]
            assert d.x.shape == (50, 16, 3)
            assert torch.allclose(d.x, expected_x(ann['keypoint'], 16, 2), atol=1e-6)
            assert d.y.item() == ann['label']
            assert d.length.item() == ann['keypoint'].shape[1]
            assert torch.equal(d.edge_index, NTU.edge_index())
    # One-person samples get a zero second body.
    assert torch.all(train[0].x[25:] == 0) and torch.any(train[1].x[25:] != 0)
    # Both splits share one processed file, beside the pickle.
    cache = tmp_path / ('ntu60_3danno.pkl' + CACHE_SUFFIX)
    assert len([f for f in os.listdir(cache) if f.startswith('pose_')
                and f.endswith('.pt')]) == 1
    everything = PoseAnnotations(path, None, 'ntu', num_frames=16)
    assert everything.meta('source') == FRAME_DIRS
    assert len(PoseAnnotations(path, 'xview_train', 'ntu', num_frames=16)) == 0


def test_2d_keypoints_with_and_without_score(tmp_path):
    anns = annotations_2d()
    path = write(tmp_path / 'ntu60_hrnet.pkl', anns)
    xy = PoseAnnotations(path, 'xsub_train', 'coco', num_frames=8, num_bodies=2)
    xys = PoseAnnotations(path, 'xsub_train', 'coco', num_frames=8,
                          num_bodies=2, use_score=True)
    assert xy.layout == COCO.with_bodies(2)
    assert xy[0].x.shape == (34, 8, 2) and xys[0].x.shape == (34, 8, 3)
    ann = anns[1]
    with_score = np.concatenate([ann['keypoint'].astype(np.float32),
                                 ann['keypoint_score'][..., None]], axis=-1)
    assert torch.allclose(xys[1].x, expected_x(with_score, 8, 2), atol=1e-3)
    assert torch.equal(xys[1].x[..., :2], xy[1].x)
    assert torch.all(xys[0].x[17:] == 0)  # zero-padded second person
    # Options that change the graphs are separate processed files.
    cache = tmp_path / ('ntu60_hrnet.pkl' + CACHE_SUFFIX)
    assert len([f for f in os.listdir(cache) if f.endswith('.pt')
                and f.startswith('pose_')]) == 2


def test_missing_keypoint_score(tmp_path):
    anns = annotations_2d()
    del anns[3]['keypoint_score']
    path = write(tmp_path / 'hrnet.pkl', anns)
    ds = PoseAnnotations(path, 'xsub_val', 'coco', num_frames=8, num_bodies=2)
    assert ds[0].x.shape == (34, 8, 2)
    with pytest.raises(ValueError, match=r"annotation 3 \(frame_dir "
                                         r"'S001C001P003R001A001'\).*no "
                                         r"'keypoint_score'.*use_score=False"):
        PoseAnnotations(path, 'xsub_val', 'coco', num_bodies=2, use_score=True)


def test_bodies_beyond_num_bodies_are_cut_with_a_warning(tmp_path):
    anns = annotations_2d()
    anns[0]['keypoint'] = np.concatenate([anns[0]['keypoint']] * 2)  # 4 people
    anns[1]['keypoint'] = np.zeros((0, 16, 17, 2), np.float16)  # nobody
    path = write(tmp_path / 'hrnet.pkl', anns)
    # Every other sample has two people (one of them zero padding).
    with pytest.warns(UserWarning, match=r"4 sample\(s\).*more than 1 body; "
                                         r"kept the first 1 \(S001C001P001R001A001, "
                                         r"S001C001P001R001A007.*num_bodies="):
        ds = PoseAnnotations(path, 'xsub_train', 'coco', num_frames=8)
    assert ds[0].x.shape == (17, 8, 2)
    assert torch.allclose(ds[0].x, expected_x(anns[0]['keypoint'], 8, 1), atol=1e-3)
    assert torch.all(ds[1].x == 0) and ds[1].length.item() == 16


def test_split_errors_and_list_files(tmp_path):
    path = write(tmp_path / 'a.pkl', annotations_3d())
    with pytest.raises(ValueError, match=r"split 'train' is not in .*a.pkl' "
                                         r"\(its splits are \['xsub_train', "
                                         r"'xsub_val', 'xview_train', "
                                         r"'xview_val'\]\)"):
        PoseAnnotations(path)  # default split='train'
    # Older mmaction2 files: a plain list of annotations, one file per split.
    listed = write(tmp_path / 'ntu60_xsub_train.pkl', annotations_3d(), splits=None)
    ds = PoseAnnotations(listed, None, 'ntu', num_frames=8)
    assert ds.meta('source') == FRAME_DIRS
    with pytest.raises(ValueError, match=r"no 'split' dict: pass split=None"):
        PoseAnnotations(listed, 'train', 'ntu')


def test_cache_follows_the_file_and_is_read_without_the_pickle(tmp_path, monkeypatch):
    path = write(tmp_path / 'a.pkl', annotations_3d())
    a = PoseAnnotations(path, 'xsub_train', 'ntu', num_frames=8)

    def boom(*args, **kwargs):
        raise AssertionError('the pickle was read again')
    with monkeypatch.context() as m:
        m.setattr(pose_module, 'safe_load_pickle', boom)
        b = PoseAnnotations(path, 'xsub_val', 'ntu', num_frames=8)
        PoseAnnotations(path, 'xsub_train', 'ntu', num_frames=8)
    assert len(a) == 3 and len(b) == 2

    anns = annotations_3d(seed=5)
    write(path, anns)  # rewritten: new size / mtime
    c = PoseAnnotations(path, 'xsub_train', 'ntu', num_frames=8)
    assert torch.allclose(c[0].x, expected_x(anns[0]['keypoint'], 8, 2), atol=1e-6)

    root = tmp_path / 'root'
    d = PoseAnnotations(path, 'xsub_train', 'ntu', num_frames=8, root=root)
    assert torch.equal(d[0].x, c[0].x)
    assert any(f.endswith('.pt') for f in os.listdir(root / 'processed'))


def test_batches_feed_a_model(tmp_path):
    path = write(tmp_path / 'a.pkl', annotations_2d())
    ds = PoseAnnotations(path, None, 'coco', num_frames=12, num_bodies=2,
                         use_score=True)
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.x.shape == (5 * 34, 12, 3) and batch.y.shape == (5,)
    assert batch.source == FRAME_DIRS
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, len(ds.class_names), ds.layout)
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (5, 50) and torch.isfinite(out).all()


def test_openpose_layout(tmp_path):
    rng = np.random.default_rng(0)
    anns = [dict(frame_dir=f'clip{k}', label=k,
                 keypoint=rng.normal(size=(1, 9, 18, 2))) for k in range(3)]
    path = write(tmp_path / 'kinetics.pkl', anns, splits={'train': ['clip0', 'clip2']})
    ds = PoseAnnotations(path, 'train', 'openpose', num_frames=4)
    assert ds.meta('source') == ['clip0', 'clip2']
    assert ds[1].x.shape == (18, 4, 2)
    assert torch.equal(ds[1].edge_index, OPENPOSE.edge_index())


@pytest.mark.parametrize('protocol', [0, 1, 2, 3, 4, 5])
def test_every_pickle_protocol_loads(tmp_path, protocol):
    anns = annotations_2d()
    anns[0]['label'] = np.int64(49)  # numpy scalars occur too
    anns[0]['tags'] = {'a', 'b'}  # sets need a global below protocol 4
    anns[0]['raw'] = b'\x00\xffbytes'  # _codecs.encode in protocol 2
    path = write(tmp_path / 'a.pkl', anns, protocol=protocol)
    loaded = safe_load_pickle(path)
    assert loaded['split'] == SPLITS
    assert loaded['annotations'][0]['tags'] == {'a', 'b'}
    assert loaded['annotations'][0]['raw'] == b'\x00\xffbytes'
    kp = loaded['annotations'][2]['keypoint']
    assert kp.dtype == np.float16 and np.array_equal(kp, anns[2]['keypoint'])
    ds = PoseAnnotations(path, 'xsub_train', 'coco', num_frames=8, num_bodies=2)
    assert ds.meta('y').tolist() == [49, 49, 6]


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"open({str(self.marker)!r}, 'w')",)


class _Zlib:
    def __reduce__(self):  # a codec other than Latin-1 (decompression bomb)
        import _codecs
        return _codecs.encode, ('x', 'zlib_codec')


@pytest.mark.parametrize('evil, refused', [
    (_System, r"'(posix|os|nt)\.system'"),
    (_Eval, r"'(builtins|__builtin__)\.eval'"),
])
def test_malicious_pickles_are_refused(tmp_path, evil, refused):
    marker = tmp_path / 'pwned'
    anns = annotations_3d()
    anns[1]['keypoint'] = evil(marker)
    for protocol in (2, 4):
        path = write(tmp_path / 'evil.pkl', anns, protocol=protocol)
        with pytest.raises(UnsafePickleError, match=r"evil.pkl: refused to load "
                                                    r"the global " + refused):
            PoseAnnotations(path, 'xsub_train', 'ntu')
        assert not marker.exists()
    assert not (tmp_path / ('evil.pkl' + CACHE_SUFFIX)).exists()


class _BytesBomb:
    def __reduce__(self):  # bytes(n) allocates n bytes
        return bytes, (10 ** 12,)


@pytest.mark.parametrize('allowed_global_misused, refused', [
    (_Zlib, r"Refused _codecs.encode\(\.\.\., 'zlib_codec'.*only Latin-1"),
    (_BytesBomb, r"Refused a bytes\(\.\.\.\) call"),
])
def test_allowed_globals_accept_only_their_plain_use(tmp_path,
                                                     allowed_global_misused,
                                                     refused):
    path = tmp_path / 'misuse.pkl'
    path.write_bytes(pickle.dumps([allowed_global_misused()], protocol=2))
    with pytest.raises(UnsafePickleError, match=r"misuse.pkl: " + refused):
        safe_load_pickle(path)


def test_bad_files_have_clear_errors(tmp_path):
    def check(anns, match, layout='ntu', **kwargs):
        path = write(tmp_path / 'bad.pkl', anns)
        with pytest.raises(ValueError, match=match):
            PoseAnnotations(path, 'xsub_train', layout, force_reload=True, **kwargs)

    anns = annotations_3d()
    anns[0]['keypoint'] = anns[0]['keypoint'][0]
    check(anns, r"annotation 0 \(frame_dir 'S001C001P001R001A001'\) of "
                r"'.*bad.pkl': expected 'keypoint' of shape \(M, T, V, C\) "
                r"with C = 2 or 3 \(got shape \(20, 25, 3\)\)")
    check(annotations_2d(), r"'keypoint' has V = 17 joints but layout 'ntu' "
                            r"has 25; built-in layouts with 17 joints: \['coco'\]")
    anns = annotations_3d()
    anns[2]['keypoint'] = np.zeros((1, 10, 25, 4))
    check(anns, r"annotation 2 .*C = 2 or 3 \(got shape \(1, 10, 25, 4\)\)")
    anns = annotations_3d()
    anns[2]['keypoint'] = np.zeros((1, 10, 25, 2))
    check(anns, r"annotation 2 .*: 2 channels, but the annotations before it "
                r"have 3")
    anns = annotations_3d()
    del anns[1]['label']
    check(anns, r"annotation 1 .*missing \['label'\]")
    anns = annotations_3d()
    anns[1]['label'] = -1
    check(anns, r"expected 'label' to be an integer >= 0 \(got -1\)")
    anns = annotations_3d()
    anns[1]['keypoint'] = np.zeros((1, 0, 25, 3))
    check(anns, r"annotation 1 .*no frame")
    anns = annotations_2d()
    anns[1]['keypoint_score'] = anns[1]['keypoint_score'][:, :3]
    check(anns, r"expected 'keypoint_score' of shape \(M, T, V\) = "
                r"\(2, 16, 17\) \(got \(2, 3, 17\)\)", layout='coco',
          num_bodies=2, use_score=True)

    path = tmp_path / 'wrong.pkl'
    path.write_bytes(pickle.dumps({'split': SPLITS, 'annos': []}))
    with pytest.raises(ValueError, match=r"to hold \{'split': \{...\}, "
                                         r"'annotations'.*keys \['annos', 'split'\]"):
        PoseAnnotations(path, 'xsub_train')
    path.write_bytes(b'not a pickle at all')
    with pytest.raises(ValueError, match=r"wrong.pkl: not a readable pickle"):
        PoseAnnotations(path, 'xsub_train')
    with pytest.raises(FileNotFoundError, match=r"annotation file '.*nope.pkl' "
                                                r"not found"):
        PoseAnnotations(tmp_path / 'nope.pkl')


def test_one_annotation_dict_is_a_one_sample_file(tmp_path):
    # What per-video extraction scripts write: pickle.dump(anno, f).
    ann = annotations_2d()[2]
    path = tmp_path / 'S001C001P001R001A007.pkl'
    path.write_bytes(pickle.dumps(ann, protocol=2))
    ds = PoseAnnotations(path, None, 'coco', num_frames=8, num_bodies=2,
                         use_score=True)
    assert len(ds) == 1 and ds.meta('source') == ['S001C001P001R001A007']
    assert ds[0].y.item() == 6 and ds[0].length.item() == 17
    kp = np.concatenate([ann['keypoint'].astype(np.float32),
                         ann['keypoint_score'].astype(np.float32)[..., None]], -1)
    assert torch.allclose(ds[0].x, expected_x(kp, 8, 2), atol=1e-3)
    with pytest.raises(ValueError, match=r"no 'split' dict: pass split=None"):
        PoseAnnotations(path, 'xsub_train', 'coco')
    path.write_bytes(pickle.dumps({'frame_dir': 'x', 'label': 0}))  # no keypoint
    with pytest.raises(ValueError, match=r"or one annotation dict with 'keypoint' "
                                         r"\(got dict with keys \['frame_dir', 'label'\]\)"):
        PoseAnnotations(path, None, 'coco')
