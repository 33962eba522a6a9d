import copy
import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from tcmp_pyg.checkpoint import CheckpointError, read_checkpoint
from tcmp_pyg.datasets.splits import dataset_options, dataset_splits
from tcmp_pyg.nn import STGCN
from tcmp_pyg.pruning import connectivity, make_pruner
from tcmp_pyg.train import (TrainConfig, TrainResult, _differences, evaluate,
                             lr_factor, train)
from tcmp_pyg.transforms import CenterJoint, RandomBodySwap, RandomRotation3D

NUM_CLASSES = 4
IN_CHANNELS = 6  # x, y, z and their motion (dataset_splits' default)


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def splits(tmp_path_factory):
    """A small, easy synthetic set: 80 training and 40 test sequences of one
    20-joint body, 4 classes, 16 frames."""
    root = tmp_path_factory.mktemp('synthetic')
    return dataset_splits('synthetic', str(root), num_samples=120,
                          num_classes=NUM_CLASSES, num_frames=16,
                          layout='kinect_v1', difficulty=0.2)


def tiny_model(layout, seed: int = 0, num_classes: int = NUM_CLASSES) -> STGCN:
    torch.manual_seed(seed)
    return STGCN(IN_CHANNELS, num_classes, layout, channels=(8, 8))


def quick(**kwargs) -> TrainConfig:
    options = dict(epochs=4, batch_size=8, lr=0.05, warmup=1, progress=False)
    return TrainConfig(**{**options, **kwargs})


def without_times(history):
    return [{k: v for k, v in row.items() if not k.endswith('time_s')}
            for row in history]


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_lr_factor_warmup_cosine_and_step():
    cosine = [lr_factor(s, total_steps=100, warmup_steps=10) for s in range(100)]
    assert cosine[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert cosine[9] == 1.0 and cosine[10] == 1.0
    assert all(a >= b for a, b in zip(cosine[10:], cosine[11:]))  # decays
    assert cosine[55] == pytest.approx(0.5)  # half-way through the decay
    assert lr_factor(100, total_steps=100, warmup_steps=10) == pytest.approx(0.0)
    step = [lr_factor(s, total_steps=100, warmup_steps=0, schedule='step',
                      milestones=(0.5, 0.75), gamma=0.1) for s in range(100)]
    assert step[0] == step[49] == 1.0
    assert step[50] == step[74] == pytest.approx(0.1)
    assert step[75] == step[99] == pytest.approx(0.01)


def test_config_validation():
    with pytest.raises(ValueError, match=r"'optimizer' to be one of \('sgd', "
                                         r"'adamw'\) \(got 'adam'\)"):
        TrainConfig(optimizer='adam')
    with pytest.raises(ValueError, match="'epochs' to be an integer >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="'schedule'"):
        TrainConfig(schedule='linear')
    with pytest.raises(ValueError, match=r"'label_smoothing' in \[0, 1\) \(got 1.0\)"):
        TrainConfig(label_smoothing=1.0)


def test_label_smoothing_trains_on_smoothed_targets(splits):
    train_ds, test_ds = splits
    plain, smooth = tiny_model(train_ds.layout), tiny_model(train_ds.layout)
    rp = train(plain, train_ds, test_ds, quick(epochs=1))
    rs = train(smooth, train_ds, test_ds, quick(epochs=1, label_smoothing=0.3))
    assert not same_weights(plain, smooth)
    assert rs.history[0]['train_loss'] != rp.history[0]['train_loss']
    # Evaluation reports the plain cross-entropy of the trained weights.
    again = evaluate(smooth, DataLoader(test_ds, batch_size=64))
    assert rs.history[0]['test_loss'] == pytest.approx(again.loss)


def test_runs_saved_before_a_setting_existed_resume_with_its_default():
    saved = {'config': {k: v for k, v in TrainConfig().to_dict().items()
                        if k != 'label_smoothing'}}
    assert _differences(saved, {'config': TrainConfig().to_dict()}) == []
    assert _differences(saved, {'config': TrainConfig(label_smoothing=0.1).to_dict()}) == [
        'config.label_smoothing: 0.0 -> 0.1']


def test_training_learns(splits):
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout)
    result = train(model, train_ds, test_ds, quick(epochs=8))
    assert isinstance(result, TrainResult)
    assert result.epochs == 8 and len(result.history) == 8
    first, last = result.history[0], result.history[-1]
    assert last['train_loss'] < 0.7 * first['train_loss']
    assert result.test_accuracy == last['test_acc']  # the last epoch, not the best
    assert result.test_accuracy >= 0.5  # chance is 0.25
    assert result.train_time_s > 0 and result.samples_per_s > 0
    assert result.connectivity is None


def test_same_seed_same_run(splits):
    train_ds, test_ds = splits
    a, b, c = (tiny_model(train_ds.layout) for _ in range(3))
    ra = train(a, train_ds, test_ds, quick())
    rb = train(b, train_ds, test_ds, quick())
    train(c, train_ds, test_ds, quick(seed=1))
    assert without_times(ra.history) == without_times(rb.history)
    assert same_weights(a, b)
    assert not same_weights(a, c)  # the seed changes shuffling and augmentation


def test_adamw_and_step_schedule(splits):
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout)
    result = train(model, train_ds, test_ds,
                   quick(optimizer='adamw', lr=0.01, weight_decay=0.01,
                         schedule='step', warmup=0, milestones=(0.5,)))
    lrs = [row['lr'] for row in result.history]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001])
    assert all(math.isfinite(row['train_loss']) for row in result.history)


