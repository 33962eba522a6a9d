"""First-Person Hand Action benchmark (FPHA): 45 hand-object actions."""
from __future__ import annotations

import os.path as osp
import re
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (SkeletonDataset, check_choice,
                                    check_coordinates, check_num_frames,
                                    skeleton_to_data)
from tcmp_pyg.datasets.parsing import (check_integer_column, parse_int,
                                       parse_rows, read_lines, require_lines,
                                       shorten, warn_skipped, where)
from tcmp_pyg.layouts import FPHA as FPHA_LAYOUT

FPHA_NUM_CLASSES = 45
FPHA_SPLIT_FILE = 'data_split_action_recognition.txt'
FPHA_POSE_DIR = 'Hand_pose_annotation_v1'

_SUBJECT = re.compile(r'Subject_(\d+)')


class FPHAEntry(NamedTuple):
    """One line of the split file."""
    path: str  # 'Subject_k/<action>/<seq>'
    label: int
    train: bool


def read_fpha_split(path: str) -> List[FPHAEntry]:
    r"""Parses ``data_split_action_recognition.txt``.

    A ``Training N`` header, ``N`` lines ``Subject_k/<action>/<seq> <label>``,
    then a ``Test M`` header and ``M`` such lines (0-based labels).

    Args:
        path (str): The split file.

    Returns:
        The entries in file order.

    Raises:
        ValueError: Naming the file and line if the file is malformed
            (including an entry count that differs from its header's).
    """
    lines = read_lines(path)
    require_lines(path, lines, "'Training N' and 'Test M' sections")
    entries: List[FPHAEntry] = []
    seen: Dict[str, int] = {}
    name_of: Dict[int, str] = {}
    sections = []  # [header, lineno, announced count, entries]
    for lineno, line in lines:
        tokens = line.split()
        if tokens[0] in ('Training', 'Test'):
            if len(tokens) != 2:
                raise ValueError(f"{where(path, lineno)}: expected a header "
                                 f"'{tokens[0]} <count>' (got {shorten(line)})")
            count = parse_int(tokens[1], path, lineno, 'entry count', minimum=0)
            sections.append([tokens[0], lineno, count, 0])
            continue
        if not sections:
            raise ValueError(f"{where(path, lineno)}: expected a 'Training N' "
                             f"header before the first entry")
        if len(tokens) != 2:
            raise ValueError(f"{where(path, lineno)}: expected "
                             f"'Subject_k/<action>/<seq> <label>' "
                             f"(got {shorten(line)})")
        seq_path, label = tokens
        parts = seq_path.split('/')
        if len(parts) != 3 or not _SUBJECT.fullmatch(parts[0]) or \
                not all(p and p not in ('.', '..') for p in parts):
            raise ValueError(f"{where(path, lineno)}: expected a sequence path "
                             f"'Subject_k/<action>/<seq>' (got {shorten(seq_path)})")
        label = parse_int(label, path, lineno, 'label', minimum=0)
        if label >= FPHA_NUM_CLASSES:
            raise ValueError(f"{where(path, lineno)}: expected a label in "
                             f"0..{FPHA_NUM_CLASSES - 1} (got {label})")
        if seq_path in seen:
            raise ValueError(f"{where(path, lineno)}: '{seq_path}' is listed "
                             f"twice (first on line {seen[seq_path]})")
        if name_of.setdefault(label, parts[1]) != parts[1]:
            raise ValueError(f"{where(path, lineno)}: label {label} is action "
                             f"'{name_of[label]}' elsewhere (got "
                             f"{shorten(parts[1])})")
        seen[seq_path] = lineno
        sections[-1][3] += 1
        entries.append(FPHAEntry(seq_path, label, sections[-1][0] == 'Training'))
    for header, lineno, count, found in sections:
        if count != found:
            raise ValueError(f"{where(path, lineno)}: '{header} {count}' "
                             f"announces {count} entries (got {found}: "
                             f"truncated file?)")
    return entries


def read_fpha_skeleton(path: str) -> np.ndarray:
    r"""Parses one FPHA ``skeleton.txt``.

    One whitespace-separated line per frame: the frame index, then 21 hand
    joints as ``x y z`` (millimetres, camera coordinates).

    Args:
        path (str): The file.

    Returns:
        float32 array of shape ``[T, 1, 21, 3]``; ``T`` is 0 for an empty
        file (the release has a few; the caller skips them).

    Raises:
        ValueError: Naming the file and line if the file is malformed, or if
            a coordinate exceeds
            :obj:`~tcmp_pyg.datasets.base.MAX_COORDINATE` in magnitude.
    """
    lines = read_lines(path)
    rows = parse_rows(path, lines, 1 + 21 * 3, 'frame index, then 21 joints x '
                                               '(x, y, z)')
    check_integer_column(rows[:, 0], path, lines, 'frame index')
    check_coordinates(rows[:, 1:], path, lines, 'joint coordinates')
    return rows[:, 1:].reshape(-1, 1, 21, 3).astype(np.float32)


