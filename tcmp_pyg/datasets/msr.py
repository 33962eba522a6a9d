"""MSR Action3D: twenty gaming actions, one Kinect v1 skeleton."""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Callable, List, Optional

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (SkeletonDataset, check_choice,
                                    check_coordinates, check_num_frames,
                                    skeleton_to_data)
from tcmp_pyg.datasets.parsing import (parse_rows, read_lines, warn_skipped,
                                       where)
from tcmp_pyg.layouts import KINECT_V1

MSR_CLASSES = ('high_arm_wave', 'horizontal_arm_wave', 'hammer', 'hand_catch',
               'forward_punch', 'high_throw', 'draw_x', 'draw_tick',
               'draw_circle', 'hand_clap', 'two_hand_wave', 'side_boxing',
               'bend', 'forward_kick', 'side_kick', 'jogging', 'tennis_swing',
               'tennis_serve', 'golf_swing', 'pick_up_and_throw')
MSR_TRAIN_SUBJECTS = (1, 3, 5, 7, 9)

# The MSR files list the 20 joints in another order than the Kinect v1 SDK
# order of layout 'kinect_v1'. MSR order (1-based): 1 left shoulder, 2 right
# shoulder, 3 shoulder centre, 4 spine, 5 left hip, 6 right hip, 7 hip centre,
# 8/9 left/right elbow, 10/11 wrists, 12/13 hands, 14/15 knees, 16/17 ankles,
# 18/19 feet, 20 head. Source: R. Vemulapalli's code for "Human Action
# Recognition by Representing 3D Skeletons as Points in a Lie Group" (CVPR
# 2014), data/process_skeletal_data.m, which maps Kinect SDK order to MSR
# order with joints_order = [5 9 3 2 13 17 1 6 10 7 11 8 12 14 18 15 19 16 20
# 4]; the bone list of public MSR visualisers agrees. This is its inverse:
# kinect_v1 joint k is MSR joint MSR_TO_KINECT_V1[k] (0-based).
MSR_TO_KINECT_V1 = (6, 3, 2, 19, 0, 7, 9, 11, 1, 8, 10, 12, 4, 13, 15, 17, 5,
                    14, 16, 18)

_FILE = re.compile(r'a(\d+)_s(\d+)_e(\d+)_skeleton3D\.txt')


def read_msr_file(path: str) -> np.ndarray:
    r"""Parses one ``aXX_sYY_eZZ_skeleton3D.txt`` of MSR Action3D.

    One whitespace-separated line ``x y z c`` per joint (``c`` is a
    confidence, dropped), 20 consecutive lines per frame, no frame numbers.
    Frames whose 20 joints are all zero are dropped; joints are reordered to
    the ``'kinect_v1'`` layout (see :obj:`MSR_TO_KINECT_V1`).

    Args:
        path (str): The file.

    Returns:
        float32 array of shape ``[T, 1, 20, 3]``; ``T`` is 0 when the file is
        empty or every frame is all zero (the caller skips it).

    Raises:
        ValueError: Naming the file and line if the file is malformed, e.g.
            a line count that is not a multiple of 20 (truncated file), or
            if a coordinate exceeds
            :obj:`~tcmp_pyg.datasets.base.MAX_COORDINATE` in magnitude.
    """
    lines = read_lines(path)
    rows = parse_rows(path, lines, 4, 'x y z confidence of one joint')
    check_coordinates(rows[:, :3], path, lines, 'joint coordinates')
    if len(rows) % 20 != 0:
        raise ValueError(f"{where(path, lines[-1][0])}: expected 20 joint lines "
                         f"per frame (got {len(rows)} lines, {len(rows) % 20} "
                         f"left over after {len(rows) // 20} frames: truncated "
                         f"file?)")
    joints = rows[:, :3].reshape(-1, 20, 3)
    joints = joints[(joints != 0).any(axis=(1, 2))]
    return joints[:, list(MSR_TO_KINECT_V1)][:, None].astype(np.float32)


