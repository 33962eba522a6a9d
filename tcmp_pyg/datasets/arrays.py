r"""Skeleton arrays in the ST-GCN / 2s-AGCN / CTR-GCN ``.npy`` convention.

Those repositories store a split as one float array of shape
``(N, C, T, V, M)`` (samples, channels, frames zero-padded to e.g. 300,
joints, bodies zero-padded to e.g. 2) and its labels as a pickle of
``(sample_names, labels)``. :class:`SkeletonArrays` turns such an array into
the same PyG graphs as the built-in datasets.

This module also holds what the datasets that read a user's own files share
(:class:`ExternalSkeletonDataset`): where the processed cache goes and how
its name follows the input file.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import re
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (SkeletonDataset, atomic_save, check_choice,
                                    check_num_frames, skeleton_to_data)
from tcmp_pyg.datasets.parsing import (collect_data_warnings,
                                       issue_data_warnings)
from tcmp_pyg.datasets.safe_pickle import safe_load_pickle
from tcmp_pyg.layouts import LAYOUTS, LayoutLike, SkeletonLayout, get_layout

PathLike = Union[str, 'os.PathLike[str]']

# Folder name suffix of the processed cache written beside an input file.
CACHE_SUFFIX = '.tcmp_cache'


def npy_truncation(path: str) -> Optional[str]:
    """Why a ``.npy`` file is truncated (its header announces more data than
    the file holds), or :obj:`None` if it is not."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
        except (ValueError, EOFError, OSError, SyntaxError):
            return (f'the file holds {size} bytes, too few for a .npy header'
                    if size < 128 else None)
        need = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size >= need:
        return None
    return (f"its header announces an array of shape {tuple(shape)} "
            f"{dtype} ({need} bytes with the header) but the file holds "
            f"{size} bytes: an interrupted copy or download?")


