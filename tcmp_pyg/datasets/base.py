"""What every skeleton dataset shares: sequence -> ``Data``, caching, errors."""
from __future__ import annotations

import hashlib
import os
import os.path as osp
import re
import tempfile
import warnings
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from tcmp_pyg.layouts import SkeletonLayout
from tcmp_pyg.transforms import resample_frames

# Bump when the processed format changes: it is part of every processed file name.
PROCESSED_VERSION = 1


def skeleton_to_data(seq: np.ndarray, layout: SkeletonLayout, y: int,
                     num_frames: Optional[int] = None, **meta: Any) -> Data:
    r"""Turns one skeleton sequence into a PyG graph.

    Args:
        seq (np.ndarray): Coordinates of shape ``[T, M, V, C]``.
        layout (SkeletonLayout): The skeleton; ``M`` must equal its body count.
        y (int): Class index.
        num_frames (int, optional): Resample to this many frames by linear
            interpolation. (default: :obj:`None`, keep ``T``)
        **meta: Extra attributes; ints become ``[1]`` tensors so they batch
            into ``[B]``, strings batch into lists.

    Returns:
        :class:`~torch_geometric.data.Data` with ``x`` of shape ``[M * V, T, C]``
        (node-first, body-major), ``edge_index`` (bones of every body, both
        directions), ``y`` of shape ``[1]`` and ``length`` (original ``T``).
    """
    seq = np.asarray(seq, dtype=np.float32)
    if seq.ndim != 4:
        raise ValueError(f"Expected a sequence of shape [T, M, V, C] "
                         f"(got shape {tuple(seq.shape)})")
    T, M, V, C = seq.shape
    if (M, V) != (layout.num_bodies, layout.num_joints):
        raise ValueError(f"Expected {layout.num_bodies} bodies x "
                         f"{layout.num_joints} joints for layout "
                         f"'{layout.name}' (got {M} x {V})")
    if T < 1:
        raise ValueError("Expected a sequence with at least one frame")
    x = torch.from_numpy(seq)
    if num_frames is not None:
        x = resample_frames(x, num_frames, dim=0)
    x = x.reshape(x.size(0), M * V, C).transpose(0, 1).contiguous()  # [M*V, T, C]
    data = Data(x=x, edge_index=layout.edge_index(),
                y=torch.tensor([int(y)], dtype=torch.long),
                length=torch.tensor([T], dtype=torch.long))
    for key, value in meta.items():
        if isinstance(value, (bool, int, np.integer)):
            value = torch.tensor([int(value)], dtype=torch.long)
        data[key] = value
    return data


def atomic_save(data_list: Sequence[Data], path: str) -> None:
    """Collates and writes ``data_list`` to ``path`` via a temporary file, so an
    interrupted run never leaves a processed file behind."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path), suffix='.tmp')
    os.close(fd)
    try:
        InMemoryDataset.save(list(data_list), tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def check_choice(arg: str, value: Any, choices: Sequence[Any]) -> Any:
    """Returns ``value`` if it is one of ``choices``, else a :class:`ValueError`."""
    if value not in choices:
        raise ValueError(f"Expected '{arg}' to be one of {list(choices)} "
                         f"(got {value!r})")
    return value


def check_num_frames(num_frames: Any) -> int:
    """Validates the ``num_frames`` argument of a dataset (an int >= 1)."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) \
            or num_frames < 1:
        raise ValueError(f"Expected 'num_frames' to be an integer >= 1 "
                         f"(got {num_frames!r}); every sequence is resampled "
                         f"to it so that sequences batch together")
    return int(num_frames)


def _callable_repr(obj: Any) -> str:
    # As PyG's own check does: drop memory addresses ('<function f at 0x..>').
    return 'None' if obj is None else re.sub(r'(<.*?)\s.*(>)', r'\1\2', str(obj))


