r"""Storage for skeleton datasets too large for memory (NTU RGB+D 120 is about
20 GB at 300 frames): the raw files are parsed once, by worker processes,
and the samples streamed into a memory-mapped array; a sample is read back
from it only when it is accessed.

A dataset stored on disk has two processed files, named after the file the
in-memory storage would write (see :func:`on_disk_file_names`):

- ``<name>.npy``: a standard NPY file of float32, shape ``[N, M * V, T, C]``:
  row ``i`` is sample ``i``'s ``x`` exactly as
  :func:`~tcmp_pyg.datasets.base.skeleton_to_data` builds it (node-first,
  body-major). ``np.load(path, mmap_mode='r')`` opens it.
- ``<name>.index.pt``: everything else: the attribute names in order, the
  ``edge_index`` shared by every sample, one ``[N, ...]`` tensor per tensor
  attribute (``y``, ``length``, ...) and one list per other attribute
  (``source``, ...). ``torch.load(path, weights_only=True)`` opens it.

Both are written to temporary files (``<file>.<pid>.tmp``) and renamed only
once complete, the index last, so an interrupted processing never leaves a
pair a later run would load; temporary files of processes that no longer run
are removed by the next processing.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import pickle
import struct
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List,
                    Optional, Sequence, Tuple, TypeVar, Union)

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from tqdm import tqdm

# Datasets whose processed samples would exceed this many bytes of ``x`` are
# stored on disk unless told otherwise (``on_disk=None``).
ON_DISK_THRESHOLD = 2 * 1024 ** 3

# Bytes reserved for the NPY header: the final shape is only known at the end.
NPY_HEADER_BYTES = 128

# Bump when the index layout changes.
INDEX_FORMAT = 1

Item = TypeVar('Item')
Result = TypeVar('Result')


def on_disk_file_names(name: str) -> List[str]:
    """The two processed files of the on-disk storage for the in-memory file
    name ``name``, e.g. ``['ntu_60_T64_v1.npy', 'ntu_60_T64_v1.index.pt']``
    for ``'ntu_60_T64_v1.pt'``."""
    stem = name[:-len('.pt')] if name.endswith('.pt') else name
    return [f'{stem}.npy', f'{stem}.index.pt']


def default_num_workers() -> int:
    """The CPUs this process may run on (all CPUs where that is unknown)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---- parallel reading ------------------------------------------------------

def _init_worker() -> None:
    # Worker processes share the CPUs: one thread each, no oversubscription.
    torch.set_num_threads(1)


# Tensor dtypes that travel between processes as numpy arrays.
_NUMPY_DTYPES = (torch.float16, torch.float32, torch.float64, torch.uint8,
                 torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


class _PlainData(dict):
    """A :class:`Data` as a dict of numpy arrays and plain values."""


def _to_plain(result: Any) -> Any:
    if isinstance(result, Data) and all(
            not isinstance(v, Tensor) or (not v.requires_grad and v.dtype in
                                          _NUMPY_DTYPES)
            for v in result.to_dict().values()):
        return _PlainData({k: v.numpy() if isinstance(v, Tensor) else v
                           for k, v in result.to_dict().items()})
    return result


def _from_plain(result: Any) -> Any:
    if isinstance(result, _PlainData):
        return Data(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                       for k, v in result.items()})
    return result


def _read_chunk(read: Callable[[Item], Result], chunk: Sequence[Item]) -> bytes:
    return pickle.dumps([_to_plain(read(item)) for item in chunk],
                        protocol=pickle.HIGHEST_PROTOCOL)


