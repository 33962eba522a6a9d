"""NTU RGB+D 60 and 120: Kinect v2 skeletons of one or two people."""
from __future__ import annotations

import os
import os.path as osp
import re
from functools import partial
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.base import (ReadFailure, SkeletonDataset,
                                    check_choice, check_coordinates,
                                    check_num_frames, read_or_failure,
                                    skeleton_to_data)
from tcmp_pyg.datasets.on_disk import on_disk_file_names, read_parallel
from tcmp_pyg.datasets.parsing import (Line, parse_int, parse_rows, read_lines,
                                       require_lines, warn_skipped, where)
from tcmp_pyg.layouts import NTU as NTU_LAYOUT

NTU_CLASSES = (
    'drink water', 'eat meal/snack', 'brushing teeth', 'brushing hair', 'drop',
    'pickup', 'throw', 'sitting down', 'standing up (from sitting position)',
    'clapping', 'reading', 'writing', 'tear up paper', 'wear jacket',
    'take off jacket', 'wear a shoe', 'take off a shoe', 'wear on glasses',
    'take off glasses', 'put on a hat/cap', 'take off a hat/cap', 'cheer up',
    'hand waving', 'kicking something', 'reach into pocket',
    'hopping (one foot jumping)', 'jump up', 'make a phone call/answer phone',
    'playing with phone/tablet', 'typing on a keyboard',
    'pointing to something with finger', 'taking a selfie',
    'check time (from watch)', 'rub two hands together', 'nod head/bow',
    'shake head', 'wipe face', 'salute', 'put the palms together',
    'cross hands in front (say stop)', 'sneeze/cough', 'staggering', 'falling',
    'touch head (headache)', 'touch chest (stomachache/heart pain)',
    'touch back (backache)', 'touch neck (neckache)',
    'nausea or vomiting condition', 'use a fan (with hand or paper)/feeling warm',
    'punching/slapping other person', 'kicking other person',
    'pushing other person', 'pat on back of other person',
    'point finger at the other person', 'hugging other person',
    'giving something to other person', "touch other person's pocket",
    'handshaking', 'walking towards each other',
    'walking apart from each other',
    # NTU RGB+D 120 only:
    'put on headphone', 'take off headphone', 'shoot at the basket',
    'bounce ball', 'tennis bat swing', 'juggling table tennis balls',
    'hush (quite)', 'flick hair', 'thumb up', 'thumb down', 'make ok sign',
    'make victory sign', 'staple book', 'counting money', 'cutting nails',
    'cutting paper (using scissors)', 'snapping fingers', 'open bottle',
    'sniff (smell)', 'squat down', 'toss a coin', 'fold paper',
    'ball up paper', 'play magic cube', 'apply cream on face',
    'apply cream on hand back', 'put on bag', 'take off bag',
    'put something into a bag', 'take something out of a bag', 'open a box',
    'move heavy objects', 'shake fist', 'throw up cap/hat',
    'hands up (both hands)', 'cross arms', 'arm circles', 'arm swings',
    'running on the spot', 'butt kicks (kick backward)', 'cross toe touch',
    'side kick', 'yawn', 'stretch oneself', 'blow nose',
    'hit other person with something', 'wield knife towards other person',
    'knock over other person (hit with body)', "grab other person's stuff",
    'shoot at other person with a gun', 'step on foot', 'high-five',
    'cheers and drink', 'carry something with other person',
    'take a photo of other person', 'follow other person',
    "whisper in other person's ear", 'exchange things with other person',
    'support somebody with hand',
    'finger-guessing game (playing rock-paper-scissors)',
)

NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28,
                    31, 34, 35, 38)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82,
    83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
NTU_XVIEW_TRAIN_CAMERAS = (2, 3)
# variant -> (number of actions, number of setups, benchmarks)
NTU_VARIANTS = {'60': (60, 17, ('xsub', 'xview')),
                '120': (120, 32, ('xsub', 'xset'))}
