"""UTKinect-Action3D: ten daily actions, one Kinect v1 skeleton."""
from __future__ import annotations

import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (SkeletonDataset, check_choice,
                                    check_coordinates, check_num_frames,
                                    skeleton_to_data)
from tcmp_pyg.datasets.parsing import (check_integer_column, parse_int,
                                       parse_rows, read_lines, require_lines,
                                       shorten, warn_skipped, where)
from tcmp_pyg.layouts import KINECT_V1

UTKINECT_CLASSES = ('walk', 'sitDown', 'standUp', 'pickUp', 'carry', 'throw',
                    'push', 'pull', 'waveHands', 'clapHands')
UTKINECT_SUBJECTS = tuple(range(1, 11))

# (subject, repetition) -> {action: (start, end) or None when 'NaN NaN'}
Labels = Dict[Tuple[int, int], Dict[str, Optional[Tuple[int, int]]]]

_RECORDING = re.compile(r's(\d+)_e(\d+)')


def read_utkinect_labels(path: str) -> Labels:
    r"""Parses ``actionLabel.txt`` (or ``actionLabel_modified.txt``).

    Blocks of a recording name (``s01_e01``) followed by lines
    ``action: start end`` (inclusive frame ids; ``NaN NaN`` marks a missing
    segment; trailing spaces are allowed).

    Args:
        path (str): The label file.

    Returns:
        ``{(subject, repetition): {action: (start, end) or None}}`` in file
        order.

    Raises:
        ValueError: Naming the file and line if the file is malformed.
    """
    lines = read_lines(path)
    require_lines(path, lines, "recording names ('s01_e01') followed by "
                               "'action: start end' lines")
    labels: Labels = {}
    current: Optional[Tuple[int, int]] = None
    for lineno, line in lines:
        text = line.strip()
        m = _RECORDING.fullmatch(text)
        if m is not None:
            current = (int(m.group(1)), int(m.group(2)))
            if current in labels:
                raise ValueError(f"{where(path, lineno)}: recording '{text}' "
                                 f"is listed twice")
            labels[current] = {}
            continue
        action, colon, rest = text.partition(':')
        tokens = rest.split()
        if not colon or len(tokens) != 2:
            raise ValueError(f"{where(path, lineno)}: expected a recording name "
                             f"like 's01_e01' or 'action: start end' "
                             f"(got {shorten(text)})")
        if current is None:
            raise ValueError(f"{where(path, lineno)}: expected a recording name "
                             f"like 's01_e01' before the first action line")
        action = action.strip()
        if action not in UTKINECT_CLASSES:
            raise ValueError(f"{where(path, lineno)}: expected an action among "
                             f"{list(UTKINECT_CLASSES)} (got {shorten(action)})")
        if action in labels[current]:
            raise ValueError(f"{where(path, lineno)}: action '{action}' is "
                             f"listed twice for this recording")
        nans = [t.lower() == 'nan' for t in tokens]
        if all(nans):
            labels[current][action] = None
            continue
        if any(nans):
            raise ValueError(f"{where(path, lineno)}: expected two frame ids or "
                             f"'NaN NaN' (got {shorten(rest.strip())})")
        start = parse_int(tokens[0], path, lineno, 'start frame id')
        end = parse_int(tokens[1], path, lineno, 'end frame id')
        if start > end:
            raise ValueError(f"{where(path, lineno)}: expected start <= end "
                             f"(got {start} > {end})")
        labels[current][action] = (start, end)
    return labels


def read_utkinect_joints(path: str) -> Tuple[np.ndarray, np.ndarray]:
    r"""Parses one ``joints_sXX_eYY.txt``.

    One whitespace-separated line per skeleton frame: the frame id, then 20
    joints as ``x y z`` (metres). Frame ids may repeat with other
    coordinates; every line is kept, in file order.

    Args:
        path (str): The file.

    Returns:
        ``(frame_ids [L] int64, joints [L, 20, 3] float32)``.

    Raises:
        ValueError: Naming the file and line if the file is malformed, or if
            a coordinate exceeds
            :obj:`~tcmp_pyg.datasets.base.MAX_COORDINATE` in magnitude.
    """
    lines = read_lines(path)
    require_lines(path, lines, 'one line per frame')
    rows = parse_rows(path, lines, 1 + 20 * 3, 'frame id, then 20 joints x '
                                               '(x, y, z)')
    ids = check_integer_column(rows[:, 0], path, lines, 'frame id')
    check_coordinates(rows[:, 1:], path, lines, 'joint coordinates')
    return ids, rows[:, 1:].reshape(-1, 20, 3).astype(np.float32)