def read_parallel(read: Callable[[Item], Result], items: Sequence[Item],
                  num_workers: Optional[int] = None, *,
                  chunk_size: Optional[int] = None, progress: bool = False,
                  desc: Optional[str] = None) -> Iterator[Result]:
    r"""Yields ``read(item)`` for every item, in order, computed by worker
    processes.

    Items go to the workers in chunks; at most two chunks per worker are in
    flight, so results never pile up when the consumer is slower than the
    workers. An exception raised by ``read`` is raised here (with its
    message), and the pending chunks are cancelled. A :class:`Data` result
    travels as numpy arrays in a plain pickle: the multiprocessing pickler
    would move each tensor to shared memory, which costs more than parsing
    a file.

    Args:
        read (callable): A module-level (picklable) function of one item.
        items (Sequence): The work, e.g. file paths.
        num_workers (int, optional): Worker processes; :obj:`0` reads in this
            process. (default: :obj:`None`, :func:`default_num_workers`)
        chunk_size (int, optional): Items per task. (default: :obj:`None`,
            up to 64, small enough to give every worker eight chunks)
        progress (bool, optional): Show a tqdm progress bar.
            (default: :obj:`False`)
        desc (str, optional): The progress bar's label.
    """
    num_workers = default_num_workers() if num_workers is None else num_workers
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) \
            or num_workers < 0:
        raise ValueError(f"Expected 'num_workers' to be an integer >= 0 "
                         f"(got {num_workers!r})")
    with tqdm(total=len(items), desc=desc, disable=not progress,
              unit='file', smoothing=0.05) as bar:
        if num_workers == 0 or len(items) <= 1:
            for item in items:
                result = read(item)
                bar.update(1)
                yield result
            return
        if chunk_size is None:
            chunk_size = max(1, min(64, math.ceil(len(items) / (8 * num_workers))))
        chunks = (items[i:i + chunk_size] for i in range(0, len(items), chunk_size))
        with ProcessPoolExecutor(num_workers, initializer=_init_worker) as pool:
            pending: Deque[Future] = deque(
                pool.submit(_read_chunk, read, chunk)
                for chunk in islice(chunks, 2 * num_workers))
            try:
                while pending:
                    results = [_from_plain(r) for r in
                               pickle.loads(pending.popleft().result())]
                    for chunk in islice(chunks, 1):
                        pending.append(pool.submit(_read_chunk, read, chunk))
                    bar.update(len(results))
                    yield from results
            finally:  # an error, or the consumer stopped early
                for future in pending:
                    future.cancel()


# ---- writing ---------------------------------------------------------------

def npy_header(shape: Sequence[int], size: int = NPY_HEADER_BYTES) -> bytes:
    """An NPY 1.0 header for a C-order float32 array of ``shape``, padded
    with spaces to exactly ``size`` bytes (a multiple of 64 keeps the data
    aligned)."""
    text = repr({'descr': '<f4', 'fortran_order': False,
                 'shape': tuple(int(s) for s in shape)}).encode('latin1')
    prefix = np.lib.format.magic(1, 0)
    pad = size - len(prefix) - 2 - len(text) - 1
    if pad < 0:
        raise ValueError(f"Shape {tuple(shape)} does not fit an NPY header "
                         f"of {size} bytes")
    return prefix + struct.pack('<H', size - len(prefix) - 2) + text \
        + b' ' * pad + b'\n'


def _tmp_path(path: str) -> str:
    return f'{path}.{os.getpid()}.tmp'