NTU_MISSING_FILES = ('NTU_RGBD_samples_with_missing_skeletons.txt',
                     'NTU_RGBD120_samples_with_missing_skeletons.txt')

# The setups and actions of NTU RGB+D 120; NTU-60 is its setups 1-17, which
# hold actions 1-60 only (setups 18-32 hold actions 61-120).
NTU_ACTIONS = range(1, 121)
NTU_SETUPS = range(1, 33)

NTU_NUM_JOINTS = 25
_NAME = re.compile(r'S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})')


class NTUName(NamedTuple):
    """The fields of a sample name ``SsssCcccPpppRrrrAaaa``."""
    setup: int
    camera: int
    subject: int
    replication: int
    action: int


def parse_ntu_name(name: str) -> Optional[NTUName]:
    """The fields of ``SsssCcccPpppRrrrAaaa[.skeleton]``, or :obj:`None`."""
    m = _NAME.fullmatch(name[:-len('.skeleton')] if name.endswith('.skeleton')
                        else name)
    return None if m is None else NTUName(*(int(g) for g in m.groups()))


def check_ntu_name(path: str, name: NTUName, variant: str = '120') -> bool:
    r"""Checks the setup and action codes of a sample name against a variant.

    Args:
        path (str): The file (for the message).
        name (NTUName): Its parsed name.
        variant (str, optional): :obj:`'60'` or :obj:`'120'`.
            (default: :obj:`'120'`)

    Returns:
        :obj:`True` if the sample belongs to the variant, :obj:`False` for a
        sample of NTU-120's setups 18-32 read as NTU-60 (an NTU-120 folder
        serves both variants).

    Raises:
        ValueError: If the codes are outside NTU RGB+D 120 (``A000``,
            ``A121``, ``S000``, ...), or if an NTU-60 setup (1-17) holds an
            action after ``A060``: such a file is not of the release and its
            label would be wrong.
    """
    num_actions, num_setups, _ = NTU_VARIANTS[variant]
    if name.setup not in NTU_SETUPS:
        raise ValueError(f"{path}: setup code S{name.setup:03d} is outside "
                         f"NTU RGB+D (expected S001-S{NTU_SETUPS[-1]:03d})")
    if name.setup > num_setups:
        if name.action not in NTU_ACTIONS:
            raise ValueError(f"{path}: action code A{name.action:03d} is "
                             f"outside NTU RGB+D (expected "
                             f"A001-A{NTU_ACTIONS[-1]:03d})")
        return False
    if not 1 <= name.action <= num_actions:
        raise ValueError(f"{path}: action code A{name.action:03d} is outside "
                         f"NTU-{variant} (expected A001-A{num_actions:03d} in "
                         f"setups S001-S{num_setups:03d})")
    return True


class _Cursor:
    """Walks the non-blank lines of a ``.skeleton`` file."""
    def __init__(self, path: str, lines: List[Line]) -> None:
        self.path, self.lines, self.i = path, lines, 0

    def take(self, n: int, what: str) -> List[Line]:
        if self.i + n > len(self.lines):
            last = self.lines[-1][0] if self.lines else 0
            raise ValueError(f"{where(self.path, last)}: the file ends while "
                             f"reading {what} (truncated file?)")
        out = self.lines[self.i:self.i + n]
        self.i += n
        return out

    def count(self, what: str, exact: Optional[int] = None) -> int:
        lineno, line = self.take(1, what)[0]
        tokens = line.split()
        if len(tokens) != 1:
            raise ValueError(f"{where(self.path, lineno)}: expected one integer "
                             f"({what}) (got {len(tokens)} values)")
        value = parse_int(tokens[0], self.path, lineno, what, minimum=0)
        if exact is not None and value != exact:
            raise ValueError(f"{where(self.path, lineno)}: expected {what} "
                             f"to be {exact} (got {value})")
        return value