def load_npy(path: str, what: str, mmap_mode: Optional[str] = None
             ) -> np.ndarray:
    """``np.load`` of a numeric ``.npy`` file, with an error that says
    "truncated" for a truncated file (numpy's own is about mmap length)."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        why = npy_truncation(path)
        if why is not None:
            raise ValueError(f"SkeletonArrays: {what} '{path}' is truncated: "
                             f"{why}") from None
        raise ValueError(f"SkeletonArrays: cannot read {what} '{path}' as a "
                         f"numeric .npy array ({e})") from e


def file_identity(path: PathLike) -> str:
    """A short hash of a file's real path, size and modification time: it
    changes whenever the file is replaced or rewritten, without reading it."""
    real = osp.realpath(os.fspath(path))
    st = os.stat(real)
    key = f'{real}|{st.st_size}|{st.st_mtime_ns}'
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def layout_tag(layout: SkeletonLayout) -> str:
    """The layout's name for a processed file name; a custom layout (or one
    that reuses a built-in name with other bones) gets a hash of its bones."""
    one = layout.with_bodies(1)
    tag = re.sub(r'[^A-Za-z0-9_.-]+', '-', layout.name) or 'layout'
    builtin = LAYOUTS.get(layout.name)
    if builtin is None or builtin.with_bodies(1) != one:
        blob = json.dumps(one.to_dict(), sort_keys=True).encode()
        tag += '-' + hashlib.sha1(blob).hexdigest()[:8]
    return tag


def resolve_cache_dir(path: Optional[str], root: Optional[PathLike],
                      cls_name: str) -> Optional[str]:
    """Where processed files go: ``root/processed`` when ``root`` is given,
    else ``<path>.tcmp_cache`` beside the input file, else nowhere
    (:obj:`None`: processed in memory)."""
    if root is not None:
        return osp.join(osp.expanduser(os.fspath(root)), 'processed')
    if path is None:
        return None
    cache = path + CACHE_SUFFIX
    parent = osp.dirname(cache) or '.'
    if not osp.isdir(cache) and not os.access(parent, os.W_OK):
        raise PermissionError(
            f"{cls_name}: cannot write the processed cache beside '{path}' "
            f"('{parent}' is not writable); pass root=<a writable folder> "
            f"to keep it there instead")
    return cache


def builtin_layouts_with(num_joints: int) -> List[str]:
    """Names of the built-in layouts with ``num_joints`` joints."""
    return sorted(n for n, lay in LAYOUTS.items() if lay.num_joints == num_joints)


def joints_hint(num_joints: int) -> str:
    """The end of a joint-count error: which layouts fit ``num_joints``."""
    names = builtin_layouts_with(num_joints)
    if not names:
        return (f"; no built-in layout has {num_joints} joints: declare a "
                f"SkeletonLayout for them")
    return f"; built-in layouts with {num_joints} joints: {names}"


def check_num_bodies(num_bodies: Any) -> int:
    """Validates the ``num_bodies`` argument (an int >= 1)."""
    if isinstance(num_bodies, bool) or not isinstance(num_bodies, (int, np.integer)) \
            or num_bodies < 1:
        raise ValueError(f"Expected 'num_bodies' to be an integer >= 1 "
                         f"(got {num_bodies!r})")
    return int(num_bodies)


def default_class_names(labels: Sequence[int],
                        class_names: Optional[Sequence[str]],
                        cls_name: str) -> Tuple[str, ...]:
    """``class_names`` checked against the labels, or ``('0', '1', ...)`` up
    to the largest label."""
    top = int(max(labels)) if len(labels) else -1
    if class_names is None:
        return tuple(str(k) for k in range(top + 1))
    names = tuple(str(n) for n in class_names)
    if top >= len(names):
        raise ValueError(f"{cls_name}: the labels go up to {top} but "
                         f"'class_names' has {len(names)} names")
    return names


class ExternalSkeletonDataset(SkeletonDataset):
    r"""Base class of the datasets that read a user's own files (or arrays)
    rather than a ``root/raw`` folder.

    The processed cache goes to :attr:`cache_dir`: ``root/processed`` when a
    ``root`` is given, ``<file>.tcmp_cache/`` beside the input file otherwise,
    and nowhere for arrays passed in memory without a ``root`` (processed on
    every construction). Subclasses set :attr:`cache_dir`, :attr:`layout` and
    :attr:`input_path` before calling ``super().__init__`` and implement
    :meth:`read_data_list` and :attr:`processed_file_names`, whose first
    entry must depend on the input's identity (see :func:`file_identity`).

    Args:
        root (str, optional): The dataset root (:obj:`None`: the input
            file's folder, or none for arrays in memory).
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-process. (default: :obj:`False`)
    """
    cache_dir: Optional[str] = None
    input_path: Optional[str] = None
    raw_layout = 'nothing (reads the file or arrays it is given)'
    obtain = 'Pass the file or arrays to the constructor.'

    def __init__(self, root: Optional[PathLike],
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False) -> None:
        self._memory: Optional[List[Data]] = None
        if self.cache_dir is None:  # nothing written: process right away
            self._memory = self._build(pre_transform, pre_filter)
        if root is None and self.input_path is not None:
            root = osp.dirname(self.input_path)
        super().__init__(None if root is None else os.fspath(root), transform,
                         pre_transform, pre_filter, force_reload=force_reload)

    @property
    def has_download(self) -> bool:
        return False  # the input was checked by the constructor

    @property
    def has_process(self) -> bool:
        return self.cache_dir is not None

    @property
    def raw_dir(self) -> str:
        return osp.dirname(self.input_path) if self.input_path else ''

    @property
    def processed_dir(self) -> str:
        return self.cache_dir if self.cache_dir is not None else ''

    @property
    def raw_file_names(self) -> List[str]:
        return []

    def _build(self, pre_transform: Optional[Callable],
               pre_filter: Optional[Callable]) -> List[Data]:
        with collect_data_warnings() as notes:
            data_list = self.read_data_list()
            if pre_filter is not None:
                data_list = [d for d in data_list if pre_filter(d)]
            if pre_transform is not None:
                data_list = [pre_transform(d) for d in data_list]
        self._data_notes = notes
        if not data_list:
            issue_data_warnings(notes)  # they may explain the error
            where = self.input_path or 'the arrays given'
            raise ValueError(f"{type(self).__name__}: no sequence left from "
                             f"{where} (after pre_filter)")
        return data_list

    def process(self) -> None:
        data_list = self._build(self.pre_transform, self.pre_filter)
        self._write_notes(self._data_notes)  # before the data, see base
        atomic_save(data_list, self.processed_paths[0])

    def load(self, path: str, data_cls: type = Data) -> None:
        if self._memory is not None:
            self.data, self.slices = self.collate(self._memory)
            self._memory = None
        else:
            super().load(path, data_cls)


def _read_labels(labels: Any, num_samples: int
                 ) -> Tuple[np.ndarray, Optional[List[str]], str]:
    """``labels`` as an int64 array ``[N]``, the sample names if the labels
    file has them, and an identity string for the processed file name."""
    names: Optional[List[str]] = None
    if isinstance(labels, (str, os.PathLike)):
        path = os.fspath(labels)
        if not osp.isfile(path):
            raise FileNotFoundError(f"SkeletonArrays: labels file '{path}' "
                                    f"not found")
        ident = 'f' + file_identity(path)
        if path.endswith('.npy'):
            values = load_npy(path, 'labels file')
        elif path.endswith(('.pkl', '.pickle')):
            obj = safe_load_pickle(path)
            values, names = _split_label_pickle(obj, path)
        else:
            raise ValueError(f"SkeletonArrays: expected the labels file "
                             f"'{path}' to be a .pkl of (sample_names, "
                             f"labels) or a .npy of labels")
        where = f"labels file '{path}'"
    else:
        values, ident, where = labels, '', "'labels'"
    y = _label_vector(values, where)
    if len(y) != num_samples:
        raise ValueError(f"SkeletonArrays: {where} has {len(y)} labels but "
                         f"the data has {num_samples} samples")
    if names is not None and len(names) != num_samples:
        raise ValueError(f"SkeletonArrays: {where} has {len(names)} sample "
                         f"names but the data has {num_samples} samples")
    if not ident:
        ident = 'l' + hashlib.sha1(y.tobytes()).hexdigest()[:12]
    return y, names, ident


def _split_label_pickle(obj: Any, path: str) -> Tuple[Any, Optional[List[str]]]:
    # ST-GCN's tools write pickle.dump((sample_names, list(labels)), f).
    if isinstance(obj, (tuple, list)) and len(obj) == 2 \
            and all(isinstance(o, (list, tuple, np.ndarray)) for o in obj):
        names, values = obj
        if all(isinstance(n, (str, bytes)) for n in names):
            return values, [n.decode('latin1') if isinstance(n, bytes) else n
                            for n in names]
    if isinstance(obj, (list, tuple, np.ndarray)):
        return obj, None
    raise ValueError(f"SkeletonArrays: expected the labels pickle '{path}' "
                     f"to hold (sample_names, labels), as ST-GCN writes it "
                     f"(got {type(obj).__name__})")


def _label_vector(values: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"SkeletonArrays: {where} is not a list of integer "
                         f"labels ({e})") from None
    if arr.ndim == 2 and arr.size and np.isin(arr, (0, 1)).all() \
            and (arr.sum(axis=1) == 1).all():
        arr = arr.argmax(axis=1)  # one-hot rows, as CTR-GCN's .npz stores them
    if arr.ndim != 1 or arr.dtype.kind not in 'iuf' \
            or (arr.size and (not np.isfinite(arr).all()
                              or (arr != np.round(arr)).any() or arr.min() < 0)):
        raise ValueError(f"SkeletonArrays: expected {where} to be integer "
                         f"class indices >= 0, one per sample, or one-hot rows "
                         f"(got an array of shape {arr.shape}, dtype "
                         f"{arr.dtype})")
    return arr.astype(np.int64)


def trailing_length(sample: np.ndarray, time_axis: int) -> int:
    """The number of frames up to the last frame with a non-zero value
    (frames after it are padding); 0 for an all-zero sample."""
    other = tuple(a for a in range(sample.ndim) if a != time_axis)
    used = np.flatnonzero(np.any(sample != 0, axis=other))
    return int(used[-1]) + 1 if used.size else 0


PADDINGS = ('auto', 'zero', 'repeat')


def repeat_period(frames: np.ndarray) -> int:
    r"""The smallest period of a frame sequence: the smallest ``P >= 1`` with
    ``frames[t] == frames[t - P]`` (every value exactly equal) for every
    ``t >= P``; ``len(frames)`` when no shorter period exists.

    Args:
        frames (np.ndarray): Frames along the first axis, any trailing shape.

    Returns:
        The period (1 for a sequence whose frames are all equal).
    """
    T = len(frames)
    flat = np.asarray(frames).reshape(T, -1)
    # A period P makes frame P equal frame 0: only those P are checked.
    for p in np.flatnonzero((flat[1:] == flat[0]).all(axis=1)) + 1:
        if np.array_equal(flat[p:], flat[:T - p]):
            return int(p)
    return T


def undo_repeat_padding(seq: np.ndarray) -> Tuple[int, np.ndarray]:
    r"""The true length of a repeat-padded sequence, and its frames.

    The preprocessing of 2s-AGCN, MS-G3D and their forks ("pad the null
    frames with the previous frames") fills a body's frames after its last
    one by repeating the body's frames from the start, so a padded body is
    periodic with its true length as period. The rule, on the frames given:

    1. If the whole sequence (all bodies) has a period ``1 < P < T`` (see
       :func:`repeat_period`), the length is ``P``. This covers a sequence
       tiled as a whole, one-body sequences, and bodies of equal length
       (also after the scripts' centring on the first body).
    2. Otherwise the bodies were padded each on its own: among the moving
       bodies that reach the last frame, those with a period ``1 < P_m < T``
       are padded; the length is the largest ``P_m`` (the longest body).
    3. A sequence whose frames are all equal (period 1), or without any
       repetition, is left as it is (length ``T``): a static sequence's
       padding cannot be told from its frames, and its resampled frames are
       the same at any length.

    A body with its own shorter period ``P_m`` gets its repeats within the
    kept frames (``P_m`` to the length) set back to zero, as before padding.
    What the scripts change besides (the frames of a body absent from the
    first frame are moved to the front, bodies are centred on the first
    body) cannot be undone and is kept.

    Args:
        seq (np.ndarray): Frames of shape ``[T, M, V, C]`` (trailing all-zero
            frames already removed).

    Returns:
        ``(length, seq[:length])``, the frames a copy with body repeats
        zeroed.
    """
    T = len(seq)
    period = repeat_period(seq)
    if period == 1:  # static: nothing tells the padding apart
        return T, seq
    body_periods = {}
    for m in range(seq.shape[1]):
        body = seq[:, m]
        if np.any(body[-1] != 0):  # a padded body fills every frame
            p = repeat_period(body)
            if 1 < p < T:
                body_periods[m] = p
    if period < T:
        length = period
    elif body_periods:
        length = max(body_periods.values())
    else:
        return T, seq
    out = seq[:length].copy()
    for m, p in body_periods.items():
        if p < length:
            out[p:, m] = 0
    return length, out


class SkeletonArrays(ExternalSkeletonDataset):
    r"""Skeleton sequences stored as one array of shape ``(N, C, T, V, M)``,
    the convention of ST-GCN, 2s-AGCN, MS-G3D and CTR-GCN's ``.npy`` files,
    as PyG graphs: ``dataset[n]`` is sample ``n`` of the array.

    A path is opened with ``np.load(path, mmap_mode='r')``: the samples are
    read one at a time, so a large file is never read whole (the processed
    graphs, resampled to ``num_frames``, are held in memory as in every
    :class:`~torch_geometric.data.InMemoryDataset`).

    The conventions' padding is handled as follows:

    - **Frames.** Sequences are zero-padded at the end (to 300 frames in
      ST-GCN's files). Trailing frames whose every value (all bodies, joints
      and channels) is zero are dropped; ``length`` is the number of frames
      left, and those are resampled to ``num_frames``. Zero frames before the
      last non-zero one are kept. An all-zero sample (e.g. a Kinetics clip
      where nobody was detected) is kept as zeros with ``length`` 0; drop
      such samples with ``pre_filter=lambda d: int(d.length) > 0``.
    - **Repeated frames.** The preprocessing of 2s-AGCN, MS-G3D and their
      forks instead fills the frames after a sequence's end by repeating it
      from its start ("pad the null frames with the previous frames"), so a
      40-frame action becomes 7.5 copies of itself in 300 frames. With
      ``padding='auto'`` (the default) a sample that fills all ``T`` frames
      and repeats itself is cut back to one copy: ``length`` is its true
      length (the repeat period) and only those frames are resampled; see
      :func:`undo_repeat_padding` for the exact rule (a true length that
      divides ``T`` is found as well; a static sample stays as it is).
      ``padding='repeat'`` looks for the repetition also in samples that end
      with zero frames (after dropping them); ``padding='zero'`` never
      looks for it (every frame up to the last non-zero one is data).
    - **Bodies.** An absent body is zeros in the file and stays zeros (as in
      the built-in datasets; :class:`~tcmp_pyg.transforms.CenterJoint` leaves
      it at zero). An array with fewer bodies ``M`` than ``num_bodies`` gets
      zero bodies appended; more bodies than ``num_bodies`` is an error.
    - **Joints and channels.** ``V`` must equal the layout's joint count;
      ``C`` must be 2 (``x, y``), 3 (``x, y, z`` or ``x, y, score``) or 4.

    Every sample is a graph with ``x`` of shape
    ``[num_bodies * V, num_frames, C]`` (node-first, body-major),
    ``edge_index``, ``y``, ``length`` and ``source`` (the sample's name from
    the labels pickle, else its index as a string).

    **Processed cache.** With a ``root``, the graphs are saved under
    ``root/processed/``; without one, beside the data file in
    ``<data>.tcmp_cache/``; arrays passed in memory without a ``root`` are
    processed on every construction and nothing is written. The file name
    holds a hash of the data file's path, size and modification time (of the
    array's bytes for in-memory arrays), of the labels (likewise) and the
    options, so a changed input is never read from a stale cache; delete the
    folder to reclaim the space of old versions.

    **Files of this kind (e.g.):**

    .. list-table::
        :widths: 30 20 20 30
        :header-rows: 1

        * - Files
          - Shape
          - Channels
          - Arguments
        * - ST-GCN / 2s-AGCN NTU RGB+D: ``xsub/train_data_joint.npy``,
            ``xsub/train_label.pkl``
          - ``(N, 3, 300, 25, 2)``
          - ``x, y, z`` (m)
          - ``layout='ntu'``
        * - ST-GCN Kinetics-skeleton: ``train_data.npy``,
            ``train_label.pkl``
          - ``(N, 3, 300, 18, 2)``
          - ``x, y, score``
          - ``layout='openpose', num_bodies=2``

    Args:
        data (str or np.ndarray): A ``.npy`` file or an array of shape
            ``(N, C, T, V, M)``.
        labels (str or sequence of int or np.ndarray): One class index per
            sample: a list or array (one-hot rows ``(N, K)`` are accepted),
            a ``.npy`` file, or the ``.pkl`` of ``(sample_names, labels)``
            the ST-GCN family writes. The pickle is loaded with
            :func:`~tcmp_pyg.datasets.safe_pickle.safe_load_pickle`, which
            refuses anything but plain data and numpy arrays.
        layout (str or SkeletonLayout): The skeleton of the ``V`` joints, a
            built-in name or your own :class:`~tcmp_pyg.layouts.SkeletonLayout`.
        num_frames (int, optional): Frames every sequence is resampled to.
            (default: :obj:`64`)
        root (str, optional): Folder for the processed cache (see above).
            (default: :obj:`None`)
        num_bodies (int, optional): Bodies per graph (``M`` or more).
            (default: :obj:`None`, the layout's body count)
        class_names (sequence of str, optional): One name per class.
            (default: :obj:`None`, ``'0'``, ``'1'``, ... up to the largest
            label)
        padding (str, optional): How the frames after a sequence's end were
            filled: :obj:`'auto'` (zeros, or repeats of the sequence where a
            sample repeats itself up to the last frame), :obj:`'zero'`
            (zeros only) or :obj:`'repeat'` (repeats, looked for in every
            sample). (default: :obj:`'auto'`)
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-process. (default: :obj:`False`)

    Example::

        >>> ds = SkeletonArrays('xsub/val_data_joint.npy', 'xsub/val_label.pkl',
        ...                     'ntu', num_frames=64)
        >>> ds[0].x.shape, ds[0].source  # 2 bodies x 25 joints, 64 frames, xyz
        (torch.Size([50, 64, 3]), 'S001C001P001R001A001.skeleton')
    """
    name = 'arrays'

    def __init__(self, data: Union[PathLike, np.ndarray], labels: Any,
                 layout: LayoutLike, num_frames: int = 64,
                 root: Optional[PathLike] = None, *,
                 num_bodies: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None,
                 padding: str = 'auto',
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False) -> None:
        self.num_frames = check_num_frames(num_frames)
        self.padding = check_choice('padding', padding, PADDINGS)
        base = get_layout(layout)
        self.array, self.input_path = self._open(data)
        N, C, T, V, M = self._check_shape(self.array.shape, base)
        bodies = base.num_bodies if num_bodies is None else check_num_bodies(num_bodies)
        if M > bodies:
            raise ValueError(
                f"SkeletonArrays: the data has M={M} bodies (shape "
                f"{tuple(self.array.shape)} read as (N, C, T, V, M)) but "
                f"graphs hold {bodies} (layout '{base.name}'"
                f"{'' if num_bodies is None else ', num_bodies'}); pass "
                f"num_bodies={M} or drop bodies with data[..., :{bodies}]")
        self.layout = base.with_bodies(bodies)
        self.labels, self.sample_names, labels_id = _read_labels(labels, N)
        self.class_names = default_class_names(self.labels, class_names,
                                               'SkeletonArrays')
        self.cache_dir = resolve_cache_dir(self.input_path, root, 'SkeletonArrays')
        if self.cache_dir is None:
            data_id = 'm'
        elif self.input_path is not None:
            data_id = 'f' + file_identity(self.input_path)
        else:
            data_id = 'a' + _array_hash(self.array)
        self._identity = hashlib.sha1(
            f'{data_id}|{labels_id}'.encode()).hexdigest()[:12]
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload)
        if self.input_path is None:
            self.array = None  # in-memory input: do not keep a second copy

    @staticmethod
    def _open(data: Any) -> Tuple[np.ndarray, Optional[str]]:
        if isinstance(data, (str, os.PathLike)):
            path = osp.abspath(osp.expanduser(os.fspath(data)))
            if not osp.isfile(path):
                raise FileNotFoundError(f"SkeletonArrays: data file '{path}' "
                                        f"not found")
            if not path.endswith('.npy'):
                raise ValueError(
                    f"SkeletonArrays: expected a .npy file (got '{path}'); "
                    f"load other files yourself (e.g. CTR-GCN's .npz: "
                    f"x = np.load(f)['x_train'], of shape (N, T, M*V*C), "
                    f"becomes x.reshape(N, T, M, V, C).transpose(0, 4, 1, 3, 2)) "
                    f"and pass the array")
            array = load_npy(path, 'data file', mmap_mode='r')
        else:
            array, path = np.asarray(data), None
        if array.dtype.kind not in 'iuf':
            raise ValueError(f"SkeletonArrays: expected a numeric array (got "
                             f"dtype {array.dtype})")
        return array, path

    @staticmethod
    def _check_shape(shape: Tuple[int, ...], layout: SkeletonLayout
                     ) -> Tuple[int, int, int, int, int]:
        V = layout.num_joints
        expected = ("expected an array of shape (N, C, T, V, M) = (samples, "
                    "channels, frames, joints, bodies)")
        if len(shape) != 5:
            raise ValueError(f"SkeletonArrays: {expected} (got shape "
                             f"{tuple(shape)}); CTR-GCN's (N, T, M*V*C) "
                             f"arrays become x.reshape(N, T, M, V, C)"
                             f".transpose(0, 4, 1, 3, 2)")
        N, C, T, Vd, M = shape
        if Vd != V:
            other = [i for i, s in enumerate(shape) if s == V and i != 3]
            hint = (f"; axis {other[0]} has {V} entries: if the array is in "
                    f"another axis order, transpose it to (N, C, T, V, M)"
                    if other else joints_hint(Vd))
            raise ValueError(f"SkeletonArrays: {expected} with V = {V} joints "
                             f"of layout '{layout.name}' (got shape "
                             f"{tuple(shape)}, V = {Vd}){hint}")
        if C not in (2, 3, 4):
            raise ValueError(f"SkeletonArrays: {expected} with C = 2 (x, y), "
                             f"3 (x, y, z or x, y, score) or 4 channels (got "
                             f"shape {tuple(shape)}, C = {C}); if the array "
                             f"is in another axis order, transpose it")
        if N < 1 or T < 1 or M < 1:
            raise ValueError(f"SkeletonArrays: {expected} with at least one "
                             f"sample, frame and body (got shape {tuple(shape)})")
        return N, C, T, Vd, M

    @property
    def processed_file_names(self) -> List[str]:
        return [self.processed_name(self._identity, layout_tag(self.layout),
                                    f'M{self.layout.num_bodies}',
                                    f'T{self.num_frames}',
                                    f'{self.padding}pad')]

    def read_data_list(self) -> List[Data]:
        bodies = self.layout.num_bodies
        data_list = []
        for n in range(self.array.shape[0]):
            # One sample at a time (a copy, never a view of the file): a
            # memory-mapped file is read piecewise.
            sample = np.array(self.array[n], dtype=np.float32)  # C, T, V, M
            length = trailing_length(sample, time_axis=1)
            seq = sample[:, :max(length, 1)].transpose(1, 3, 2, 0)  # T, M, V, C
            if length and (self.padding == 'repeat' or (
                    self.padding == 'auto' and length == sample.shape[1])):
                length, seq = undo_repeat_padding(seq)
            if seq.shape[1] < bodies:
                pad = np.zeros(seq.shape[:1] + (bodies - seq.shape[1],)
                               + seq.shape[2:], dtype=np.float32)
                seq = np.concatenate([seq, pad], axis=1)
            source = self.sample_names[n] if self.sample_names else str(n)
            data = skeleton_to_data(seq, self.layout, int(self.labels[n]),
                                    self.num_frames, source=source)
            data.length = torch.tensor([length], dtype=torch.long)
            data_list.append(data)
        return data_list


def _array_hash(array: np.ndarray) -> str:
    h = hashlib.sha1(f'{array.dtype.str}|{array.shape}'.encode())
    for n in range(array.shape[0]):  # sample by sample: no full copy
        h.update(np.ascontiguousarray(array[n]).tobytes())
    return h.hexdigest()[:12]