class UTKinectAction3D(SkeletonDataset):
    r"""The UTKinect-Action3D dataset from the `"View Invariant Human Action
    Recognition Using Histograms of 3D Joints"
    <https://doi.org/10.1109/CVPRW.2012.6239233>`_ paper: 10 subjects perform
    10 actions twice, recorded with a Kinect v1 (20 joints, Kinect SDK order).

    Each recording (``joints_sXX_eYY.txt``) is cut into action segments by
    ``actionLabel.txt``: a segment is every joint line whose frame id lies in
    ``[start, end]``, in file order (the files repeat 542 frame ids with other
    coordinates; all lines are kept). ``s10_e02 carry`` is ``NaN NaN`` in the
    label files, leaving 199 segments. A labelled segment without any joint
    line would be skipped with a warning (none is, in the release).

    ``labels='modified'`` reads ``actionLabel_modified.txt``, which fixes 7
    apparent typos of the original (a correction by R. Vemulapalli's code, not
    by the dataset authors).

    Protocols: :obj:`'cross_subject'` trains on the odd subjects and tests on
    the even ones; :obj:`'loso'` (leave one subject out) tests on
    ``test_subject`` and trains on the nine others.

    Every segment is a graph with ``x`` of shape ``[20, num_frames, 3]``,
    ``y``, ``length``, ``subject``, ``repetition``, ``start`` and ``end``
    (frame ids) and ``source`` (the joint file name).

    **STATS:**

    .. list-table::
        :widths: 10 10 10 10 10
        :header-rows: 1

        * - #sequences
          - #classes
          - #joints
          - #frames
          - #subjects
        * - 199
          - 10
          - 20
          - 5--170 (median 28)
          - 10

    Args:
        root (str): Root directory; raw files go to ``root/raw/`` or
            ``root/raw/joints/``.
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        protocol (str, optional): :obj:`'cross_subject'` or :obj:`'loso'`.
            (default: :obj:`'cross_subject'`)
        test_subject (int, optional): The held-out subject (1 to 10) of the
            :obj:`'loso'` protocol. (default: :obj:`None`)
        num_frames (int, optional): Frames every segment is resampled to.
            (default: :obj:`40`)
        labels (str, optional): :obj:`'original'` or :obj:`'modified'` label
            file. (default: :obj:`'original'`)
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
    name = 'utkinect'
    layout = KINECT_V1
    class_names = UTKINECT_CLASSES
    total_classes = len(UTKINECT_CLASSES)
    num_sequences = '199'
    protocols = 'cross-subject (odd/even) or leave-one-subject-out'
    raw_layout = ("root/raw/ (or root/raw/joints/) holding actionLabel.txt, "
                  "actionLabel_modified.txt for labels='modified', and the 20 "
                  "joints_sXX_eYY.txt files")
    obtain = ("Download the skeleton joints from "
              "http://cvrc.ece.utexas.edu/KinectDatasets/HOJ3D.html "
              "(research use).")

    def __init__(self, root: str, split: str = 'train',
                 protocol: str = 'cross_subject',
                 test_subject: Optional[int] = None, num_frames: int = 40,
                 labels: str = 'original', transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, *,
                 on_error: str = 'raise') -> None:
        self.split = check_choice('split', split, ('train', 'test'))
        self.protocol = check_choice('protocol', protocol,
                                          ('cross_subject', 'loso'))
        if protocol == 'loso':
            if test_subject is None:
                raise ValueError("The 'loso' protocol needs 'test_subject' "
                                 "(1 to 10)")
            check_choice('test_subject', test_subject, UTKINECT_SUBJECTS)
        elif test_subject is not None:
            raise ValueError(f"'test_subject' is only used by protocol='loso' "
                             f"(got protocol={protocol!r}, "
                             f"test_subject={test_subject!r})")
        self.test_subject = test_subject
        self.num_frames = check_num_frames(num_frames)
        self.labels = check_choice('labels', labels, ('original', 'modified'))
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload, on_error=on_error)

    @property
    def raw_dir(self) -> str:
        # The release keeps its files in a joints/ folder; accept both.
        raw = osp.join(self.root, 'raw')
        joints = osp.join(raw, 'joints')
        return joints if osp.isdir(joints) else raw

    @property
    def label_file(self) -> str:
        return ('actionLabel.txt' if self.labels == 'original'
                else 'actionLabel_modified.txt')

    @property
    def raw_file_names(self) -> List[str]:
        return [self.label_file]

    @property
    def processed_file_names(self) -> List[str]:
        return [self.processed_name(self.labels, f'T{self.num_frames}')]

    def read_data_list(self) -> List[Data]:
        labels = read_utkinect_labels(osp.join(self.raw_dir, self.label_file))
        data_list, empty = [], []
        for (subject, rep), segments in labels.items():
            name = f'joints_s{subject:02d}_e{rep:02d}.txt'
            path = osp.join(self.raw_dir, name)
            if not osp.isfile(path):
                self.fail(path, FileNotFoundError(
                    f"{path}: the joint file of recording s{subject:02d}_"
                    f"e{rep:02d} (listed in {self.label_file}) is missing"))
                continue
            read = self.read_raw(read_utkinect_joints, path)
            if read is None:
                continue
            ids, joints = read
            for action, frames in segments.items():
                if frames is None:  # 'NaN NaN': no such segment
                    continue
                start, end = frames
                keep = (ids >= start) & (ids <= end)
                if not keep.any():
                    empty.append(f'{name} {action} [{start}, {end}]')
                    continue
                data_list.append(skeleton_to_data(
                    joints[keep][:, None], self.layout,
                    UTKINECT_CLASSES.index(action), self.num_frames,
                    subject=subject, repetition=rep, start=start, end=end,
                    source=name))
        warn_skipped(type(self).__name__, empty,
                     'whose frame range holds no joint line')
        return data_list

    def split_mask(self) -> Tensor:
        subject = self.all_meta('subject')
        if self.protocol == 'cross_subject':
            test = subject % 2 == 0
        else:
            test = subject == self.test_subject
        return test if self.split == 'test' else ~test
