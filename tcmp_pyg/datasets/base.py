"""What every skeleton dataset shares: sequence -> ``Data``, caching, errors."""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import re
import tempfile
import warnings
from typing import (Any, Callable, Iterable, Iterator, List, NamedTuple,
                    Optional, Sequence, Tuple, TypeVar, Union)

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from tcmp_pyg.datasets.on_disk import (ON_DISK_THRESHOLD, OnDiskSamples,
                                       default_num_workers, save_on_disk)
from tcmp_pyg.datasets.parsing import (Line, Note, SkippedFileWarning,
                                       collect_data_warnings,
                                       issue_data_warnings, warn_data, where)
from tcmp_pyg.layouts import SkeletonLayout
from tcmp_pyg.transforms import resample_frames

# Bump when the processed format changes: it is part of every processed file name.
PROCESSED_VERSION = 1

# Largest accepted coordinate magnitude in a raw file. Every dataset stores
# metres, millimetres, pixels or normalised units, so anything larger is a
# corrupt value; and float32 squares overflow from about 1.8e19 on, which
# would turn distances and norms (ScaleNormalize, the loss) into inf/NaN.
MAX_COORDINATE = 1e6

# What the raw datasets do with a raw file they cannot read.
ON_ERROR = ('raise', 'skip')

Item = TypeVar('Item')
Result = TypeVar('Result')


class ReadFailure(NamedTuple):
    """The message of the error a raw file raised (``on_error='skip'``)."""
    error: str


