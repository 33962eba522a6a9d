"""Choose a dense recipe on validation, then report it on the test folds.

Every candidate recipe (data options, model, optimiser) is trained on the
training folds minus a stratified validation share (``--val-fraction``) for
each (fold, seed); the *validation* accuracy of the last epoch ranks the
recipes. ``--final`` trains the named recipes on the whole training folds and
reports the last-epoch *test* accuracy over (fold, seed), with a 95 % t
interval. Results are appended to a CSV (one row per run), so an interrupted
run resumes where it stopped. ``--dataset utkinect`` does the same on the
cross-subject split of UTKinect (no folds: one row per seed).

    python benchmarks/dense_recipes.py --root datasets/sbu --out recipes.csv \\
        --recipes sahbi sahbi-rot-swap --folds 1 2 3 4 5 --seeds 0 1
    python benchmarks/dense_recipes.py --root datasets/sbu --out final.csv \\
        --recipes sahbi --folds 1 2 3 4 5 --seeds 0 1 2 --final

Ends with ``RESULT recipe=mean ...`` (validation accuracy, or test accuracy
with ``--final``).
"""
from __future__ import annotations

import argparse
import csv
import os.path as osp
import time
from multiprocessing import get_context
from typing import Any, Dict, List, Tuple

# Each recipe: dataset_splits options, a model (a preset name or
# TrajectoryGCN arguments) and TrainConfig settings.
ADAM = dict(optimizer='adamw', lr=1e-3, weight_decay=1e-4, warmup=5.0)
SAHBI = dict(cls='TrajectoryGCN', channels=(8, 8, 8), heads=4,
             hidden_channels=64, dropout=0.5)
