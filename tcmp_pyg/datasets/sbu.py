"""SBU Kinect Interaction (clean version): two-person interactions."""
from __future__ import annotations

import os
import os.path as osp
from typing import Callable, List, Optional

import numpy as np
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (SkeletonDataset, check_choice,
                                    check_coordinates, check_num_frames,
                                    skeleton_to_data)
from tcmp_pyg.datasets.parsing import (check_integer_column, parse_rows,
                                       read_lines, require_lines)
from tcmp_pyg.layouts import SBU

# The official 5-fold protocol (README v2.0): the test sets of each fold.
SBU_FOLDS = (
    ('s01s02', 's03s04', 's05s02', 's06s04'),
    ('s02s03', 's02s07', 's03s05', 's05s03'),
    ('s01s03', 's01s07', 's07s01', 's07s03'),
    ('s02s01', 's02s06', 's03s02', 's03s06'),
    ('s04s02', 's04s03', 's04s06', 's06s02', 's06s03'),
)
SBU_SETS = tuple(sorted(s for fold in SBU_FOLDS for s in fold))

SBU_CLASSES = ('approaching', 'departing', 'kicking', 'punching', 'pushing',
               'hugging', 'shaking_hands', 'exchanging_objects')


SBU_UNITS = ('metres', 'normalized')


def sbu_to_metres(coords: np.ndarray) -> np.ndarray:
    r"""De-normalises SBU coordinates ``[..., 3]`` to metres with the
    README's formulas :math:`X = 1280 - 2560 x`, :math:`Y = 960 - 1920 y`,
    :math:`Z = 10000 z / 7.8125` (millimetres), divided by 1000. In the
    files the three axes have different scales (``x`` spans 2.56 m, ``y``
    1.92 m, ``z`` 1.28 m per unit), so only metric coordinates can be
    rotated."""
    x, y, z = coords[..., 0], coords[..., 1], coords[..., 2]
    out = np.stack([1.28 - 2.56 * x, 0.96 - 1.92 * y, z * (10.0 / 7.8125)],
                   axis=-1)
    return out.astype(coords.dtype)


def read_sbu_file(path: str) -> np.ndarray:
    r"""Parses one ``skeleton_pos.txt`` of SBU Kinect Interaction.

    One comma-separated line per frame: the frame number, then person A's
    then person B's 15 joints as ``x, y, z`` (91 values).

    Args:
        path (str): The file.

    Returns:
        float32 array of shape ``[T, 2, 15, 3]`` (normalised coordinates as
        stored in the file).

    Raises:
        ValueError: Naming the file and line if the file is malformed, or if
            a coordinate exceeds
            :obj:`~tcmp_pyg.datasets.base.MAX_COORDINATE` in magnitude.
    """
    lines = read_lines(path)
    require_lines(path, lines, 'one line per frame')
    what = 'frame number, then 2 persons x 15 joints x (x, y, z)'
    rows = parse_rows(path, lines, 1 + 2 * 15 * 3, what, sep=',')
    check_integer_column(rows[:, 0], path, lines, 'frame number')
    check_coordinates(rows[:, 1:], path, lines, 'joint coordinates')
    return rows[:, 1:].reshape(-1, 2, 15, 3).astype(np.float32)