def parse_ntu_skeleton(path: str, max_bodies: int = 2) -> np.ndarray:
    r"""Parses one NTU RGB+D ``.skeleton`` file and keeps its most-moving
    bodies.

    Format (one item per line): the frame count; per frame a body count; per
    body a line of 10 values (``bodyID clipedEdges handLeftConfidence
    handLeftState handRightConfidence handRightState isResticted leanX leanY
    trackingState``), a joint-count line (25), then 25 lines of 12 values
    (``x y z depthX depthY colorX colorY orientationW orientationX
    orientationY orientationZ trackingState``).

    As in the standard preprocessing, frames without any body are dropped,
    every ``bodyID`` is followed over the frames, and the ``max_bodies``
    bodies with the largest motion (sum over ``x, y, z`` of the variance of
    their joints over all their frames) are kept, most moving first; a body
    is zero in the frames where it is not tracked (it left the view, or
    appears late).

    This is a module-level function of the path only, so it can run in
    worker processes. Its cost is mostly the conversion of the 12 numbers of
    every joint line (about 10 ms per 100 frames of one body).

    Args:
        path (str): The ``.skeleton`` file.
        max_bodies (int, optional): Bodies to keep. (default: :obj:`2`)

    Returns:
        float32 array of shape ``[T, max_bodies, 25, 3]`` (metres, camera
        coordinates); ``T`` is 0 when no frame has a body.

    Raises:
        ValueError: Naming the file and line if the file is malformed, or if
            a coordinate exceeds
            :obj:`~tcmp_pyg.datasets.base.MAX_COORDINATE` in magnitude.
    """
    lines = read_lines(path)
    require_lines(path, lines, 'a frame count on the first line')
    cur = _Cursor(path, lines)
    num_frames = cur.count('frame count')
    V = NTU_NUM_JOINTS
    # bodyID (plus its rank within the frame, should an ID repeat) ->
    # (kept-frame indices, joints per frame)
    tracks: Dict[Tuple[str, int], Tuple[List[int], List[np.ndarray]]] = {}
    kept = 0
    for t in range(num_frames):
        num_bodies = cur.count(f'body count of frame {t + 1}')
        ranks: Dict[str, int] = {}
        for b in range(num_bodies):
            what = f'frame {t + 1}, body {b + 1}'
            info = cur.take(1, f'the body line of {what}')
            parse_rows(path, info, 10, 'bodyID clipedEdges handLeftConfidence '
                       'handLeftState handRightConfidence handRightState '
                       'isResticted leanX leanY trackingState')
            # The ID is a 64-bit tracking number: keep its text, floats would
            # merge neighbouring IDs.
            token = info[0][1].split()[0]
            parse_int(token, path, info[0][0], 'bodyID')
            cur.count(f'joint count of {what}', exact=V)
            joint_lines = cur.take(V, f'the {V} joint lines of {what}')
            joints = parse_rows(path, joint_lines, 12, 'x y z depthX depthY '
                                'colorX colorY orientationW orientationX '
                                'orientationY orientationZ trackingState')
            check_coordinates(joints[:, :3], path, joint_lines,
                              'joint coordinates x y z')
            rank = ranks[token] = ranks.get(token, -1) + 1
            frames, coords = tracks.setdefault((token, rank), ([], []))
            frames.append(kept)
            coords.append(joints[:, :3])
        if num_bodies:
            kept += 1
    rest = lines[cur.i:]
    if rest:
        raise ValueError(f"{where(path, rest[0][0])}: expected the end of the "
                         f"file after the {num_frames} frame(s) announced on "
                         f"line {lines[0][0]}")

    def motion(track: Tuple[List[int], List[np.ndarray]]) -> float:
        joints = np.concatenate(track[1])  # [frames * 25, 3]
        return float(np.var(joints, axis=0).sum())

    # A stable sort: equal motion keeps the order of first appearance.
    ranked = sorted(tracks.values(), key=motion, reverse=True)
    seq = np.zeros((kept, max_bodies, V, 3), dtype=np.float32)
    for m, (frames, coords) in enumerate(ranked[:max_bodies]):
        seq[frames, m] = np.stack(coords)
    return seq


