"""What every skeleton dataset shares: sequence -> ``Data``, caching, errors."""
from __future__ import annotations

import os
import os.path as osp
import tempfile
from typing import Any, Callable, Iterable, List, Optional, Sequence

import numpy as np
import torch
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


class SkeletonDataset(InMemoryDataset):
    r"""Base class of the skeleton datasets (one :class:`Data` per sequence).

    Subclasses set :attr:`name`, :attr:`layout`, :attr:`obtain` (how to get the
    raw files) and :attr:`raw_layout` (what ``raw/`` must hold), implement
    :meth:`raw_file_names`, :meth:`processed_file_names` and
    :meth:`read_data_list`, and call :meth:`_load_processed` after
    ``super().__init__``.
    """
    name: str = ''
    layout: SkeletonLayout
    obtain: str = ''
    raw_layout: str = ''

    def __init__(self, root: str, transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, log: bool = True) -> None:
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload, log=log)
        self._load_processed()

    @property
    def raw_dir(self) -> str:
        return osp.join(self.root, 'raw')

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, 'processed')

    def download(self) -> None:
        # Nothing can be fetched automatically: say where the files go.
        raise FileNotFoundError(
            f"{type(self).__name__}: raw files not found in '{self.raw_dir}'. "
            f"Expected: {self.raw_layout}. {self.obtain}")

    def read_data_list(self) -> List[Data]:
        """Parses the raw files into one :class:`Data` per sample."""
        raise NotImplementedError

    def process(self) -> None:
        data_list: Iterable[Data] = self.read_data_list()
        if self.pre_filter is not None:
            data_list = [d for d in data_list if self.pre_filter(d)]
        if self.pre_transform is not None:
            data_list = [self.pre_transform(d) for d in data_list]
        atomic_save(list(data_list), self.processed_paths[0])

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

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self)})'
