import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import SyntheticSkeletonActions
from tcmp_pyg.datasets.base import PROCESSED_VERSION
from tcmp_pyg.datasets.synthetic import (NUM_TRAIN_SUBJECTS, SYNTHETIC_CLASSES,
                                         synthesize_actions)
from tcmp_pyg.layouts import NTU, SkeletonLayout, get_layout
from tcmp_pyg.transforms import CenterJoint


@pytest.fixture(scope='module')
def default_splits(tmp_path_factory):
    """The default dataset (600 train, 300 test), generated once."""
    root = tmp_path_factory.mktemp('synthetic')
    return (SyntheticSkeletonActions(root),
            SyntheticSkeletonActions(root, split='test'))


def processed_files(root):
    return sorted(f for f in os.listdir(root / 'processed')
                  if f.startswith('synthetic_'))


def coords(ds):
    """All sequences of a split as ``[N, M * V, T, C]``."""
    return torch.stack([ds[i].x for i in range(len(ds))]).numpy()


def test_shapes_attributes_and_repr(default_splits):
    train, test = default_splits
    assert repr(train) == 'SyntheticSkeletonActions(600)'
    assert repr(test) == 'SyntheticSkeletonActions(300)'
    assert train.class_names == SYNTHETIC_CLASSES[:10]
    assert train.layout.num_bodies == 2 and train.layout.num_joints == 25
    data = train[0]
    assert data.x.shape == (50, 32, 3) and data.x.dtype == torch.float32
    assert torch.equal(data.edge_index, NTU.edge_index())
    assert data.y.shape == (1,) and data.length.tolist() == [32]
    assert data.subject.shape == (1,)
    assert data.source == 'synthetic/train/0'
    assert test[0].source == 'synthetic/test/0'
    # Body 0 acts, body 1 is zero padding (as in NTU's one-person actions).
    x = coords(train)
    assert np.all(x[:, 25:] == 0)
    assert np.all(np.abs(x[:, :25]).sum(axis=(2, 3)) > 0)

    batch = next(iter(DataLoader(train, batch_size=4)))
    assert batch.x.shape == (4 * 50, 32, 3)
    assert batch.y.shape == batch.subject.shape == (4,)
    assert len(batch.source) == 4


def test_split_sizes_subjects_and_class_balance(default_splits):
    train, test = default_splits
    assert (len(train), len(test)) == (600, 300)
    train_subjects = set(train.meta('subject').tolist())
    test_subjects = set(test.meta('subject').tolist())
    assert train_subjects == set(range(1, NUM_TRAIN_SUBJECTS + 1))
    assert test_subjects == {11, 12, 13, 14, 15}
    assert torch.bincount(train.meta('y'), minlength=10).tolist() == [60] * 10
    assert torch.bincount(test.meta('y'), minlength=10).tolist() == [30] * 10
    # Every subject performs every class.
    pairs = set(zip(train.meta('subject').tolist(), train.meta('y').tolist()))
    assert len(pairs) == NUM_TRAIN_SUBJECTS * 10
    # Both splits come from one processed file.
    assert len(processed_files(Path(train.root))) == 1


def test_same_seed_gives_identical_tensors(tmp_path):
    kwargs = dict(num_samples=60, num_frames=16)
    a = SyntheticSkeletonActions(tmp_path / 'a', **kwargs)
    b = SyntheticSkeletonActions(tmp_path / 'b', **kwargs)
    c = SyntheticSkeletonActions(tmp_path / 'c', seed=1, **kwargs)
    for key in ('x', 'y', 'subject', 'edge_index'):
        assert torch.equal(a._data[key], b._data[key])
    assert a.all_meta('source') == b.all_meta('source')
    assert not torch.equal(a._data.x, c._data.x)
    # Reloading from the processed file gives the same tensors as well.
    again = SyntheticSkeletonActions(tmp_path / 'a', **kwargs)
    assert torch.equal(again._data.x, a._data.x)


