import json

import pytest

from tcmp_pyg.cli import main
from tcmp_pyg.datasets import dataset_splits
from tcmp_pyg.nn.models import MODEL_NAMES
from tcmp_pyg.recipes import RECIPES, recipe_for
from tcmp_pyg.transforms import RandomBodySwap, RandomTemporalCrop


def test_every_preset_has_a_recipe():
    assert set(RECIPES) == set(MODEL_NAMES)
    with pytest.raises(ValueError, match="No recipe for model 'gpt'"):
        recipe_for('gpt')


def test_recipe_builds_the_config_and_the_augmentation(tmp_path):
    recipe = recipe_for('sahbi-gcn')
    config = recipe.train_config(seed=3, progress=False)
    assert (config.epochs, config.optimizer, config.lr) == (
        recipe.epochs, recipe.optimizer, recipe.lr)
    assert config.seed == 3 and not config.progress
    train_ds, _ = dataset_splits('synthetic', str(tmp_path), num_samples=20,
                                 num_frames=8, **recipe.data_options())
    kinds = {type(t) for t in train_ds.transform.transforms}
    assert RandomBodySwap in kinds  # the synthetic layout holds two bodies
    assert (RandomTemporalCrop in kinds) == (recipe.crop is not None)
    # joints, their motion, and with bones the bones and their motion
    assert train_ds[0].x.size(-1) == (12 if recipe.bone else 6)
    # Evaluated over both person orders, or as it is.
    _, test_ds = dataset_splits('synthetic', str(tmp_path), num_samples=20,
                                num_frames=8, **recipe.data_options())
    views = recipe.evaluation_split(test_ds)
    assert recipe.average_body_orders and len(views) == 2 and views[0] is test_ds
    assert recipe_for('stgcn-compact').evaluation_split(test_ds) is test_ds


def test_train_fills_left_out_options_from_the_recipe(tmp_path, capsys):
    recipe = recipe_for('sahbi-gcn')
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'd'),
                 '--num-samples', '40', '--num-frames', '8', '--model',
                 'sahbi-gcn', '--epochs', '1', '--out', str(out),
                 '--threads', '1', '--quiet']) == 0
    args = json.loads((out / 'metrics.json').read_text())['args']
    assert args['epochs'] == 1  # given
    for name in ('optimizer', 'lr', 'weight_decay', 'warmup', 'rotation',
                 'swap_bodies', 'crop', 'bone', 'average_body_orders'):
        assert args[name] == getattr(recipe, name), name
    assert recipe.average_body_orders
    out = tmp_path / 'run2'
    assert main(['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'd'),
                 '--num-samples', '40', '--num-frames', '8', '--model',
                 'sahbi-gcn', '--epochs', '1', '--no-swap-bodies', '--no-bone',
                 '--no-average-body-orders', '--lr', '0.01',
                 '--optimizer', 'sgd', '--out', str(out), '--threads', '1',
                 '--quiet']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['swap_bodies'] is False and metrics['args']['lr'] == 0.01
    assert metrics['config']['optimizer'] == 'sgd'
    assert metrics['bone'] is False and metrics['average_body_orders'] is False
    capsys.readouterr()