class MSRAction3D(SkeletonDataset):
    r"""The MSR Action3D dataset from the `"Action Recognition Based on a Bag
    of 3D Points" <https://doi.org/10.1109/CVPRW.2010.5543273>`_ paper: 10
    subjects perform 20 actions two or three times, with Kinect v1 skeletons
    (20 joints, real-world coordinates, ``*_skeleton3D.txt``).

    Joints are reordered from the MSR file order to the Kinect v1 SDK order of
    layout ``'kinect_v1'`` (see :obj:`MSR_TO_KINECT_V1`). Frames whose joints
    are all zero are dropped; sequences left without a frame (or empty files)
    are skipped with one warning naming them. The standard cross-subject
    protocol trains on subjects 1, 3, 5, 7, 9 and tests on the others.

    Every sequence is a graph with ``x`` of shape ``[20, num_frames, 3]``,
    ``y``, ``length`` (valid frames), ``subject``, ``repetition`` and
    ``source`` (the file name).

    **STATS:**

    .. list-table::
        :widths: 10 10 10 10
        :header-rows: 1

        * - #sequences
          - #classes
          - #joints
          - #subjects
        * - 567 listed (557 with a valid skeleton in common use)
          - 20
          - 20
          - 10

    Args:
        root (str): Root directory; the ``*_skeleton3D.txt`` files go to
            ``root/raw/`` (or any folder below it).
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        num_frames (int, optional): Frames every sequence is resampled to.
            (default: :obj:`40`)
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
    name = 'msr'
    layout = KINECT_V1
    class_names = MSR_CLASSES
    total_classes = len(MSR_CLASSES)
    num_sequences = '567 (557 usable)'
    protocols = 'cross-subject (subjects 1,3,5,7,9 train)'
    raw_layout = "root/raw/aXX_sYY_eZZ_skeleton3D.txt (the Real3D skeletons)"
    obtain = ("Download MSRAction3DSkeletonReal3D from W. Li's MSR Action3D "
              "page (https://sites.google.com/view/wanqingli/data-sets/"
              "msr-action3d; research use) and extract it into raw/.")

    def __init__(self, root: str, split: str = 'train', num_frames: int = 40,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, *,
                 on_error: str = 'raise') -> None:
        self.split = check_choice('split', split, ('train', 'test'))
        self.num_frames = check_num_frames(num_frames)
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload, on_error=on_error)

    @property
    def raw_file_names(self) -> List[str]:
        # No fixed file list: whatever samples are there (none found makes
        # the missing-raw-files error fire).
        return self._find_files()

    def _find_files(self) -> List[str]:
        found = []
        for folder, dirs, files in os.walk(self.raw_dir):
            dirs.sort()
            rel = osp.relpath(folder, self.raw_dir)
            for f in sorted(files):
                if _FILE.fullmatch(f):
                    found.append(f if rel == '.' else osp.join(rel, f))
        return sorted(found, key=osp.basename)

    @property
    def processed_file_names(self) -> List[str]:
        return [self.processed_name(f'T{self.num_frames}')]

    def read_data_list(self) -> List[Data]:
        data_list, skipped = [], []
        for rel in self._find_files():
            path = osp.join(self.raw_dir, rel)
            action, subject, rep = (int(g) for g in
                                    _FILE.fullmatch(osp.basename(rel)).groups())
            if not 1 <= action <= len(MSR_CLASSES):
                self.fail(path, ValueError(f"{path}: expected an action number "
                                           f"01..20 in the file name (got "
                                           f"{action})"))
                continue
            seq = self.read_raw(read_msr_file, path)
            if seq is None:
                continue
            if len(seq) == 0:
                skipped.append(rel)
                continue
            data_list.append(skeleton_to_data(
                seq, self.layout, action - 1, self.num_frames,
                subject=subject, repetition=rep, source=rel.replace(os.sep, '/')))
        warn_skipped(type(self).__name__, skipped,
                     'without any frame with a non-zero joint')
        return data_list

    def split_mask(self) -> Tensor:
        subject = self.all_meta('subject')
        train = torch.isin(subject, torch.tensor(MSR_TRAIN_SUBJECTS))
        return train if self.split == 'train' else ~train