def test_processed_name_encodes_every_option(tmp_path):
    ds = SyntheticSkeletonActions(tmp_path, num_samples=30, num_frames=8)
    assert processed_files(tmp_path) == [
        f'synthetic_ntu_C10_N30_T8_M2_d0.5_s0_v{PROCESSED_VERSION}.pt']
    # The split only selects: no second file.
    SyntheticSkeletonActions(tmp_path, split='test', num_samples=30, num_frames=8)
    assert len(processed_files(tmp_path)) == 1

    options = [dict(num_classes=5), dict(num_samples=33), dict(num_frames=9),
               dict(layout='sbu'), dict(num_bodies=1), dict(difficulty=0.25),
               dict(seed=3)]
    names = set(processed_files(tmp_path))
    for option in options:
        kwargs = dict(num_samples=30, num_frames=8)
        kwargs.update(option)
        SyntheticSkeletonActions(tmp_path, **kwargs)
        new = set(processed_files(tmp_path)) - names
        assert len(new) == 1, option
        names |= new
    for expected in ('ntu_C5_N30_T8_M2_d0.5_s0', 'ntu_C10_N33_T8_M2_d0.5_s0',
                     'ntu_C10_N30_T9_M2_d0.5_s0', 'sbu_C10_N30_T8_M2_d0.5_s0',
                     'ntu_C10_N30_T8_M1_d0.5_s0', 'ntu_C10_N30_T8_M2_d0.25_s0',
                     'ntu_C10_N30_T8_M2_d0.5_s3'):
        assert f'synthetic_{expected}_v{PROCESSED_VERSION}.pt' in names

    # A custom layout named like a built-in one gets a hash of its bones.
    arm = SkeletonLayout('ntu', ['shoulder', 'elbow', 'hand'], [(0, 1), (1, 2)],
                         center=0)
    custom = SyntheticSkeletonActions(tmp_path, layout=arm, num_samples=30,
                                      num_frames=8)
    assert custom.processed_file_names[0].startswith('synthetic_ntu-')
    assert custom[0].x.shape == (3, 8, 3)
    assert ds[0].x.shape == (50, 8, 3)


@pytest.mark.parametrize('layout', ['ntu', 'sbu', 'kinect_v1', 'coco', 'fpha'])
def test_bone_lengths_constant_within_a_sequence(layout):
    layout = get_layout(layout)
    labels = np.arange(20) % len(SYNTHETIC_CLASSES)
    subjects = np.arange(20) % 4
    kwargs = dict(layout=layout, num_classes=len(SYNTHETIC_CLASSES),
                  num_frames=24, difficulty=1.0)
    bones = torch.tensor(layout.bones).t()

    def lengths(seq):  # [N, T, E]
        seq = torch.from_numpy(seq).double()
        return (seq[:, :, bones[0]] - seq[:, :, bones[1]]).norm(dim=-1)

    clean = lengths(synthesize_actions(labels, subjects, noise=False, **kwargs))
    assert (clean.std(dim=1) < 1e-5 * clean.mean(dim=1)).all()
    # Subjects differ in their bone lengths, a subject keeps them.
    per_seq = clean[:, 0]
    assert torch.allclose(per_seq[0], per_seq[4], rtol=1e-5)
    assert not torch.allclose(per_seq[0], per_seq[1], rtol=1e-2)
    # With sensor noise: constant up to the noise (sigma 2 cm at difficulty 1,
    # for a 1.7 m body).
    noisy = lengths(synthesize_actions(labels, subjects, **kwargs))
    height = 1.7 if layout.name != 'fpha' else 1.0
    assert noisy.std(dim=1).max() < 0.1 * height / 1.7
    assert (noisy.std(dim=1) > 0).all()


def test_ntu_rest_pose_is_a_standing_person():
    names = NTU.joint_names
    bow = SYNTHETIC_CLASSES.index('bow')
    seq = synthesize_actions(np.array([bow]), np.array([1]), num_frames=8,
                             difficulty=0.0, noise=False)[0]  # [T, V, 3]
    head, neck, spine = (names.index(n) for n in ('head', 'neck', 'spine_mid'))
    y = seq[seq[:, head, 1].argmax(), :, 1]  # the most upright frame
    knee, foot = names.index('left_knee'), names.index('left_foot')
    assert y[head] > y[neck] > y[spine] > y[knee] > y[foot] >= 0
    assert 1.5 < y[head] < 1.9
    # At difficulty 0 the subject faces the camera (-z): bowing brings the
    # head towards it.
    head_z = seq[:, head, 2]
    assert head_z.min() < seq[:, names.index('spine_base'), 2].min() - 0.2


def test_other_layouts_and_body_counts(tmp_path):
    one = SyntheticSkeletonActions(tmp_path, num_bodies=1, num_samples=30,
                                   num_frames=8)
    assert one[0].x.shape == (25, 8, 3) and one.layout.num_bodies == 1
    hand = SyntheticSkeletonActions(tmp_path, layout='fpha', num_samples=30,
                                    num_frames=8, num_classes=4)
    assert hand[0].x.shape == (21, 8, 3)
    assert hand.class_names == SYNTHETIC_CLASSES[:4]
    assert set(hand.meta('y').tolist()) == {0, 1, 2, 3}
    assert hand[0].x.std(dim=1).mean() > 0  # the fingers move


def test_synthesize_actions_checks_its_inputs():
    with pytest.raises(ValueError, match='one subject per label'):
        synthesize_actions(np.array([0, 1]), np.array([1]))
    with pytest.raises(ValueError, match=r'labels in 0\.\.17'):
        synthesize_actions(np.array([18]), np.array([1]))
    with pytest.raises(ValueError, match="labels below 'num_classes' = 2"):
        synthesize_actions(np.array([0, 2]), np.array([1, 1]), num_classes=2)
    with pytest.raises(ValueError, match='non-negative subject numbers'):
        synthesize_actions(np.array([0]), np.array([-1]))