@pytest.mark.parametrize('method', [None, 'tcmp'])
def test_resume_equals_uninterrupted_run(splits, tmp_path, method):
    train_ds, test_ds = splits

    def run(out_dir, stop_after=None):
        model = tiny_model(train_ds.layout)
        pruner = make_pruner(method, model, 0.9) if method else None
        epochs_seen = []

        def on_epoch_end(row):
            epochs_seen.append(row['epoch'])
            if row['epoch'] == stop_after:
                raise KeyboardInterrupt  # as if the process was killed here

        try:
            result = train(model, train_ds, test_ds, quick(), pruner=pruner,
                           out_dir=str(out_dir), on_epoch_end=on_epoch_end)
        except KeyboardInterrupt:
            result = None
        return result, model, epochs_seen

    straight, straight_model, _ = run(tmp_path / 'straight')

    out = tmp_path / 'resumed'
    result, _, seen = run(out, stop_after=2)
    assert result is None and seen == [1, 2]
    assert read_checkpoint(out / 'model.pt')['training']['epoch'] == 2
    assert not (out / 'metrics.json').exists()  # written once finished
    resumed, resumed_model, seen = run(out)
    assert seen == [3, 4] and resumed.resumed_from == 2

    assert without_times(resumed.history) == without_times(straight.history)
    assert resumed.test_accuracy == straight.test_accuracy
    assert same_weights(resumed_model, straight_model)

    # A finished run is not trained again: it only reports its result.
    again, again_model, seen = run(out)
    assert seen == [] and again.resumed_from == 4 and again.epochs == 4
    assert again.test_accuracy == straight.test_accuracy
    assert same_weights(again_model, straight_model)


def test_resume_falls_back_on_the_previous_checkpoint(splits, tmp_path):
    train_ds, test_ds = splits

    def run(out_dir, stop_after=None):
        def on_epoch_end(row):
            if row['epoch'] == stop_after:
                raise KeyboardInterrupt
        model = tiny_model(train_ds.layout)
        try:
            return train(model, train_ds, test_ds, quick(), out_dir=str(out_dir),
                         pruner=make_pruner('mp', model, 0.9),
                         on_epoch_end=on_epoch_end)
        except KeyboardInterrupt:
            return None

    straight = run(tmp_path / 'straight')
    out = tmp_path / 'resumed'
    assert run(out, stop_after=3) is None
    assert read_checkpoint(out / 'model.prev.pt')['training']['epoch'] == 2
    (out / 'model.pt').write_bytes((out / 'model.pt').read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"corrupt or truncated .* resuming "
                                         r"from the previous checkpoint .*epoch 2"):
        resumed = run(out)
    assert resumed.resumed_from == 2
    assert without_times(resumed.history) == without_times(straight.history)
    assert (out / 'model.pt.corrupt').exists()

    # A corrupt checkpoint and no previous one: a clear error.
    (out / 'model.pt').write_bytes(b'')
    (out / 'model.prev.pt').unlink()
    with pytest.raises(CheckpointError, match=r"model.pt' is corrupt .* no "
                                              r"previous checkpoint"):
        run(out)