class NTUSample(NamedTuple):
    """One raw sample to read: the work item of :func:`read_ntu_sample`."""
    path: str        # the .skeleton file
    source: str      # its path below raw/, '/'-separated
    num_frames: int  # frames to resample to


def read_ntu_sample(sample: NTUSample) -> Optional[Data]:
    r"""Reads one ``.skeleton`` file into its graph, as :class:`NTURGBD`
    stores it (see there); :obj:`None` when no frame has a body.

    A module-level function of a picklable item, so that worker processes
    can run it.

    Raises:
        ValueError: Naming the file and line if the file is malformed.
    """
    name = parse_ntu_name(sample.source.rsplit('/', 1)[-1])
    if name is None:
        raise ValueError(f"{sample.path}: expected a file name "
                         f"SsssCcccPpppRrrrAaaa.skeleton")
    check_ntu_name(sample.path, name)  # the label is action - 1
    seq = parse_ntu_skeleton(sample.path)
    if len(seq) == 0:
        return None
    return skeleton_to_data(
        seq, NTU_LAYOUT, name.action - 1, sample.num_frames, setup=name.setup,
        camera=name.camera, subject=name.subject, replication=name.replication,
        source=sample.source)


def read_ntu_missing(path: str) -> Set[str]:
    """Sample names listed in an NTU missing-skeletons file (one per line;
    lines that are not a sample name, such as a header, are ignored)."""
    return {line.split()[0] for _, line in read_lines(path)
            if parse_ntu_name(line.split()[0]) is not None}