@pytest.mark.parametrize('kwargs, match', [
    (dict(split='val'), "'split' to be one of"),
    (dict(num_classes=1), "'num_classes' to be an integer in 2..18"),
    (dict(num_classes=19), "'num_classes' to be an integer in 2..18"),
    (dict(num_samples=2), "'num_samples' to be an integer >= 3"),
    (dict(num_frames=0), "'num_frames' to be an integer >= 1"),
    (dict(num_bodies=0), "'num_bodies' to be an integer >= 1"),
    (dict(difficulty=1.5), r"'difficulty' to be a number in \[0, 1\]"),
    (dict(difficulty=True), r"'difficulty' to be a number in \[0, 1\]"),
    (dict(seed=-1), "'seed' to be an integer >= 0"),
    (dict(layout='nope'), "Unknown skeleton layout 'nope'"),
])
def test_invalid_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticSkeletonActions(tmp_path, **kwargs)
    assert not (tmp_path / 'processed').exists() \
        or not processed_files(tmp_path)


# Joints whose trajectories the hand-crafted features describe.
_KEY_JOINTS = ('head', 'left_hand', 'right_hand', 'left_elbow', 'right_elbow',
               'left_knee', 'right_knee', 'left_foot', 'right_foot',
               'spine_base', 'spine_shoulder')


def rotation_invariant_features(x: np.ndarray) -> np.ndarray:
    """Features of ``[N, M * V, T, 3]`` NTU sequences that a rotation about
    the vertical axis and a shift leave unchanged: mean and spread over time
    of the key joints' heights, horizontal distances and pairwise distances,
    and the correlations between the joints' heights (the limbs'
    coordination)."""
    key = [NTU.joint_names.index(n) for n in _KEY_JOINTS]
    x = x[:, :NTU.num_joints].transpose(0, 2, 1, 3)  # [N, T, V, 3], body 0
    x = x - x[:, :, NTU.center:NTU.center + 1]
    k = x[:, :, key]  # [N, T, K, 3]
    height = k[..., 1]
    radius = np.linalg.norm(k[..., [0, 2]], axis=-1)
    iu = np.triu_indices(len(key), 1)
    dist = np.linalg.norm(k[:, :, :, None] - k[:, :, None], axis=-1)[..., iu[0], iu[1]]
    series = np.concatenate([height, radius, dist], axis=2)  # [N, T, F]
    z = (height - height.mean(1, keepdims=True)) / (height.std(1, keepdims=True) + 1e-6)
    corr = np.einsum('ntk,ntl->nkl', z, z) / z.shape[1]
    return np.concatenate([series.mean(1), series.std(1), corr[:, iu[0], iu[1]]],
                          axis=1)


def linear_and_nonlinear_accuracy(train, test):
    """Test accuracies of logistic regression on the flattened raw
    coordinates and of a random forest on rotation-invariant features."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x_train, x_test = coords(train), coords(test)
    y_train, y_test = train.meta('y').numpy(), test.meta('y').numpy()
    # One BLAS thread: on a busy machine more threads make lbfgs 5x slower.
    with threadpool_limits(limits=1):
        linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        linear.fit(x_train.reshape(len(x_train), -1), y_train)
        linear_acc = linear.score(x_test.reshape(len(x_test), -1), y_test)
    forest = RandomForestClassifier(n_estimators=200, random_state=0)
    forest.fit(rotation_invariant_features(x_train), y_train)
    forest_acc = forest.score(rotation_invariant_features(x_test), y_test)
    return linear_acc, forest_acc


def test_not_linearly_separable_but_learnable(default_splits):
    # Measured (seed 0): logistic regression 0.690, random forest 0.987.
    linear_acc, forest_acc = linear_and_nonlinear_accuracy(*default_splits)
    assert linear_acc < 0.8
    assert forest_acc > 0.9
    assert forest_acc > linear_acc + 0.2


@pytest.mark.slow
@pytest.mark.parametrize('difficulty, linear_max, forest_min', [
    (0.0, 0.85, 0.95),  # measured: 0.800, 1.000
    (1.0, 0.70, 0.75),  # measured: 0.563, 0.830
])
def test_separability_across_difficulties(tmp_path, difficulty, linear_max,
                                          forest_min):
    train = SyntheticSkeletonActions(tmp_path, difficulty=difficulty)
    test = SyntheticSkeletonActions(tmp_path, split='test', difficulty=difficulty)
    linear_acc, forest_acc = linear_and_nonlinear_accuracy(train, test)
    assert linear_acc < linear_max
    assert forest_acc > forest_min
    assert forest_acc > linear_acc + 0.15


def test_transforms_apply(tmp_path):
    ds = SyntheticSkeletonActions(tmp_path, num_samples=30, num_frames=8,
                                  transform=CenterJoint('ntu'))
    x = ds[0].x
    assert torch.allclose(x[NTU.center, 0], torch.zeros(3))
    assert torch.all(x[25:] == 0)  # the padded body stays zero