def test_resume_with_other_settings_is_refused(splits, tmp_path):
    train_ds, test_ds = splits
    train(tiny_model(train_ds.layout), train_ds, test_ds, quick(epochs=1),
          out_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"holds a run with other settings "
                                         r"\(config.lr: 0.05 -> 0.1\)"):
        train(tiny_model(train_ds.layout), train_ds, test_ds,
              quick(epochs=1, lr=0.1), out_dir=str(tmp_path))


@pytest.mark.parametrize('method', ['tcmp', 'mp'])
def test_pruner_reaches_the_budget(splits, method):
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout)
    pruner = make_pruner(method, model, 0.9, start=0.1, end=0.6)
    result = train(model, train_ds, test_ds, quick(), pruner=pruner)
    report = connectivity(model)
    assert report.kept == pruner.budget
    assert result.connectivity['kept'] == pruner.budget
    assert [row['kept'] for row in result.history][-1] == pruner.budget
    assert result.history[0]['kept'] > pruner.budget  # pruned gradually
    if method == 'tcmp':
        assert report.is_consistent and result.connectivity['dead'] == 0


class SpyPruner:
    """Records the hook calls of the training loop; adds a constant penalty."""
    def __init__(self, model):
        self.model = model
        self.calls = []

    def setup(self, total_steps):
        self.calls.append(('setup', total_steps))

    def step(self, step):
        self.calls.append(('step', step))

    def penalty(self):
        return torch.tensor(10.0)

    def finalize(self):
        self.calls.append(('finalize',))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_pruner_hook_protocol(splits):
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout)
    spy = SpyPruner(model)
    forwards = []
    model.register_forward_pre_hook(
        lambda module, args: forwards.append(len(spy.calls)) if module.training
        else None)
    result = train(model, train_ds, test_ds, quick(epochs=2), pruner=spy)
    steps = 2 * math.ceil(len(train_ds) / 8)
    assert spy.calls == ([('setup', steps)] + [('step', s) for s in range(steps)]
                         + [('finalize',)])
    # step(s) came right before the s-th training forward pass.
    assert forwards == [s + 2 for s in range(steps)]
    assert all(row['train_loss'] > 10.0 for row in result.history)  # penalty added


def test_run_folder_files(splits, tmp_path):
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout)
    pruner = make_pruner('tcmp', model, 0.9)
    meta = dict(dataset='synthetic', class_names=list(train_ds.class_names))
    result = train(model, train_ds, test_ds, quick(epochs=2), pruner=pruner,
                   out_dir=str(tmp_path), meta=meta)
    history = json.loads((tmp_path / 'history.json').read_text())
    assert history == result.history
    with open(tmp_path / 'history.csv') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['epoch', 'lr', 'train_loss', 'train_acc', 'test_loss',
                             'test_acc', 'train_time_s', 'kept', 'live', 'dead',
                             'eval_time_s']
    assert [int(r['epoch']) for r in rows] == [1, 2]
    assert float(rows[-1]['test_acc']) == result.test_accuracy
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['test_accuracy'] == result.test_accuracy
    assert 0.0 <= metrics['test_accuracy'] <= 1.0
    assert metrics['epochs'] == 2 and metrics['train_time_s'] > 0
    assert metrics['dataset'] == 'synthetic' and metrics['config']['epochs'] == 2
    assert metrics['connectivity']['kept'] == pruner.budget
    assert metrics['connectivity']['dead'] == 0
    checkpoint = read_checkpoint(tmp_path / 'model.pt')
    assert checkpoint['meta'] == meta
    assert checkpoint['training']['history'] == result.history