# The augmentation of the later rounds, and their <= 50,000-parameter model.
AUGMENT = dict(rotation=10.0, swap_bodies=True, crop=0.7)
H24 = {**SAHBI, 'temporal_channels': 16, 'hidden_channels': 24}
RECIPES: Dict[str, Dict[str, Any]] = {
    # The TCMP papers' family as described: no augmentation, Adam.
    'sahbi': dict(data=dict(augment=False), model=SAHBI,
                  train=dict(epochs=100, **ADAM)),
    'sahbi-norm': dict(data=dict(augment=False, units='normalized'),
                       model=SAHBI, train=dict(epochs=100, **ADAM)),
    'sahbi-rot': dict(data=dict(rotation=10.0), model=SAHBI,
                      train=dict(epochs=100, **ADAM)),
    'sahbi-swap': dict(data=dict(augment=True, rotation=0.0, swap_bodies=True),
                       model=SAHBI, train=dict(epochs=100, **ADAM)),
    'sahbi-rot-swap': dict(data=dict(rotation=10.0, swap_bodies=True),
                           model=SAHBI, train=dict(epochs=100, **ADAM)),
    'sahbi-nomotion': dict(data=dict(augment=False, motion=False), model=SAHBI,
                           train=dict(epochs=100, **ADAM)),
    'sahbi-300': dict(data=dict(augment=False), model=SAHBI,
                      train=dict(epochs=300, **ADAM)),
    'sahbi-1block': dict(data=dict(augment=False),
                         model={**SAHBI, 'channels': (8,)},
                         train=dict(epochs=100, **ADAM)),
    'sahbi-wide': dict(data=dict(augment=False),
                       model={**SAHBI, 'channels': (16, 16, 16),
                              'hidden_channels': 128},
                       train=dict(epochs=100, **ADAM)),
    'sahbi-mean': dict(data=dict(augment=False), model={**SAHBI, 'pool': 'mean'},
                       train=dict(epochs=100, **ADAM)),
    'sahbi-crop': dict(data=dict(augment=True, rotation=0.0, crop=0.7),
                       model=SAHBI, train=dict(epochs=100, **ADAM)),
    'sahbi-all': dict(data=dict(rotation=10.0, swap_bodies=True, crop=0.7),
                      model=SAHBI, train=dict(epochs=200, **ADAM)),
    'sahbi-all-mean': dict(data=dict(rotation=10.0, swap_bodies=True, crop=0.7),
                           model={**SAHBI, 'pool': 'mean', 'channels': (16, 16, 16)},
                           train=dict(epochs=200, **ADAM)),
    'sahbi-wd': dict(data=dict(augment=False), model=SAHBI,
                     train=dict(epochs=100, **{**ADAM, 'weight_decay': 0.05})),
    'sahbi-tcn': dict(data=dict(rotation=10.0, swap_bodies=True, crop=0.7),
                      model={**SAHBI, 'temporal_channels': 16},
                      train=dict(epochs=200, **ADAM)),
    'sahbi-tcn-noaug': dict(data=dict(augment=False),
                            model={**SAHBI, 'temporal_channels': 16},
                            train=dict(epochs=100, **ADAM)),
    'sahbi-tcn-mean': dict(data=dict(rotation=10.0, swap_bodies=True, crop=0.7),
                           model={**SAHBI, 'temporal_channels': 16, 'pool': 'mean',
                                  'channels': (16, 16, 16)},
                           train=dict(epochs=200, **ADAM)),
    'sahbi-tcn-wide': dict(data=dict(rotation=10.0, swap_bodies=True, crop=0.7),
                           model={**SAHBI, 'temporal_channels': 32,
                                  'channels': (16, 16, 16)},
                           train=dict(epochs=200, **ADAM)),
    # <= 50,000 parameters: a narrower head over the nodes.
    'sahbi-tcn-h24': dict(data=AUGMENT, model=H24, train=dict(epochs=200, **ADAM)),
    'sahbi-tcn-h24-300': dict(data=AUGMENT, model=H24,
                              train=dict(epochs=300, **ADAM)),
    'sahbi-tcn-h24-bone': dict(data={**AUGMENT, 'bone': True}, model=H24,
                               train=dict(epochs=200, **ADAM)),
    # Chosen: the sahbi-gcn preset with its recipe (tcmp_pyg.recipes), which
    # evaluates over both person orders (the *_orders columns).
    'sahbi-tcn-h24-bone-300': dict(data={**AUGMENT, 'bone': True}, model=H24,
                                   train=dict(epochs=300, **ADAM)),
    'sahbi-tcn-narrow': dict(data=dict(rotation=10.0, swap_bodies=True, crop=0.7),
                             model={**SAHBI, 'temporal_channels': 16,
                                    'channels': (8, 8, 4), 'hidden_channels': 48},
                             train=dict(epochs=200, **ADAM)),
    'attention-gcn': dict(data=dict(swap_bodies=True),
                          model=dict(cls='preset', name='attention-gcn'),
                          train=dict(epochs=100, lr=0.01)),
    'stgcn-compact': dict(data=dict(swap_bodies=True),
                          model=dict(cls='preset', name='stgcn-compact'),
                          train=dict(epochs=100)),
}
# *_orders: the same trained model with its predictions averaged over the two
# person orders (body_order_views); a paired measure of test-time averaging.
COLUMNS = ('dataset', 'recipe', 'fold', 'seed', 'final', 'val_accuracy',
           'test_accuracy', 'val_accuracy_orders', 'test_accuracy_orders',
           'params', 'train_time_s')


def run_one(job: Tuple[str, str, int, int, bool, str, float]) -> Dict[str, Any]:
    import torch

    from torch_geometric.loader import DataLoader

    from tcmp_pyg.datasets import body_order_views, dataset_splits
    from tcmp_pyg.nn import TrajectoryGCN, build_model
    from tcmp_pyg.train import TrainConfig, evaluate, seed_everything, train

    dataset, name, fold, seed, final, root, val_fraction = job
    torch.set_num_threads(1)
    recipe = RECIPES[name]
    data = dict(recipe['data'])
    if dataset == 'sbu':
        data['fold'] = fold
    else:  # UTKinect: the cross-subject protocol, no folds
        data.pop('units', None)
    if final:
        train_ds, test_ds = dataset_splits(dataset, root, **data)
        val_ds = None
    else:
        train_ds, val_ds, test_ds = dataset_splits(
            dataset, root, val_fraction=val_fraction, seed=seed, **data)
    num_classes = len(train_ds.class_names)
    sample = train_ds[0]
    seed_everything(seed)
    spec = dict(recipe['model'])
    cls = spec.pop('cls')
    if cls == 'preset':
        model = build_model(spec['name'], sample.x.size(-1), num_classes,
                            train_ds.layout,
                            num_frames=sample.x.size(1))
    else:
        model = TrajectoryGCN(sample.x.size(-1), num_classes, train_ds.layout,
                              num_frames=sample.x.size(1), **spec)
    config = TrainConfig(seed=seed, progress=False, **recipe['train'])
    result = train(model, train_ds, test_ds, config, val_dataset=val_ds)

    def orders(split):
        views = [DataLoader(v, batch_size=64) for v in body_order_views(split)]
        return f'{evaluate(model, views).accuracy:.4f}'

    return dict(dataset=dataset, recipe=name, fold=fold, seed=seed, final=int(final),
                val_accuracy='' if val_ds is None else f'{result.val_accuracy:.4f}',
                test_accuracy=f'{result.test_accuracy:.4f}',
                val_accuracy_orders='' if val_ds is None else orders(val_ds),
                test_accuracy_orders=orders(test_ds),
                params=sum(p.numel() for p in model.parameters()),
                train_time_s=f'{result.train_time_s:.1f}')