class SBUKinectInteraction(SkeletonDataset):
    r"""The SBU Kinect Interaction dataset (clean version) from the
    `"Two-person Interaction Detection Using Body-Pose Features and Multiple
    Instance Learning" <https://doi.org/10.1109/CVPRW.2012.6239234>`_ paper:
    two people interacting, recorded with a Kinect v1 (15 OpenNI joints per
    person).

    The official protocol is 5-fold cross validation over the 21 two-person
    sets; ``split='test'`` is the sets of fold ``fold``, ``split='train'`` the
    other sets.

    The files store normalised coordinates (``x, y`` nominally in ``[0, 1]``,
    ``z`` in ``[0, 7.8125]``; values slightly outside occur), one scale per
    axis. By default they are de-normalised to metres with the README's
    formulas (:func:`sbu_to_metres`), so that distances and rotations mean
    the same along every axis; ``units='normalized'`` keeps the files'
    values.

    Every sequence is a graph with ``x`` of shape ``[2 * 15, num_frames, 3]``
    (person A's joints, then person B's), ``y``, ``length`` (original frame
    count), ``set_name`` (e.g. ``'s01s02'``), ``fold`` (the fold whose test
    split holds it) and ``source`` (the file, relative to ``raw/``).

    Unlike NTU, a person cannot leave an SBU sequence: every line holds both
    persons' 15 joints, so a frame missing one is a malformed line (a
    :class:`ValueError` naming it). A one-frame sequence is repeated to
    ``num_frames``. Set folders are required: a ``raw/`` lacking some raises
    a :class:`FileNotFoundError` naming them and every fold they empty; a
    split left without any sequence raises a :class:`ValueError`.

    **STATS:**

    .. list-table::
        :widths: 10 10 10 10 10
        :header-rows: 1

        * - #sequences
          - #classes
          - #bodies x #joints
          - #frames
          - #sets
        * - 282
          - 8
          - 2 x 15
          - 10--46 (median 23)
          - 21

    Args:
        root (str): Root directory; raw files go to ``root/raw/``.
        fold (int, optional): The fold, 1 to 5. (default: :obj:`1`)
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        num_frames (int, optional): Frames every sequence is resampled to.
            (default: :obj:`40`)
        units (str, optional): :obj:`'metres'` or :obj:`'normalized'` (as
            stored in the files). (default: :obj:`'metres'`)
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
    name = 'sbu'
    layout = SBU
    class_names = SBU_CLASSES
    total_classes = len(SBU_CLASSES)
    num_sequences = '282'
    protocols = '5-fold cross validation over the 21 sets'
    raw_layout = ("root/raw/<set>/<class 01..08>/<seq>/skeleton_pos.txt for "
                  "the 21 sets s01s02 ... s07s03")
    obtain = ("Download the clean version from "
              "http://www3.cs.stonybrook.edu/~kyun/research/kinect_interaction/ "
              "(research use only) and extract the 21 set folders into raw/.")

    def __init__(self, root: str, fold: int = 1, split: str = 'train',
                 num_frames: int = 40, units: str = 'metres',
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, *,
                 on_error: str = 'raise') -> None:
        self.fold = check_choice('fold', fold, range(1, len(SBU_FOLDS) + 1))
        self.split = check_choice('split', split, ('train', 'test'))
        self.num_frames = check_num_frames(num_frames)
        self.units = check_choice('units', units, SBU_UNITS)
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload, on_error=on_error)
        test_sets = ', '.join(SBU_FOLDS[self.fold - 1])
        self.check_not_empty(
            f"the test split of fold {self.fold} (sets {test_sets})"
            if self.split == 'test' else
            f"the training split of fold {self.fold} (every set but {test_sets})")

    @property
    def raw_file_names(self) -> List[str]:
        return list(SBU_SETS)

    @property
    def processed_file_names(self) -> List[str]:
        # Files written before the units option hold normalised values.
        units = '' if self.units == 'normalized' else '_m'
        return [self.processed_name(f'T{self.num_frames}{units}')]

    def download(self) -> None:
        missing = [s for s in SBU_SETS if not osp.isdir(osp.join(self.raw_dir, s))]
        if 0 < len(missing) < len(SBU_SETS):  # a partial copy: say what breaks
            emptied = [f"fold {k + 1} (test sets {', '.join(fold)})"
                       for k, fold in enumerate(SBU_FOLDS) if set(fold) <= set(missing)]
            hint = (f"; without them {' and '.join(emptied)} would have no test "
                    f"sequence" if emptied else '')
            raise FileNotFoundError(
                f"{type(self).__name__}: {len(missing)} of the {len(SBU_SETS)} "
                f"set folders are missing in '{self.raw_dir}': "
                f"{', '.join(missing)}{hint}. Expected: {self.raw_layout}. "
                f"{self.obtain}")
        super().download()

    def read_data_list(self) -> List[Data]:
        fold_of = {s: k + 1 for k, fold in enumerate(SBU_FOLDS) for s in fold}
        valid = [f'{c:02d}' for c in range(1, len(SBU_CLASSES) + 1)]
        data_list = []
        for set_name in SBU_SETS:
            set_dir = osp.join(self.raw_dir, set_name)
            for cls in sorted(os.listdir(set_dir)):
                cls_dir = osp.join(set_dir, cls)
                if cls.startswith('.') or not osp.isdir(cls_dir):
                    continue  # e.g. macOS .DS_Store
                if cls not in valid:
                    raise ValueError(f"{cls_dir}: expected a class folder "
                                     f"01..08 (got '{cls}')")
                for seq in sorted(os.listdir(cls_dir)):
                    seq_dir = osp.join(cls_dir, seq)
                    if seq.startswith('.') or not osp.isdir(seq_dir):
                        continue
                    path = osp.join(seq_dir, 'skeleton_pos.txt')
                    if not osp.isfile(path):
                        self.fail(path, FileNotFoundError(
                            f"{seq_dir}: expected a skeleton_pos.txt file"))
                        continue
                    coords = self.read_raw(read_sbu_file, path)
                    if coords is None:
                        continue
                    if self.units == 'metres':
                        coords = sbu_to_metres(coords)
                    data_list.append(skeleton_to_data(
                        coords, self.layout, int(cls) - 1,
                        self.num_frames, set_name=set_name,
                        fold=fold_of[set_name],
                        source=f'{set_name}/{cls}/{seq}/skeleton_pos.txt'))
        return data_list

    def split_mask(self) -> Tensor:
        in_fold = self.all_meta('fold') == self.fold
        return in_fold if self.split == 'test' else ~in_fold