def test_resume_from_other_initial_weights_is_refused(splits, tmp_path):
    train_ds, test_ds = splits
    train(tiny_model(train_ds.layout), train_ds, test_ds, quick(epochs=1),
          out_dir=str(tmp_path), meta=dict(init_from='dense/model.pt'))
    with pytest.raises(ValueError, match=r'other settings \(init_from\)'):
        train(tiny_model(train_ds.layout), train_ds, test_ds, quick(epochs=1),
              out_dir=str(tmp_path), meta=dict(init_from='other/model.pt'))
    with pytest.raises(ValueError, match=r'other settings \(init_from\)'):
        train(tiny_model(train_ds.layout), train_ds, test_ds, quick(epochs=1),
              out_dir=str(tmp_path))


def test_final_metrics_are_written_with_the_result(splits, tmp_path):
    # One write: a run killed after metrics.json exists never lacks them.
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout)
    seen = []

    def final_metrics(trained):
        seen.append(trained)
        assert not (tmp_path / 'metrics.json').exists()
        return dict(cost=dict(params=7))

    train(model, train_ds, test_ds, quick(epochs=1), out_dir=str(tmp_path),
          final_metrics=final_metrics)
    assert seen == [model]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['cost'] == dict(params=7) and 'test_accuracy' in metrics


class NaNAfter(STGCN):
    """Outputs NaN logits from the ``nan_from``-th training forward pass on."""
    nan_from = 12
    calls = 0

    def forward(self, data):
        out = super().forward(data)
        if self.training:
            self.calls += 1
            if self.calls >= self.nan_from:
                return out * float('nan')
        return out


def test_nan_loss_stops_with_epoch_and_step(splits, tmp_path):
    train_ds, test_ds = splits
    torch.manual_seed(0)
    model = NaNAfter(IN_CHANNELS, NUM_CLASSES, train_ds.layout, channels=(8, 8))
    # 10 steps per epoch: the 12th forward pass is step 2 of epoch 2.
    with pytest.raises(FloatingPointError,
                       match=r"loss is nan at epoch 2, step 2 of 10 \(global "
                             r"step 11\). The checkpoint of epoch 1"):
        train(model, train_ds, test_ds, quick(), out_dir=str(tmp_path))
    assert read_checkpoint(tmp_path / 'model.pt')['training']['epoch'] == 1


def test_labels_outside_the_model_classes_and_empty_splits(splits):
    train_ds, test_ds = splits
    model = tiny_model(train_ds.layout, num_classes=3)
    with pytest.raises(ValueError, match=r"training split has labels in 0\.\.3 "
                                         r"but the model predicts 3 classes"):
        train(model, train_ds, test_ds, quick())
    with pytest.raises(ValueError, match='Expected a non-empty test split'):
        train(tiny_model(train_ds.layout), train_ds, test_ds[:0], quick())


def test_dataset_splits_augment_the_training_split_only(splits, tmp_path):
    train_ds, test_ds = splits
    assert len(train_ds) == 80 and len(test_ds) == 40
    assert any(isinstance(t, RandomRotation3D) for t in train_ds.transform.transforms)
    assert not any(isinstance(t, RandomRotation3D)
                   for t in test_ds.transform.transforms)
    assert torch.equal(test_ds[0].x, test_ds[0].x)  # deterministic
    assert not torch.equal(train_ds[0].x, train_ds[0].x)  # augmented
    x = test_ds[0].x  # [V, T, 6]
    # Centred: body 0's centre joint of the first frame is at the origin.
    center = test_ds.layout.center
    assert torch.allclose(x[center, 0, :3], torch.zeros(3), atol=1e-6)
    # The motion channels are the frame-to-frame differences.
    assert torch.allclose(x[:, :-1, 3:], x[:, 1:, :3] - x[:, :-1, :3])
    assert (x[:, -1, 3:] == 0).all()

    plain, _ = dataset_splits('synthetic', str(tmp_path), num_samples=30,
                              augment=False, center=False, motion=False)
    assert plain.transform is None and plain[0].x.size(-1) == 3
    both, _ = dataset_splits('synthetic', str(tmp_path), num_samples=30,
                             bone=True)
    assert both[0].x.size(-1) == 12  # (joint, bone) and their motion
    # The body order is drawn before body 0 is centred, on the training split only.
    swapped, swapped_test = dataset_splits('synthetic', str(tmp_path),
                                           num_samples=30, swap_bodies=True)
    kinds = [type(t) for t in swapped.transform.transforms]
    assert kinds[:2] == [RandomBodySwap, CenterJoint]
    assert RandomBodySwap not in [type(t) for t in swapped_test.transform.transforms]
    assert RandomBodySwap not in [type(t) for t in train_ds.transform.transforms]
    assert 'fold' in dataset_options('sbu') and 'num_frames' in dataset_options('sbu')
    with pytest.raises(ValueError, match="'fold' do not apply to dataset "
                                         "'synthetic'"):
        dataset_splits('synthetic', str(tmp_path), fold=1)
    with pytest.raises(ValueError, match="Unknown dataset 'kinetics'"):
        dataset_splits('kinetics')