def mean_interval(values: List[float]) -> Tuple[float, float]:
    """Mean and half-width of the 95 % t interval."""
    from scipy import stats
    import numpy as np
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float('nan')
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='sbu', choices=('sbu', 'utkinect'),
                        help='sbu (5 folds) or utkinect (cross-subject)')
    parser.add_argument('--root', required=True, help='dataset root holding raw/')
    parser.add_argument('--out', required=True, help='results CSV (appended)')
    parser.add_argument('--recipes', nargs='+', default=list(RECIPES),
                        choices=list(RECIPES))
    parser.add_argument('--folds', nargs='+', type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument('--final', action='store_true',
                        help='train on the whole training folds, report test')
    parser.add_argument('--jobs', type=int, default=2)
    args = parser.parse_args()

    from tcmp_pyg.datasets import dataset_splits
    if args.dataset == 'sbu':
        for units in ('metres', 'normalized'):  # processed before the workers
            dataset_splits('sbu', args.root, fold=1, units=units)
    else:
        dataset_splits(args.dataset, args.root)
        args.folds = [0]  # one split

    done = set()
    if osp.exists(args.out):
        with open(args.out) as f:
            done = {(r['dataset'], r['recipe'], int(r['fold']), int(r['seed']),
                     int(r['final'])) for r in csv.DictReader(f)}
    jobs = [(args.dataset, r, f, s, args.final, args.root, args.val_fraction)
            for r in args.recipes for f in args.folds for s in args.seeds
            if (args.dataset, r, f, s, int(args.final)) not in done]
    new = not osp.exists(args.out)
    start = time.perf_counter()
    with open(args.out, 'a', newline='') as f, \
            get_context('spawn').Pool(args.jobs) as pool:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for row in pool.imap_unordered(run_one, jobs):
            writer.writerow(row)
            f.flush()
            print(row, flush=True)
    print(f'{len(jobs)} runs in {time.perf_counter() - start:.0f} s')

    with open(args.out) as f:
        rows = [r for r in csv.DictReader(f) if int(r['final']) == int(args.final)
                and r['recipe'] in args.recipes and r['dataset'] == args.dataset]
    key = 'test_accuracy' if args.final else 'val_accuracy'
    print(f"| recipe | n | {key} (mean ± 95 % interval) | averaged over the "
          f"person orders | paired difference | params | s/run |")
    print('| --- | --- | --- | --- | --- | --- | --- |')
    summary = []
    for name in args.recipes:
        mine = [r for r in rows if r['recipe'] == name]
        if not mine:
            continue
        m, h = mean_interval([float(r[key]) for r in mine])
        paired = [r for r in mine if r.get(key + '_orders')]
        both = '— | —'
        if paired:
            mo, ho = mean_interval([float(r[key + '_orders']) for r in paired])
            md, hd = mean_interval([float(r[key + '_orders']) - float(r[key])
                                    for r in paired])
            both = (f'{100 * mo:.1f} ± {100 * ho:.1f} % (n = {len(paired)}) | '
                    f'{100 * md:+.1f} ± {100 * hd:.1f}')
            summary.append(f'{name}_orders={mo:.4f}')
        t = sum(float(r['train_time_s']) for r in mine) / len(mine)
        print(f"| {name} | {len(mine)} | {100 * m:.1f} ± {100 * h:.1f} % | "
              f"{both} | {mine[0]['params']} | {t:.0f} |")
        summary.append(f'{name}={m:.4f}')
    print('RESULT ' + ' '.join(summary))


if __name__ == '__main__':
    main()
