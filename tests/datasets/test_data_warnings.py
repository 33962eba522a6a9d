"""Data warnings (sequences left out, bodies dropped) point at the user's
call and are issued again when a dataset is loaded from its processed cache."""
import os
import warnings

import numpy as np
import pytest

from tcmp_pyg.datasets import (DataWarning, NTURGBD, PoseAnnotations,
                               SkippedSequenceWarning)
from tcmp_pyg.datasets.parsing import collect_data_warnings, warn_data

from test_ntu import ntu_small  # noqa: F401 (fixture)
from test_pose_annotations import annotations_2d, write


def data_warnings(build):
    """The DataWarnings issued while ``build()`` runs."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        result = build()
    return result, [w for w in record if issubclass(w.category, DataWarning)]


def test_warning_points_at_the_call_site_and_repeats_from_the_cache(ntu_small):
    _, first = data_warnings(lambda: NTURGBD(ntu_small, num_frames=8))
    assert [w.category for w in first] == [SkippedSequenceWarning]
    assert first[0].filename == __file__  # this file, not tcmp_pyg's
    assert 'without any body: S001C003P007R001A005' in str(first[0].message)
    processed = ntu_small / 'processed'
    stamp = {f: os.stat(processed / f).st_mtime_ns for f in os.listdir(processed)}
    # Loaded from the cache (nothing re-processed): the same warning, here.
    ds, again = data_warnings(lambda: NTURGBD(ntu_small, split='test', num_frames=8))
    assert {f: os.stat(processed / f).st_mtime_ns
            for f in os.listdir(processed)} == stamp
    assert [str(w.message) for w in again] == [str(first[0].message)]
    assert again[0].filename == __file__ and len(ds) == 2
    with pytest.warns(SkippedSequenceWarning, match='S001C003P007R001A005'):
        NTURGBD(ntu_small, num_frames=8, on_disk=True)  # stored there too
    with pytest.warns(SkippedSequenceWarning, match='S001C003P007R001A005'):
        NTURGBD(ntu_small, num_frames=8, on_disk=True)


def test_bodies_dropped_warning_repeats_from_the_cache(tmp_path):
    anns = annotations_2d()
    anns[0]['keypoint'] = np.concatenate([anns[0]['keypoint']] * 2)  # 4 people
    path = write(tmp_path / 'hrnet.pkl', anns)
    for _ in range(2):  # processed, then from <path>.tcmp_cache
        _, record = data_warnings(
            lambda: PoseAnnotations(path, 'xsub_train', 'coco', num_frames=8))
        assert len(record) == 1 and record[0].filename == __file__
        assert 'more than 1 body; kept the first 1' in str(record[0].message)


def test_warn_data_collects_or_points_outside_the_package():
    with collect_data_warnings() as notes:
        warn_data('recorded, not issued', SkippedSequenceWarning)
    assert notes == [('SkippedSequenceWarning', 'recorded, not issued')]
    with pytest.warns(DataWarning, match='issued') as record:
        warn_data('issued')
    assert record[0].filename == __file__