def test_dataset_splits_default_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_ds, _ = dataset_splits('synthetic', num_samples=30, num_frames=8)
    assert (tmp_path / 'datasets' / 'synthetic' / 'processed').is_dir()
    assert train_ds.root.endswith('datasets/synthetic')


def test_stratified_split_is_per_class_seeded_and_disjoint():
    from tcmp_pyg.datasets.splits import stratified_split
    labels = np.repeat(np.arange(4), [10, 20, 2, 1])
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert not set(keep) & set(held)
    assert sorted(np.concatenate([keep, held])) == list(range(len(labels)))
    # round(0.2 * count) per class, but every class keeps one sequence.
    assert np.bincount(labels[held], minlength=4).tolist() == [2, 4, 0, 0]
    assert np.bincount(labels[keep], minlength=4).tolist() == [8, 16, 2, 1]
    again, _ = stratified_split(labels, 0.2, seed=3)
    other, _ = stratified_split(labels, 0.2, seed=4)
    assert np.array_equal(keep, again) and not np.array_equal(keep, other)
    with pytest.raises(ValueError, match=r"'fraction' in \(0, 1\)"):
        stratified_split(labels, 1.0)


def test_dataset_splits_validation_is_held_out_of_training(tmp_path):
    kwargs = dict(num_samples=80, num_classes=NUM_CLASSES, num_frames=8,
                  layout='kinect_v1')
    full, test_ds = dataset_splits('synthetic', str(tmp_path), **kwargs)
    train_ds, val_ds, test2 = dataset_splits('synthetic', str(tmp_path),
                                             val_fraction=0.25, seed=1, **kwargs)
    ids = lambda ds: set(ds.indices())  # positions in the processed file
    assert ids(train_ds) | ids(val_ds) == ids(full)
    assert not ids(train_ds) & ids(val_ds)
    assert not ids(val_ds) & ids(test_ds) and ids(test2) == ids(test_ds)
    # Stratified: a quarter of each class of the training split.
    per_class = torch.bincount(full.meta('y'), minlength=NUM_CLASSES)
    assert torch.bincount(val_ds.meta('y'), minlength=NUM_CLASSES).tolist() == \
        [round(0.25 * int(n)) for n in per_class]
    # Validation is evaluated like the test split: no augmentation.
    assert val_ds.transform is test2.transform
    assert torch.equal(val_ds[0].x, val_ds[0].x)
    assert any(isinstance(t, RandomRotation3D) for t in train_ds.transform.transforms)
    # Seeded: the same seed draws the same sequences, another seed others.
    _, same, _ = dataset_splits('synthetic', str(tmp_path), val_fraction=0.25,
                                seed=1, **kwargs)
    _, other, _ = dataset_splits('synthetic', str(tmp_path), val_fraction=0.25,
                                 seed=2, **kwargs)
    assert ids(same) == ids(val_ds) and ids(other) != ids(val_ds)
    with pytest.raises(ValueError, match=r"'val_fraction' in \(0, 1\)"):
        dataset_splits('synthetic', str(tmp_path), val_fraction=0.0, **kwargs)