class NTURGBD(SkeletonDataset):
    r"""The NTU RGB+D 60 and 120 datasets from the `"NTU RGB+D: A Large Scale
    Dataset for 3D Human Activity Analysis" <https://arxiv.org/abs/1604.02808>`_
    and `"NTU RGB+D 120" <https://arxiv.org/abs/1905.04757>`_ papers: Kinect v2
    skeletons (25 joints) of one or two people.

    Each ``.skeleton`` file is parsed by :func:`parse_ntu_skeleton` (frames
    without a body dropped, the two most-moving bodies kept). Samples without
    any body are skipped with one warning; when the release's missing-skeleton
    list (``NTU_RGBD_samples_with_missing_skeletons.txt`` or
    ``NTU_RGBD120_samples_with_missing_skeletons.txt``) lies in ``raw/``, the
    samples it names are excluded. ``variant='60'`` uses setups 1--17 only
    (actions 1--60), so a folder holding NTU-120 serves both variants. A file
    whose code is outside the variant (``A000``, ``A121``, or an action
    after ``A060`` in setups 1--17 read as NTU-60) is refused with its name
    and the expected range (see :func:`check_ntu_name`).

    Benchmarks: ``'xsub'`` (the standard training subjects), ``'xview'``
    (cameras 2 and 3 train; NTU-60) and ``'xset'`` (even setup ids train;
    NTU-120).

    Every sample is a graph with ``x`` of shape ``[2 * 25, num_frames, 3]``,
    ``y`` (action - 1), ``length`` (frames with a body), ``setup``,
    ``camera``, ``subject``, ``replication`` and ``source`` (the file name).
    A body absent from some frames (it left the view, or appears late) is
    zero there; a one-frame sample is repeated to ``num_frames``.

    **Storage and processing.** The raw files are parsed by ``num_workers``
    processes (:func:`read_ntu_sample`, with a progress bar). NTU RGB+D 120
    does not fit in memory at long ``num_frames`` (114,480 x 50 x 300 x 3
    float32 is 20 GB), so with ``on_disk=True`` the samples are streamed into
    a memory-mapped ``processed/<name>.npy`` of shape ``[N, 50, num_frames,
    3]`` plus ``processed/<name>.index.pt`` (labels and metadata), and each
    access reads one sample (see :mod:`tcmp_pyg.datasets.on_disk`); memory
    stays at a few hundred MB however large the dataset. ``on_disk=None``
    (the default) chooses the on-disk storage when the samples found in
    ``raw/`` would take more than 2 GiB (NTU-60 from ``num_frames=63`` on,
    NTU-120 from 32 on: both at the default 64). Both storages give the same graphs, metadata and
    splits, and both are written through temporary files, so an interrupted
    processing leaves nothing a later run would load.

    **STATS:**

    .. list-table::
        :widths: 10 10 10 10 10
        :header-rows: 1

        * - Variant
          - #samples
          - #classes
          - #bodies x #joints
          - Benchmarks
        * - 60
          - 56,880 (56,578 with skeletons)
          - 60
          - 2 x 25
          - xsub, xview
        * - 120
          - 114,480 (113,945 with skeletons)
          - 120
          - 2 x 25
          - xsub, xset

    Processed size of ``x`` (float32): 38.4 KB per sample at the default 64
    frames (2.2 GB for NTU-60, 4.4 GB for NTU-120), 180 KB at 300 frames.

    Args:
        root (str): Root directory; the ``.skeleton`` files go to ``root/raw/``
            (or any folder below it, e.g. ``raw/nturgb+d_skeletons/``).
        variant (str, optional): :obj:`'60'` or :obj:`'120'`.
            (default: :obj:`'60'`)
        benchmark (str, optional): :obj:`'xsub'`, :obj:`'xview'` (NTU-60) or
            :obj:`'xset'` (NTU-120). (default: :obj:`'xsub'`)
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        num_frames (int, optional): Frames every sample is resampled to.
            (default: :obj:`64`)
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-process the dataset.
            (default: :obj:`False`)
        on_disk (bool, optional): Store the processed samples in a
            memory-mapped file (:obj:`True`) or in memory (:obj:`False`);
            :obj:`None` picks the file above 2 GiB. (default: :obj:`None`)
        num_workers (int, optional): Processes parsing the raw files;
            :obj:`0` parses in this process. (default: :obj:`None`, the CPU
            count)
        on_error (str, optional): :obj:`'raise'` the error of the first raw
            file that cannot be read (malformed, truncated, or named outside
            the variant), or :obj:`'skip'` every such file, with one warning
            listing them and why, also written to
            ``processed/<name>.skipped.txt``. (default: :obj:`'raise'`)

    Raises:
        ValueError: If the selected split holds no sample (e.g. ``raw/``
            lacks every test subject).
    """
    name = 'ntu'
    layout = NTU_LAYOUT
    class_names = NTU_CLASSES
    total_classes = len(NTU_CLASSES)
    num_sequences = '56,880 (60) / 114,480 (120)'
    protocols = 'xsub, xview (60); xsub, xset (120)'
    raw_layout = ("root/raw/ (or a folder below it) holding the "
                  "SsssCcccPpppRrrrAaaa.skeleton files, optionally the "
                  "release's *_samples_with_missing_skeletons.txt")
    obtain = ("Request the skeletons at https://rose1.ntu.edu.sg/dataset/"
              "actionRecognition/ (academic research only, after accepting the "
              "release agreement).")

    def __init__(self, root: str, variant: str = '60', benchmark: str = 'xsub',
                 split: str = 'train', num_frames: int = 64,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, on_disk: Optional[bool] = None,
                 num_workers: Optional[int] = None, *,
                 on_error: str = 'raise') -> None:
        self.variant = check_choice('variant', str(variant), tuple(NTU_VARIANTS))
        benchmarks = NTU_VARIANTS[self.variant][2]
        self.benchmark = check_choice('benchmark', benchmark, benchmarks)
        self.split = check_choice('split', split, ('train', 'test'))
        self.num_frames = check_num_frames(num_frames)
        self._files: Optional[List[str]] = None
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload, on_disk=on_disk,
                         num_workers=num_workers, on_error=on_error)
        self.class_names = NTU_CLASSES[:NTU_VARIANTS[self.variant][0]]
        self.check_not_empty(f"the {self.split} split of benchmark "
                             f"'{self.benchmark}' (NTU-{self.variant})")

    @property
    def raw_file_names(self) -> List[str]:
        # No fixed file list: whatever samples are there (none found makes
        # the missing-raw-files error fire).
        if self._files is None:  # one walk per dataset object: NTU-120 has
            self._files = self._find_files()  # 114,480 files
        return self._files

    def _find_files(self) -> List[str]:
        found = []
        for folder, dirs, files in os.walk(self.raw_dir):
            dirs.sort()
            rel = osp.relpath(folder, self.raw_dir)
            for f in files:
                if not f.endswith('.skeleton'):
                    continue
                path = osp.join(folder, f)
                name = parse_ntu_name(f)
                try:
                    if name is None:
                        raise ValueError(f"{path}: expected a file name "
                                         f"SsssCcccPpppRrrrAaaa.skeleton")
                    keep = check_ntu_name(path, name, self.variant)
                except ValueError as e:
                    self.fail(path, e)  # raises unless on_error='skip'
                    continue
                if keep:
                    found.append(f if rel == '.' else osp.join(rel, f))
        return sorted(found, key=osp.basename)

    @property
    def processed_file_names(self) -> List[str]:
        name = self.processed_name(self.variant, f'T{self.num_frames}')
        return on_disk_file_names(name) if self.on_disk else [name]

    def estimated_nbytes(self) -> int:
        # float32 x of [2 * 25, num_frames, 3] per sample found in raw/.
        return len(self.raw_file_names) * self.layout.num_nodes \
            * self.num_frames * 3 * 4

    def iter_samples(self) -> Iterator[Data]:
        missing: Set[str] = set()
        for name in NTU_MISSING_FILES:
            path = osp.join(self.raw_dir, name)
            if osp.isfile(path):
                missing |= read_ntu_missing(path)
        samples = [NTUSample(osp.join(self.raw_dir, rel),
                             rel.replace(os.sep, '/'), self.num_frames)
                   for rel in self.raw_file_names
                   if osp.basename(rel)[:-len('.skeleton')] not in missing]
        progress = self.log and 'PYTEST_CURRENT_TEST' not in os.environ
        no_body = []
        read = read_ntu_sample if self.on_error == 'raise' \
            else partial(read_or_failure, read_ntu_sample)
        results = read_parallel(read, samples, self.num_workers,
                                progress=progress,
                                desc=f'{type(self).__name__}: parsing')
        try:
            for i, data in enumerate(results):
                if isinstance(data, ReadFailure):
                    self.fail(samples[i].path, ValueError(data.error))
                elif data is None:
                    no_body.append(osp.basename(samples[i].path)[:-len('.skeleton')])
                else:
                    yield data
        finally:  # also when the consumer stops early: end the workers
            results.close()
        warn_skipped(type(self).__name__, no_body, 'without any body')

    def read_data_list(self) -> List[Data]:
        return list(self.iter_samples())

    def split_mask(self) -> Tensor:
        if self.benchmark == 'xsub':
            subjects = NTU120_XSUB_TRAIN if self.variant == '120' else NTU60_XSUB_TRAIN
            train = torch.isin(self.all_meta('subject'), torch.tensor(subjects))
        elif self.benchmark == 'xview':
            train = torch.isin(self.all_meta('camera'),
                               torch.tensor(NTU_XVIEW_TRAIN_CAMERAS))
        else:
            train = self.all_meta('setup') % 2 == 0
        return train if self.split == 'train' else ~train