def read_or_failure(read: Callable[[Item], Result], item: Item
                    ) -> Union[Result, ReadFailure]:
    """``read(item)``, or a :class:`ReadFailure` if it raises a
    :class:`ValueError` or :class:`OSError` (a malformed, truncated or
    missing file). Module-level, so ``functools.partial(read_or_failure,
    read)`` runs in worker processes."""
    try:
        return read(item)
    except (ValueError, OSError) as e:
        return ReadFailure(str(e))


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


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` via a temporary file and a rename."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path) or '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def check_coordinates(coords: np.ndarray, path: str, lines: Sequence[Line],
                      what: str, bound: float = MAX_COORDINATE) -> None:
    r"""Rejects coordinates whose magnitude exceeds ``bound``.

    Args:
        coords (np.ndarray): Parsed coordinates, one row per line of
            ``lines`` (any trailing shape).
        path (str): The file (for the message).
        lines (Sequence[Line]): The ``(line_number, text)`` each row came from.
        what (str): What the values are, e.g. ``'joint coordinates'``.
        bound (float, optional): The largest accepted magnitude.
            (default: :obj:`MAX_COORDINATE` = 1e6)

    Raises:
        ValueError: ``"<file>, line N: expected joint coordinates within
            +-1e+06 (got 1e+30)"`` for the first line holding one.
    """
    flat = np.asarray(coords).reshape(len(coords), -1) if len(coords) else None
    if flat is not None and (np.abs(flat) > bound).any():
        row, col = np.argwhere(np.abs(flat) > bound)[0]
        value = flat[row, col]
        raise ValueError(f"{where(path, lines[int(row)][0])}: expected {what} "
                         f"within +-{bound:g} (got {float(value):.7g})")


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

    **Storage.** By default every sequence is collated into memory, as in any
    :class:`~torch_geometric.data.InMemoryDataset`. With ``on_disk=True`` the
    samples are instead streamed into a memory-mapped array (see
    :mod:`tcmp_pyg.datasets.on_disk`) and :meth:`get` reads one sample per
    access; the graphs, the metadata (:meth:`meta`, :meth:`all_meta`), the
    splits and the processed-name rules are the same. ``on_disk=None``
    decides from :meth:`estimated_nbytes`: on disk above
    :obj:`~tcmp_pyg.datasets.on_disk.ON_DISK_THRESHOLD` (2 GiB). The dataset
    stays an ``InMemoryDataset`` subclass either way (same API); on disk it
    simply holds nothing collated.

    Subclasses set :attr:`name`, :attr:`layout`, :attr:`class_names`,
    :attr:`obtain` (how to get the raw files), :attr:`raw_layout` (what
    ``raw/`` must hold) and the CLI table fields :attr:`total_classes`,
    :attr:`num_sequences` and :attr:`protocols`; they implement
    :meth:`raw_file_names`, :meth:`processed_file_names` (via
    :meth:`processed_name`, and
    :func:`~tcmp_pyg.datasets.on_disk.on_disk_file_names` for the on-disk
    storage), :meth:`read_data_list` and :meth:`split_mask`. Large datasets
    also implement :meth:`iter_samples` (reading in parallel, one sample at
    a time) and :meth:`estimated_nbytes`.

    Args:
        root (str): Root directory (``raw/`` and ``processed/`` below it).
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-process the dataset.
            (default: :obj:`False`)
        log (bool, optional): Print progress while processing.
            (default: :obj:`True`)
        on_disk (bool, optional): Store the processed samples in a
            memory-mapped file instead of memory; :obj:`None` decides by
            size. (default: :obj:`False`)
        num_workers (int, optional): Processes that read raw files in
            parallel (datasets with :meth:`iter_samples`); :obj:`0` reads in
            this process. (default: :obj:`None`, the CPU count)
        on_error (str, optional): What to do with a raw file that cannot be
            read (malformed, truncated, missing, or named outside the
            dataset): :obj:`'raise'` its error, or :obj:`'skip'` it, process
            every other file and end with one
            :class:`~tcmp_pyg.datasets.parsing.SkippedFileWarning` listing
            each skipped file and why, also written to
            :attr:`skip_report_path` in ``processed/``. The option is part
            of the processed file name. (default: :obj:`'raise'`)
    """
    name: str = ''
    layout: SkeletonLayout
    class_names: Tuple[str, ...] = ()
    total_classes: int = 0
    num_sequences: str = ''
    protocols: str = ''
    obtain: str = ''
    raw_layout: str = ''
    # The data warnings of the processing (see DataWarning); None: not known
    # yet (read from beside the processed file).
    _data_notes: Optional[List[Note]] = None

    def __init__(self, root: str, transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, log: bool = True, *,
                 on_disk: Optional[bool] = False,
                 num_workers: Optional[int] = None,
                 on_error: str = 'raise') -> None:
        self.on_error = check_choice('on_error', on_error, ON_ERROR)
        self._failures: List[str] = []  # files skipped (on_error='skip')
        check_choice('on_disk', on_disk, (False, True, None))
        if num_workers is not None and (isinstance(num_workers, bool) or not
                                        isinstance(num_workers, int) or
                                        num_workers < 0):
            raise ValueError(f"Expected 'num_workers' to be an integer >= 0 "
                             f"(got {num_workers!r})")
        self.num_workers = default_num_workers() if num_workers is None \
            else num_workers
        self._samples: Optional[OnDiskSamples] = None
        if on_disk is None:
            self.root = root  # estimated_nbytes() may look at raw_dir
            on_disk = self.estimated_nbytes() > ON_DISK_THRESHOLD
        self.on_disk = bool(on_disk)
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
        # Facts about the data: issued on every load, not only the first.
        if self._data_notes is None:
            self._data_notes = self._read_notes()
        issue_data_warnings(self._data_notes)

    @property
    def raw_dir(self) -> str:
        return osp.join(self.root, 'raw')

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, 'processed')

    def processed_name(self, *options: Union[str, int]) -> str:
        """The processed file name for these processing options, e.g.
        ``sbu_T40_v1.pt``; ``on_error='skip'`` adds ``skip``, a
        pre_transform / pre_filter a short hash."""
        parts = [self.name, *[str(o) for o in options]]
        if getattr(self, 'on_error', 'raise') == 'skip':
            parts.append('skip')
        if self.pre_transform is not None or self.pre_filter is not None:
            key = '|'.join([_callable_repr(self.pre_transform),
                            _callable_repr(self.pre_filter)])
            parts.append('pre' + hashlib.sha1(key.encode()).hexdigest()[:8])
        return '_'.join(parts) + f'_v{PROCESSED_VERSION}.pt'

    @property
    def notes_path(self) -> Optional[str]:
        """The file beside the processed data that stores the data warnings
        of its processing, when there are any (:obj:`None` when nothing is
        written)."""
        if not self.processed_dir:
            return None
        return self.processed_paths[0] + '.warnings.json'

    def _read_notes(self) -> List[Note]:
        path = self.notes_path
        if path is None or not osp.isfile(path):
            return []  # processed before warnings were stored
        try:
            with open(path, encoding='utf-8') as f:
                return [(str(c), str(m)) for c, m in json.load(f)]
        except (OSError, ValueError, TypeError):
            return []

    def _write_notes(self, notes: List[Note]) -> None:
        self._data_notes = list(notes)
        path = self.notes_path
        if path is None:
            return
        if notes:
            atomic_write_text(path, json.dumps(self._data_notes))
        elif osp.exists(path):  # from an earlier processing
            os.remove(path)

    @property
    def skip_report_path(self) -> str:
        """The report of the raw files skipped by ``on_error='skip'`` (one
        line per file: its error), ``processed/<processed name>.skipped.txt``."""
        stem = self.processed_file_names[0].rsplit('.', 1)[0]
        return osp.join(self.processed_dir, stem + '.skipped.txt')

    def fail(self, path: str, error: Exception) -> None:
        """Raises ``error`` (``on_error='raise'``), or records that ``path``
        is skipped because of it (``on_error='skip'``)."""
        if self.on_error == 'raise':
            raise error
        message = ' '.join(str(error).split())  # one line
        if path not in message:
            message = f'{path}: {message}'
        self._failures.append(message)

    def read_raw(self, read: Callable[..., Result], path: str, *args: Any
                 ) -> Optional[Result]:
        """``read(path, *args)``; with ``on_error='skip'``, :obj:`None` after
        recording the :class:`ValueError` or :class:`OSError` it raised."""
        if self.on_error == 'raise':
            return read(path, *args)
        try:
            return read(path, *args)
        except (ValueError, OSError) as e:
            self.fail(path, e)
            return None

    def _report_failures(self) -> None:
        # One warning and one report for every file skipped by this run.
        if self.on_error != 'skip':
            return
        report = self.skip_report_path
        if not self._failures:
            if osp.exists(report):  # from an earlier processing
                os.remove(report)
            return
        atomic_write_text(report, ''.join(f'{m}\n' for m in self._failures))
        listed = ''.join(f'\n  {m}' for m in self._failures)
        warn_data(f"{type(self).__name__}: skipped {len(self._failures)} raw "
                  f"file(s) that could not be read (on_error='skip'; listed "
                  f"in '{report}'):{listed}", SkippedFileWarning)

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

    def iter_samples(self) -> Iterator[Data]:
        """Yields one :class:`Data` per sample. The on-disk storage streams
        from it; large datasets override it to read in parallel (with
        :attr:`num_workers`) and one sample at a time. By default it yields
        :meth:`read_data_list`."""
        yield from self.read_data_list()

    def estimated_nbytes(self) -> int:
        """Bytes the processed ``x`` of every sample would take (raw files
        present, before processing); ``on_disk=None`` compares it with
        :obj:`~tcmp_pyg.datasets.on_disk.ON_DISK_THRESHOLD`. (default: 0,
        small datasets stay in memory)"""
        return 0

    def split_mask(self) -> Optional[Tensor]:
        """Boolean mask over all processed sequences selecting this split
        (:obj:`None` keeps all)."""
        return None

    def process(self) -> None:
        empty = (f"{type(self).__name__}: no usable sequence in "
                 f"'{self.raw_dir}' (after pre_filter)")
        notes: List[Note] = []
        try:
            with collect_data_warnings() as notes:
                try:
                    source = self.iter_samples() if self.on_disk \
                        else self.read_data_list()
                    samples: Iterable[Data] = source
                    if self.pre_filter is not None:
                        samples = (d for d in samples if self.pre_filter(d))
                    if self.pre_transform is not None:
                        samples = (self.pre_transform(d) for d in samples)
                    if self.on_disk:
                        try:
                            save_on_disk(samples, *self.processed_paths[:2],
                                         empty_message=empty)
                        finally:  # after an error midway, stop the workers
                            getattr(source, 'close', lambda: None)()
                    else:
                        data_list = list(samples)
                finally:  # also when no file was left to process
                    self._report_failures()
            if not self.on_disk and not data_list:
                raise ValueError(empty)
        except Exception:
            issue_data_warnings(notes)  # they may explain the error
            raise
        if self.on_disk:
            self._write_notes(notes)
            return
        self._write_notes(notes)  # before the data: complete once it exists
        atomic_save(data_list, self.processed_paths[0])

    def _load_processed(self) -> None:
        paths = self.processed_paths
        try:
            if self.on_disk:
                self._samples = OnDiskSamples(paths[0], paths[1])
            else:
                self.load(paths[0])
        except Exception as e:
            what = (f"processed files '{paths[0]}' and '{paths[1]}' could not "
                    f"be loaded ({type(e).__name__}: {e}). They are"
                    if self.on_disk else
                    f"processed file '{paths[0]}' could not be loaded "
                    f"({type(e).__name__}: {e}). It is")
            raise RuntimeError(
                f"{type(self).__name__}: the {what} stale or corrupt: delete "
                f"'{self.processed_dir}' or pass force_reload=True."
            ) from e

    def len(self) -> int:
        if self._samples is not None:
            return len(self._samples)
        return super().len()

    def get(self, idx: int) -> Data:
        if self._samples is not None:
            return self._samples.get(idx)
        return super().get(idx)

    @property
    def num_classes(self) -> int:
        """The size of the label space (``len(class_names)``), not inferred
        from the labels present: a subset holding one class still has the
        dataset's classes."""
        if self.class_names:
            return len(self.class_names)
        return self._infer_num_classes(self.all_meta('y'))

    def has_meta(self, key: str) -> bool:
        """Whether every sequence carries the attribute ``key``."""
        if self._samples is not None:
            return self._samples.has(key)
        return key in self._data

    def all_meta(self, key: str) -> Union[Tensor, List[str]]:
        """A per-sequence attribute over the whole processed file (all
        splits): a ``[N]`` tensor for numbers, a list for strings."""
        if self._samples is not None:
            return self._samples.meta(key)
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

    def check_not_empty(self, description: str) -> None:
        """Raises a :class:`ValueError` naming ``description`` (e.g. ``'the
        test split of fold 3'``) if this split selects no sequence."""
        if len(self) == 0:
            total = len(self.all_meta('y'))
            raise ValueError(f"{type(self).__name__}: {description} has no "
                             f"sequence ({total} processed from "
                             f"'{self.raw_dir}'); check that raw/ holds the "
                             f"whole dataset")

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self)})'