class SkeletonDataset(InMemoryDataset):
    r"""Base class of the skeleton datasets (one :class:`Data` per sequence).

    The processed file holds every sequence of the dataset (all splits); the
    split arguments of a subclass only select indices, so switching folds or
    splits never re-processes. Processing options (``num_frames``, label
    variant, ...) and the ``pre_transform`` / ``pre_filter`` (by their
    ``repr``) are part of the processed file name, so changing them never
    reuses a stale cache.

    Subclasses set :attr:`name`, :attr:`layout`, :attr:`class_names`,
    :attr:`obtain` (how to get the raw files), :attr:`raw_layout` (what
    ``raw/`` must hold) and the CLI table fields :attr:`total_classes`,
    :attr:`num_sequences` and :attr:`protocols`; they implement
    :meth:`raw_file_names`, :meth:`processed_file_names` (via
    :meth:`processed_name`), :meth:`read_data_list` and :meth:`split_mask`.
    """
    name: str = ''
    layout: SkeletonLayout
    class_names: Tuple[str, ...] = ()
    total_classes: int = 0
    num_sequences: str = ''
    protocols: str = ''
    obtain: str = ''
    raw_layout: str = ''

    def __init__(self, root: str, transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, log: bool = True) -> None:
        with warnings.catch_warnings():
            # The processed file name already encodes pre_transform and
            # pre_filter, so PyG's "differs from the one used" is a false alarm.
            warnings.filterwarnings(
                'ignore', message='The `pre_(transform|filter)` argument differs')
            super().__init__(root, transform, pre_transform, pre_filter,
                             force_reload=force_reload, log=log)
        self._load_processed()
        keep = self.split_mask()
        if keep is not None:
            self._indices = torch.nonzero(keep).view(-1).tolist()

    @property
    def raw_dir(self) -> str:
        return osp.join(self.root, 'raw')

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, 'processed')

    def processed_name(self, *options: Union[str, int]) -> str:
        """The processed file name for these processing options, e.g.
        ``sbu_T40_v1.pt``; a pre_transform / pre_filter adds a short hash."""
        parts = [self.name, *[str(o) for o in options]]
        if self.pre_transform is not None or self.pre_filter is not None:
            key = '|'.join([_callable_repr(self.pre_transform),
                            _callable_repr(self.pre_filter)])
            parts.append('pre' + hashlib.sha1(key.encode()).hexdigest()[:8])
        return '_'.join(parts) + f'_v{PROCESSED_VERSION}.pt'

    def download(self) -> None:
        # Nothing can be fetched automatically: say where the files go.
        missing = [f for f in self.raw_paths if not osp.exists(f)]
        if missing:
            more = f' and {len(missing) - 3} more' if len(missing) > 3 else ''
            found = (f"missing {', '.join(repr(m) for m in missing[:3])}"
                     f"{more}")
        else:  # datasets without a fixed file list found no file at all
            found = 'no raw file found'
        raise FileNotFoundError(
            f"{type(self).__name__}: raw files not found in '{self.raw_dir}' "
            f"({found}). Expected: {self.raw_layout}. {self.obtain}")

    def read_data_list(self) -> List[Data]:
        """Parses the raw files into one :class:`Data` per sample."""
        raise NotImplementedError

    def split_mask(self) -> Optional[Tensor]:
        """Boolean mask over all processed sequences selecting this split
        (:obj:`None` keeps all)."""
        return None

    def process(self) -> None:
        data_list: Iterable[Data] = self.read_data_list()
        if self.pre_filter is not None:
            data_list = [d for d in data_list if self.pre_filter(d)]
        if self.pre_transform is not None:
            data_list = [self.pre_transform(d) for d in data_list]
        data_list = list(data_list)
        if not data_list:
            raise ValueError(f"{type(self).__name__}: no usable sequence in "
                             f"'{self.raw_dir}' (after pre_filter)")
        atomic_save(data_list, self.processed_paths[0])

    def _load_processed(self) -> None:
        path = self.processed_paths[0]
        try:
            self.load(path)
        except Exception as e:
            raise RuntimeError(
                f"{type(self).__name__}: the processed file '{path}' could not "
                f"be loaded ({type(e).__name__}: {e}). It is stale or corrupt: "
                f"delete '{self.processed_dir}' or pass force_reload=True."
            ) from e

    def has_meta(self, key: str) -> bool:
        """Whether every sequence carries the attribute ``key``."""
        return key in self._data

    def all_meta(self, key: str) -> Union[Tensor, List[str]]:
        """A per-sequence attribute over the whole processed file (all
        splits): a ``[N]`` tensor for numbers, a list for strings."""
        value = self._data[key]
        if self.slices is None:  # a single sequence: nothing was collated
            return [value] if isinstance(value, str) else value.view(-1)[:1]
        return list(value) if isinstance(value, (list, tuple)) else value.view(-1)

    def meta(self, key: str) -> Union[Tensor, List[str]]:
        """A per-sequence attribute (``'y'``, ``'length'``, ``'subject'``,
        ...) of the sequences of this split, without separating the graphs."""
        value = self.all_meta(key)
        idx = list(self.indices())
        if isinstance(value, list):
            return [value[i] for i in idx]
        return value.index_select(0, torch.tensor(idx, dtype=torch.long))

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self)})'