def remove_stale_tmp(path: str) -> List[str]:
    """Removes the temporary files ``<path>.<pid>.tmp`` left by processes
    that no longer run (e.g. a processing killed midway); returns them."""
    folder, base = osp.split(path)
    removed = []
    if not osp.isdir(folder or '.'):
        return removed
    for name in os.listdir(folder or '.'):
        pid = name[len(base) + 1:-len('.tmp')]
        if not (name.startswith(base + '.') and name.endswith('.tmp')
                and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running (maybe processing right now)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue  # another user's process, or not a pid
        try:
            os.remove(osp.join(folder, name))
            removed.append(osp.join(folder, name))
        except FileNotFoundError:
            pass
    return removed


class _Columns:
    """Per-sample attributes other than ``x`` and ``edge_index`` gathered
    into one array per tensor attribute (grown by doubling) and one list per
    other attribute."""
    def __init__(self, first: Data, capacity: int) -> None:
        self.keys = [k for k in first.keys() if k not in ('x', 'edge_index')]
        self.arrays: Dict[str, np.ndarray] = {}
        self.lists: Dict[str, List[Any]] = {}
        for key in self.keys:
            value = first[key]
            if isinstance(value, Tensor):
                value = value.numpy()
                self.arrays[key] = np.empty((max(capacity, 1), *value.shape),
                                            dtype=value.dtype)
            else:
                self.lists[key] = []

    def add(self, i: int, data: Data) -> None:
        keys = [k for k in data.keys() if k not in ('x', 'edge_index')]
        if sorted(keys) != sorted(self.keys):
            raise ValueError(f"Expected every sample to have the attributes "
                             f"{sorted(self.keys)} (got {sorted(keys)} for "
                             f"sample {i})")
        for key, column in self.arrays.items():
            value = data[key]
            if not isinstance(value, Tensor) or value.shape != column.shape[1:] \
                    or value.numpy().dtype != column.dtype:
                raise ValueError(
                    f"Expected attribute '{key}' of every sample to be a "
                    f"{column.dtype} tensor of shape {tuple(column.shape[1:])} "
                    f"(got {value!r} for sample {i}); the on-disk storage "
                    f"keeps one array per attribute")
            if i == len(column):
                column = self.arrays[key] = np.concatenate([column, np.empty_like(column)])
            column[i] = value.numpy()
        for key, column in self.lists.items():
            column.append(data[key])

    def finish(self, n: int) -> Tuple[Dict[str, Tensor], Dict[str, List[Any]]]:
        tensors = {k: torch.from_numpy(np.ascontiguousarray(a[:n]))
                   for k, a in self.arrays.items()}
        return tensors, self.lists


def save_on_disk(samples: Iterable[Data], x_path: str, index_path: str, *,
                 capacity: int = 0,
                 empty_message: str = 'no sample to save') -> int:
    r"""Streams samples into the two files of the on-disk storage.

    Each ``x`` is appended to a temporary NPY file as soon as it arrives, so
    memory holds one sample (and the small per-sample attributes) at a time.
    Both files are renamed into place only when every sample is written; on
    any error (or interruption) the temporary files are removed and nothing
    is left a later run would load.

    Args:
        samples (Iterable[Data]): Graphs with a float32 ``x`` of one shape for
            all, one shared ``edge_index`` and the same other attributes.
        x_path (str): The ``.npy`` file.
        index_path (str): The index file.
        capacity (int, optional): Expected sample count (sizes the attribute
            arrays; they grow if it is exceeded). (default: :obj:`0`)
        empty_message (str, optional): The :class:`ValueError` message when
            there is no sample.

    Returns:
        The number of samples written.
    """
    folder = osp.dirname(x_path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    for path in (x_path, index_path):
        remove_stale_tmp(path)
    tmp_x, tmp_index = _tmp_path(x_path), _tmp_path(index_path)
    try:
        n, shape, edge_index, keys, columns = 0, None, None, [], None
        with open(tmp_x, 'wb') as f:
            f.write(npy_header((0,)))  # placeholder: rewritten at the end
            for data in samples:
                x = data.x
                if not isinstance(x, Tensor) or x.dtype != torch.float32:
                    raise ValueError(f"Expected 'x' of every sample to be a "
                                     f"float32 tensor for the on-disk storage "
                                     f"(got {getattr(x, 'dtype', type(x))} "
                                     f"for sample {n})")
                if shape is None:
                    shape, edge_index = tuple(x.shape), data.edge_index
                    keys = list(data.keys())
                    columns = _Columns(data, capacity)
                elif tuple(x.shape) != shape:
                    raise ValueError(f"Expected 'x' of every sample to have "
                                     f"shape {shape} for the on-disk storage "
                                     f"(got {tuple(x.shape)} for sample {n})")
                if not torch.equal(data.edge_index, edge_index):
                    raise ValueError(f"Expected every sample to share one "
                                     f"'edge_index' for the on-disk storage "
                                     f"(sample {n} differs from sample 0)")
                columns.add(n, data)
                f.write(x.contiguous().numpy().data)
                n += 1
            if n == 0:
                raise ValueError(empty_message)
            f.seek(0)
            f.write(npy_header((n, *shape)))
        tensors, lists = columns.finish(n)
        torch.save({'format': INDEX_FORMAT, 'num_samples': n,
                    'x_shape': [n, *shape], 'keys': keys,
                    'edge_index': edge_index, 'tensors': tensors,
                    'lists': lists}, tmp_index)
        # The index goes last: a pair is complete only once it is renamed.
        if osp.exists(index_path):
            os.remove(index_path)
        os.replace(tmp_x, x_path)
        os.replace(tmp_index, index_path)
    except BaseException:
        for path in (tmp_x, tmp_index):
            if osp.exists(path):
                os.remove(path)
        raise
    return n


# ---- reading ---------------------------------------------------------------

class OnDiskSamples:
    r"""The samples written by :func:`save_on_disk`, read one at a time.

    The NPY file is memory-mapped on first access (again in every process
    that unpickles this object, e.g. a DataLoader worker), so pickling it
    never copies the array.

    Args:
        x_path (str): The ``.npy`` file.
        index_path (str): The index file.

    Raises:
        ValueError: If the two files do not belong together (another sample
            count or shape) or the index is of another format.
    """
    def __init__(self, x_path: str, index_path: str) -> None:
        self.x_path, self.index_path = x_path, index_path
        index = torch.load(index_path, weights_only=True)
        if not isinstance(index, dict) or index.get('format') != INDEX_FORMAT:
            raise ValueError(f"'{index_path}' is not an index of format "
                             f"{INDEX_FORMAT}")
        self.keys: List[str] = index['keys']
        self.edge_index: Tensor = index['edge_index']
        self.tensors: Dict[str, Tensor] = index['tensors']
        self.lists: Dict[str, List[Any]] = index['lists']
        self.num_samples: int = index['num_samples']
        self._x: Optional[np.ndarray] = None
        x = self.x
        if x.shape != tuple(index['x_shape']) or x.dtype != np.float32:
            raise ValueError(f"'{x_path}' holds {x.dtype} of shape "
                             f"{tuple(x.shape)} but its index '{index_path}' "
                             f"describes float32 of shape "
                             f"{tuple(index['x_shape'])}")

    @property
    def x(self) -> np.ndarray:
        """The memory-mapped ``[N, M * V, T, C]`` array."""
        if self._x is None:
            self._x = np.load(self.x_path, mmap_mode='r')
        return self._x

    def __len__(self) -> int:
        return self.num_samples

    def get(self, idx: int) -> Data:
        """Sample ``idx`` as a new :class:`Data` (its own copies of every
        tensor)."""
        data = Data()
        for key in self.keys:
            if key == 'x':
                # np.array copies the row out of the mapped file.
                data.x = torch.from_numpy(np.array(self.x[idx]))
            elif key == 'edge_index':
                data.edge_index = self.edge_index.clone()
            elif key in self.tensors:
                data[key] = self.tensors[key][idx].clone()
            else:
                data[key] = self.lists[key][idx]
        return data

    def has(self, key: str) -> bool:
        return key in self.keys

    def meta(self, key: str) -> Union[Tensor, List[Any]]:
        """Attribute ``key`` of every sample: numbers flattened to ``[N]``
        (as the in-memory storage collates them), anything else a list."""
        if key in self.tensors:
            return self.tensors[key].reshape(-1)
        if key in self.lists:
            return list(self.lists[key])
        raise KeyError(key)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state['_x'] = None  # re-mapped where it is unpickled
        return state

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.num_samples})'
