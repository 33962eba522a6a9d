r"""The pose annotation pickles of pyskl and mmaction2 (``PoseDataset``)."""
from __future__ import annotations

import json
import os
import os.path as osp
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from tcmp_pyg.datasets.arrays import (ExternalSkeletonDataset, PathLike,
                                      check_num_bodies, default_class_names,
                                      file_identity, joints_hint, layout_tag,
                                      resolve_cache_dir)
from tcmp_pyg.datasets.base import check_num_frames, skeleton_to_data
from tcmp_pyg.datasets.parsing import warn_data
from tcmp_pyg.datasets.safe_pickle import safe_load_pickle
from tcmp_pyg.layouts import LayoutLike, get_layout


class PoseAnnotations(ExternalSkeletonDataset):
    r"""A pose annotation pickle of `pyskl <https://github.com/kennymckormick/
    pyskl>`_ / mmaction2 as PyG graphs.

    The file holds ``{'split': {name: [frame_dir, ...], ...}, 'annotations':
    [ann, ...]}`` where every ``ann`` is a dict with ``'frame_dir'`` (the
    sample's name), ``'label'``, ``'keypoint'`` (float array
    ``(M, T, V, C)``, ``C`` = 2 for 2-D or 3 for 3-D keypoints), and
    optionally ``'keypoint_score'`` ``(M, T, V)``, ``'total_frames'``,
    ``'img_shape'`` and others, which are not used. A file that is a plain
    list of annotations (one file per split, as older mmaction2 releases
    ship) is read with ``split=None``, and so is a file holding one
    annotation dict (as per-video extraction scripts write it), read as a
    one-sample list.

    The pickle is loaded with
    :func:`~tcmp_pyg.datasets.safe_pickle.safe_load_pickle`: only plain data
    and numpy arrays are accepted, any other global (``os.system``, ...) is
    refused before it can run.

    - **Frames.** All ``T`` frames of ``'keypoint'`` are kept (``length`` =
      ``T``) and resampled to ``num_frames``; a frame without detection stays
      zero. ``'total_frames'`` is not used.
    - **Bodies.** A sample with fewer bodies than ``num_bodies`` (including
      none) gets zero bodies; one with more keeps the first ``num_bodies``,
      as pyskl's ``FormatGCNInput`` does, and one
      :class:`~tcmp_pyg.datasets.parsing.DataWarning` lists how many were
      cut (again on every load from the processed cache).
    - **Channels.** ``use_score=True`` appends ``'keypoint_score'`` as a last
      channel (``x, y, score``, pyskl's input of its 2-D models); a sample
      without it is then an error. Coordinates are kept as stored (pixels for
      2-D detections).

    The processed file holds every annotation of the file (all splits);
    ``split`` only selects the samples whose ``frame_dir`` the file's split
    list names, so switching splits never re-processes. Every sample is a
    graph with ``x`` of shape ``[num_bodies * V, num_frames, C]``,
    ``edge_index``, ``y``, ``length`` and ``source`` (the ``frame_dir``).

    **Processed cache.** Beside the pickle in ``<path>.tcmp_cache/``, or under
    ``root/processed/`` when a ``root`` is given; the file names hold a hash
    of the pickle's path, size and modification time and the options, so an
    updated pickle is re-processed.

    **Files of this kind (e.g., pyskl's releases):**

    .. list-table::
        :widths: 25 25 20 30
        :header-rows: 1

        * - File
          - Splits
          - Keypoints
          - Arguments
        * - ``ntu60_3danno.pkl``
          - ``xsub_train``, ``xsub_val``, ``xview_train``, ``xview_val``
          - 3-D, 25 joints
          - ``layout='ntu'``
        * - ``ntu60_hrnet.pkl``
          - as above
          - 2-D + score, 17 COCO joints
          - ``layout='coco', num_bodies=2, use_score=True``
        * - ``ntu120_3danno.pkl``, ``ntu120_hrnet.pkl``
          - ``xsub_*``, ``xset_*``
          - as above
          - as above

    Args:
        path (str): The ``.pkl`` file.
        split (str, optional): A key of the file's ``'split'`` dict, or
            :obj:`None` for every annotation. (default: :obj:`'train'`)
        layout (str or SkeletonLayout, optional): The skeleton of the
            keypoints (``'ntu'``, ``'coco'``, ``'openpose'`` or your own).
            (default: :obj:`'ntu'`)
        num_frames (int, optional): Frames every sequence is resampled to.
            (default: :obj:`64`)
        root (str, optional): Folder for the processed cache.
            (default: :obj:`None`, beside the pickle)
        num_bodies (int, optional): Bodies per graph. (default: :obj:`None`,
            the layout's body count)
        use_score (bool, optional): Append ``'keypoint_score'`` as a channel.
            (default: :obj:`False`)
        class_names (sequence of str, optional): One name per class.
            (default: :obj:`None`, ``'0'``, ``'1'``, ... up to the largest
            label in the file)
        transform (callable, optional): Applied to each graph on access.
        pre_transform (callable, optional): Applied before saving to disk.
        pre_filter (callable, optional): Keeps the graphs it returns
            :obj:`True` for, before saving to disk.
        force_reload (bool, optional): Re-process. (default: :obj:`False`)

    Example::

        >>> train = PoseAnnotations('ntu60_3danno.pkl', 'xsub_train', 'ntu')
        >>> val = PoseAnnotations('ntu60_3danno.pkl', 'xsub_val', 'ntu')
    """
    name = 'pose'

    def __init__(self, path: PathLike, split: Optional[str] = 'train',
                 layout: LayoutLike = 'ntu', num_frames: int = 64,
                 root: Optional[PathLike] = None, *,
                 num_bodies: Optional[int] = None, use_score: bool = False,
                 class_names: Optional[Sequence[str]] = None,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False) -> None:
        self.input_path = osp.abspath(osp.expanduser(os.fspath(path)))
        if not osp.isfile(self.input_path):
            raise FileNotFoundError(f"PoseAnnotations: annotation file "
                                    f"'{self.input_path}' not found")
        self.num_frames = check_num_frames(num_frames)
        base = get_layout(layout)
        bodies = base.num_bodies if num_bodies is None else check_num_bodies(num_bodies)
        self.layout = base.with_bodies(bodies)
        self.use_score = bool(use_score)
        self.cache_dir = resolve_cache_dir(self.input_path, root, 'PoseAnnotations')
        self._identity = file_identity(self.input_path)
        self._raw: Optional[Any] = None
        self.splits = self._read_splits(force_reload)
        if split is not None and split not in self.splits:
            have = (f"its splits are {sorted(self.splits)}" if self.splits else
                    "it has no 'split' dict: pass split=None to use every "
                    "annotation")
            raise ValueError(f"PoseAnnotations: split {split!r} is not in "
                             f"'{self.input_path}' ({have})")
        self.split = split
        super().__init__(root, transform, pre_transform, pre_filter,
                         force_reload=force_reload)
        self._raw = None  # the pickle can be gigabytes: not kept
        self.class_names = default_class_names(
            self.all_meta('y').tolist(), class_names, 'PoseAnnotations')

    # -- the pickle and its splits ------------------------------------------

    @property
    def _splits_path(self) -> str:
        return osp.join(self.cache_dir, f'{self.name}_{self._identity}_splits.json')

    def _load(self) -> Any:
        if self._raw is None:
            self._raw = safe_load_pickle(self.input_path)
            self._annotations(self._raw)  # checks the structure early
        return self._raw

    @staticmethod
    def _is_one_annotation(obj: Any) -> bool:
        # What per-video extraction scripts write: one annotation dict.
        return isinstance(obj, dict) and 'annotations' not in obj \
            and 'keypoint' in obj

    def _annotations(self, obj: Any) -> List[Dict[str, Any]]:
        if self._is_one_annotation(obj):
            return [obj]
        anns = obj.get('annotations') if isinstance(obj, dict) else obj
        if not isinstance(anns, (list, tuple)) \
                or not all(isinstance(a, dict) for a in anns):
            got = type(obj).__name__
            if isinstance(obj, dict):
                got += f' with keys {sorted(map(str, obj))}'
            raise ValueError(
                f"PoseAnnotations: expected '{self.input_path}' to hold "
                f"{{'split': {{...}}, 'annotations': [dict, ...]}}, a list "
                f"of annotation dicts or one annotation dict with "
                f"'keypoint' (got {got})")
        return list(anns)

    def _read_splits(self, force_reload: bool) -> Dict[str, List[str]]:
        """The file's split lists, from the cache or the pickle (which is then
        kept for processing)."""
        if not force_reload and osp.isfile(self._splits_path):
            with open(self._splits_path) as f:
                return json.load(f)
        obj = self._load()
        splits = obj.get('split', {}) if isinstance(obj, dict) \
            and not self._is_one_annotation(obj) else {}
        if not isinstance(splits, dict) or not all(
                isinstance(v, (list, tuple)) for v in splits.values()):
            raise ValueError(f"PoseAnnotations: expected the 'split' entry of "
                             f"'{self.input_path}' to map split names to "
                             f"lists of frame_dir")
        splits = {str(k): [str(n) for n in v] for k, v in splits.items()}
        os.makedirs(self.cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix='.tmp')
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(splits, f)
            os.replace(tmp, self._splits_path)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
        return splits

    # -- processing ---------------------------------------------------------

    @property
    def processed_file_names(self) -> List[str]:
        return [self.processed_name(self._identity, layout_tag(self.layout),
                                    f'M{self.layout.num_bodies}',
                                    f'T{self.num_frames}',
                                    'score' if self.use_score else 'kp')]

    def _where(self, k: int, ann: Dict[str, Any]) -> str:
        return (f"PoseAnnotations: annotation {k} (frame_dir "
                f"{ann.get('frame_dir')!r}) of '{self.input_path}'")

    def read_data_list(self) -> List[Data]:
        bodies, V = self.layout.num_bodies, self.layout.num_joints
        data_list, cut, channels = [], [], None
        for k, ann in enumerate(self._annotations(self._load())):
            where = self._where(k, ann)
            missing = [key for key in ('frame_dir', 'label', 'keypoint')
                       if key not in ann]
            if missing:
                raise ValueError(f"{where}: missing {missing}")
            label = ann['label']
            if isinstance(label, (bool, np.bool_)) or not isinstance(
                    label, (int, np.integer)) or label < 0:
                raise ValueError(f"{where}: expected 'label' to be an integer "
                                 f">= 0 (got {label!r})")
            kp = np.asarray(ann['keypoint'], dtype=np.float32)
            if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
                raise ValueError(f"{where}: expected 'keypoint' of shape "
                                 f"(M, T, V, C) with C = 2 or 3 (got shape "
                                 f"{kp.shape})")
            M, T, Vk, _ = kp.shape
            if Vk != V:
                raise ValueError(f"{where}: 'keypoint' has V = {Vk} joints "
                                 f"but layout '{self.layout.name}' has {V}"
                                 f"{joints_hint(Vk)}")
            if T < 1:
                raise ValueError(f"{where}: 'keypoint' has no frame")
            if self.use_score:
                kp = np.concatenate([kp, self._score(ann, kp.shape[:3], where)],
                                    axis=-1)
            if channels is None:
                channels = kp.shape[-1]
            elif kp.shape[-1] != channels:
                raise ValueError(f"{where}: {kp.shape[-1]} channels, but the "
                                 f"annotations before it have {channels}")
            if M > bodies:
                cut.append(str(ann['frame_dir']))
                kp = kp[:bodies]
            elif M < bodies:  # absent bodies are zeros
                pad = np.zeros((bodies - M,) + kp.shape[1:], dtype=np.float32)
                kp = np.concatenate([kp, pad], axis=0)
            data_list.append(skeleton_to_data(
                kp.transpose(1, 0, 2, 3), self.layout, int(label),  # T, M, V, C
                self.num_frames, source=str(ann['frame_dir'])))
        if cut:
            shown = ', '.join(cut[:5]) + (f' and {len(cut) - 5} more'
                                          if len(cut) > 5 else '')
            what = 'body' if bodies == 1 else 'bodies'
            warn_data(f"PoseAnnotations: {len(cut)} sample(s) of "
                      f"'{self.input_path}' have more than {bodies} {what}; "
                      f"kept the first {bodies} ({shown}). Pass num_bodies= "
                      f"to keep more.")
        return data_list

    @staticmethod
    def _score(ann: Dict[str, Any], shape: tuple, where: str) -> np.ndarray:
        if ann.get('keypoint_score') is None:
            raise ValueError(f"{where}: no 'keypoint_score' to append "
                             f"(use_score=True); pass use_score=False")
        score = np.asarray(ann['keypoint_score'], dtype=np.float32)
        if score.shape != tuple(shape):
            raise ValueError(f"{where}: expected 'keypoint_score' of shape "
                             f"(M, T, V) = {tuple(shape)} (got {score.shape})")
        return score[..., None]

    def split_mask(self) -> Optional[Tensor]:
        if self.split is None:
            return None
        names = set(self.splits[self.split])
        return torch.tensor([s in names for s in self.all_meta('source')],
                            dtype=torch.bool)