def test_train_logs_validation_beside_test(splits, tmp_path):
    from tcmp_pyg.datasets.splits import stratified_split
    train_full, test_ds = splits
    keep, held = stratified_split(train_full.meta('y').numpy(), 0.25, seed=0)
    train_ds, val_ds = train_full[keep.tolist()], train_full[held.tolist()]
    val_ds.transform = test_ds.transform
    out = tmp_path / 'run'
    result = train(tiny_model(train_ds.layout), train_ds, test_ds, quick(),
                   val_dataset=val_ds, out_dir=str(out))
    row = result.history[-1]
    assert list(row)[:8] == ['epoch', 'lr', 'train_loss', 'train_acc',
                             'val_loss', 'val_acc', 'test_loss', 'test_acc']
    model = tiny_model(train_ds.layout)
    model.load_state_dict(torch.load(out / 'model.pt', weights_only=True)['state_dict'])
    val = evaluate(model, DataLoader(val_ds, batch_size=64))
    assert result.val_accuracy == row['val_acc'] == pytest.approx(val.accuracy)
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['val_accuracy'] == result.val_accuracy
    assert metrics['num_val'] == len(val_ds) == 20
    header = (out / 'history.csv').read_text().splitlines()[0].split(',')
    assert 'val_acc' in header and 'test_acc' in header
    # Resuming needs the same validation split.
    with pytest.raises(ValueError, match='num_val'):
        train(tiny_model(train_ds.layout), train_ds, test_ds, quick(epochs=5),
              val_dataset=val_ds[:10], out_dir=str(out))
    with pytest.raises(ValueError, match='non-empty validation split'):
        train(tiny_model(train_ds.layout), train_ds, test_ds, quick(),
              val_dataset=val_ds[:0])


def test_evaluation_averages_the_person_orders(tmp_path):
    from torch_geometric.transforms import Compose

    from tcmp_pyg.datasets import SkeletonArrays, body_order_views
    from tcmp_pyg.transforms import JointToMotion, ReverseBodies
    rng = np.random.default_rng(0)
    arrays = rng.normal(size=(24, 3, 8, 15, 2)).astype(np.float32) + 1.0
    labels = np.arange(24) % NUM_CLASSES
    test_ds = SkeletonArrays(arrays, labels, 'sbu', num_frames=8,
                             transform=Compose([CenterJoint('sbu'),
                                                JointToMotion(cat=True)]))
    views = body_order_views(test_ds)
    assert len(views) == 2 and views[0] is test_ds and len(views[1]) == 24
    # The swap comes before the split's own transform (the centring on body 0).
    plain = copy.copy(test_ds)
    plain.transform = None
    expected = test_ds.transform(ReverseBodies('sbu')(plain[3]))
    assert torch.equal(views[1][3].x, expected.x)
    assert not torch.equal(views[1][3].x, views[0][3].x)
    torch.manual_seed(0)
    model = STGCN(IN_CHANNELS, NUM_CLASSES, 'sbu', channels=(8, 8)).eval()
    loaders = [DataLoader(v, batch_size=7) for v in views]
    averaged = evaluate(model, loaders)
    with torch.no_grad():
        probs = [torch.cat([model(b).softmax(-1) for b in loader])
                 for loader in loaders]
    mean = (probs[0] + probs[1]) / 2
    y = torch.cat([b.y for b in loaders[0]])
    assert averaged.correct == int((mean.argmax(-1) == y).sum())
    assert averaged.loss == pytest.approx(float(F.nll_loss(mean.log(), y)), rel=1e-5)
    # One view in a list is the plain evaluation.
    assert evaluate(model, loaders[:1]) == evaluate(model, loaders[0])
    # train() takes the views as its evaluation split.
    result = train(model.train(), test_ds, views, quick(epochs=1))
    assert result.test_accuracy == evaluate(model, loaders).accuracy
    with pytest.raises(ValueError, match='same length'):
        train(model, test_ds, [test_ds, test_ds[:3]], quick(epochs=1))
    with pytest.raises(ValueError, match='same sequences'):
        evaluate(model, [loaders[0], DataLoader(test_ds[:3])])
    # One body: a single view.
    _, one_test = dataset_splits('synthetic', str(tmp_path), num_samples=30,
                                 layout='kinect_v1')
    assert body_order_views(one_test) == [one_test]


def test_progress_is_one_line_per_epoch_outside_a_terminal(splits, capsys):
    train_ds, test_ds = splits
    train(tiny_model(train_ds.layout), train_ds, test_ds,
          quick(epochs=2, progress=True))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2, err  # no bar frames, one summary per epoch
    assert lines[0].startswith('epoch 1/2, loss ') and 'test_acc' in lines[0]
    assert '\r' not in err