class FPHA(SkeletonDataset):
    r"""The First-Person Hand Action benchmark from the `"First-Person Hand
    Action Benchmark with RGB-D Videos and 3D Hand Pose Annotations"
    <https://arxiv.org/abs/1704.02463>`_ paper: 6 subjects perform 45
    hand-object actions, with 21 annotated hand joints per frame.

    The split is the official 1:1 split of
    ``data_split_action_recognition.txt`` (600 training, 575 test sequences);
    labels and class names come from that file. Empty ``skeleton.txt`` files
    (a few in the release) are skipped with one warning listing them.

    Every sequence is a graph with ``x`` of shape ``[21, num_frames, 3]``,
    ``y``, ``length``, ``subject``, ``train`` (1 for the training split),
    ``action`` (class name) and ``source`` (``'Subject_k/<action>/<seq>'``).

    **STATS:**

    .. list-table::
        :widths: 10 10 10 10
        :header-rows: 1

        * - #sequences
          - #classes
          - #joints
          - #subjects
        * - 1,175
          - 45
          - 21
          - 6

    Args:
        root (str): Root directory; raw files go to ``root/raw/``.
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        num_frames (int, optional): Frames every sequence is resampled to.
            (default: :obj:`64`)
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-process the dataset.
            (default: :obj:`False`)
        on_error (str, optional): :obj:`'raise'` the error of the first raw
            file that cannot be read, or :obj:`'skip'` every such file, with
            one warning listing them and why, also written to
            ``processed/<name>.skipped.txt``. (default: :obj:`'raise'`)
    """
    name = 'fpha'
    layout = FPHA_LAYOUT
    total_classes = FPHA_NUM_CLASSES
    num_sequences = '1,175'
    protocols = 'official 1:1 split (600 train / 575 test)'
    raw_layout = (f"root/raw/{FPHA_SPLIT_FILE} and root/raw/{FPHA_POSE_DIR}/"
                  f"Subject_k/<action>/<seq>/skeleton.txt")
    obtain = ("Request access at https://guiggh.github.io/publications/"
              "first-person-hands/ (academic, non-commercial research only) "
              "and download Hand_pose_annotation_v1.zip and the split file.")

    def __init__(self, root: str, split: str = 'train', num_frames: int = 64,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, *,
                 on_error: str = 'raise') -> None:
        self.split = check_choice('split', split, ('train', 'test'))
        self.num_frames = check_num_frames(num_frames)
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload, on_error=on_error)
        # Names come from the split file's action folders; a label without
        # any (kept) sequence has no name to show.
        names = [f'class_{i}' for i in range(FPHA_NUM_CLASSES)]
        for y, action in zip(self.all_meta('y').tolist(), self.all_meta('action')):
            names[y] = action
        self.class_names = tuple(names)

    @property
    def raw_file_names(self) -> List[str]:
        return [FPHA_SPLIT_FILE, FPHA_POSE_DIR]

    @property
    def processed_file_names(self) -> List[str]:
        return [self.processed_name(f'T{self.num_frames}')]

    def read_data_list(self) -> List[Data]:
        entries = read_fpha_split(osp.join(self.raw_dir, FPHA_SPLIT_FILE))
        data_list, empty = [], []
        for entry in entries:
            path = osp.join(self.raw_dir, FPHA_POSE_DIR, *entry.path.split('/'),
                            'skeleton.txt')
            if not osp.isfile(path):
                self.fail(path, FileNotFoundError(
                    f"{path}: listed in {FPHA_SPLIT_FILE} but missing"))
                continue
            seq = self.read_raw(read_fpha_skeleton, path)
            if seq is None:
                continue
            if len(seq) == 0:
                empty.append(entry.path)
                continue
            subject, action, _ = entry.path.split('/')
            data_list.append(skeleton_to_data(
                seq, self.layout, entry.label, self.num_frames,
                subject=int(_SUBJECT.fullmatch(subject).group(1)),
                train=entry.train, action=action, source=entry.path))
        warn_skipped(type(self).__name__, empty, 'with an empty skeleton.txt')
        return data_list

    def split_mask(self) -> Tensor:
        train = self.all_meta('train').bool()
        return train if self.split == 'train' else ~train
