"""The ``tcmp-pyg`` command line: one subcommand per task."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import List, Optional


def _add_datasets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('datasets', help='list the available datasets and their stats')
    p.set_defaults(func=_cmd_datasets)


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in rows)


def _cmd_datasets(args: argparse.Namespace) -> int:
    # Imported here: the datasets pull in torch, which the parser does not need.
    from tcmp_pyg.datasets import DATASETS

    rows = [['name', 'class', 'classes', 'sequences', 'bodies x joints',
             'layout', 'protocols']]
    raw = []
    for name, cls in DATASETS.items():
        layout = cls.layout
        rows.append([name, cls.__name__, str(cls.total_classes),
                     cls.num_sequences,
                     f'{layout.num_bodies} x {layout.num_joints}', layout.name,
                     cls.protocols])
        raw.append(f'  {name}: {cls.raw_layout}\n      {cls.obtain}')
    print(_table(rows))
    print('\nRaw data (root defaults to datasets/<name>; nothing is '
          'downloaded automatically):')
    print('\n'.join(raw))
    return 0


# Dataset-specific options of `inspect`, by dataset short name; every dataset
# also takes --split and --num-frames.
_INSPECT_OPTIONS = {
    'sbu': ('fold',),
    'utkinect': ('protocol', 'test_subject', 'labels'),
    'msr': (),
    'fpha': (),
    'ntu': ('variant', 'benchmark'),
    'synthetic': (),
}


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('inspect', help='load a dataset and print a summary')
    p.add_argument('--dataset', required=True,
                   help='short name, see `tcmp-pyg datasets`')
    p.add_argument('--root', default=None,
                   help='dataset root holding raw/ (default: datasets/<name>)')
    p.add_argument('--split', default='train', choices=('train', 'test'),
                   help='split whose first sample is shown (default: train)')
    p.add_argument('--num-frames', type=int, default=None,
                   help='frames per sequence (default: the dataset default)')
    p.add_argument('--fold', type=int, default=None, help='sbu: fold 1..5')
    p.add_argument('--protocol', default=None,
                   help="utkinect: 'cross_subject' or 'loso'")
    p.add_argument('--test-subject', type=int, default=None,
                   help='utkinect: held-out subject of the loso protocol')
    p.add_argument('--labels', default=None,
                   help="utkinect: 'original' or 'modified' label file")
    p.add_argument('--variant', default=None, help="ntu: '60' or '120'")
    p.add_argument('--benchmark', default=None,
                   help="ntu: 'xsub', 'xview' (60) or 'xset' (120)")
    p.set_defaults(func=_cmd_inspect)


def _counts(values: List[int]) -> str:
    return ', '.join(f'{k}: {values.count(k)}' for k in sorted(set(values)))


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tcmp_pyg.datasets import DATASETS

    name = args.dataset
    if name not in DATASETS:
        print(f"error: unknown dataset '{name}' (expected one of "
              f"{sorted(DATASETS)})", file=sys.stderr)
        return 2
    options = _INSPECT_OPTIONS.get(name, ())
    given = {k: v for k, v in vars(args).items()
             if k in ('fold', 'protocol', 'test_subject', 'labels', 'variant',
                      'benchmark') and v is not None}
    unused = sorted(set(given) - set(options))
    if unused:
        flags = ', '.join('--' + k.replace('_', '-') for k in unused)
        print(f"error: {flags} does not apply to dataset '{name}'",
              file=sys.stderr)
        return 2
    if args.num_frames is not None:
        given['num_frames'] = args.num_frames
    root = args.root if args.root is not None else f'datasets/{name}'
    cls = DATASETS[name]
    try:
        splits = {split: cls(root, split=split, **given)
                  for split in ('train', 'test')}
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1

    shown = splits[args.split]
    y = shown.all_meta('y').tolist()
    length = shown.all_meta('length').tolist()
    layout = shown.layout
    setting = ', '.join(f'{k}={v}' for k, v in given.items())
    print(f'{type(shown).__name__} ({name}) at {root}'
          + (f' [{setting}]' if setting else ''))
    bodies = f"{layout.num_bodies} {'body' if layout.num_bodies == 1 else 'bodies'}"
    print(f'{len(y)} sequences, {len(shown.class_names)} classes, layout '
          f"'{layout.name}' ({bodies} x {layout.num_joints} joints)")
    print(f'splits: train {len(splits["train"])}, test {len(splits["test"])}')
    for key, label in (('fold', 'sequences per fold'),
                       ('subject', 'sequences per subject')):
        if shown.has_meta(key):
            print(f'{label}: {_counts(shown.all_meta(key).tolist())}')
    print(f'frames (original length): min {min(length)}, median '
          f'{statistics.median(length):g}, max {max(length)}')
    if len(shown):
        x = shown[0].x
        print(f'x ({args.split}[0]): {list(x.shape)} (nodes = bodies x joints, '
              f'frames, channels)')
    print('sequences per class:')
    width = max(len(n) for n in shown.class_names)
    for k, cname in enumerate(shown.class_names):
        print(f'  {k:3d}  {cname.ljust(width)}  {y.count(k)}')
    return 0


# -- train / evaluate / connectivity ----------------------------------------

# Dataset options `train` passes on (argument names); dataset_splits checks
# that each applies to the chosen dataset.
_TRAIN_DATASET_OPTIONS = ('fold', 'num_frames', 'protocol', 'test_subject',
                          'labels', 'variant', 'benchmark', 'num_samples')


def _add_train(sub: argparse._SubParsersAction) -> None:
    # Imported here, as the other commands do: only what builds the parser.
    from tcmp_pyg.nn.models import MODEL_NAMES
    from tcmp_pyg.pruning import METHOD_NAMES
    from tcmp_pyg.train import OPTIMIZERS, SCHEDULES, TrainConfig

    p = sub.add_parser('train', help='train a model (optionally pruning it) '
                       'and write a run folder; the same command resumes it')
    p.add_argument('--out', required=True,
                   help='run folder: model.pt, metrics.json, history.json/.csv')
    data = p.add_argument_group('data')
    data.add_argument('--dataset', required=True,
                      help='short name, see `tcmp-pyg datasets`')
    data.add_argument('--root', default=None,
                      help='dataset root holding raw/ (default: datasets/<name>)')
    data.add_argument('--fold', type=int, default=None, help='sbu: fold 1..5')
    data.add_argument('--num-frames', type=int, default=None,
                      help='frames per sequence (default: the dataset default)')
    data.add_argument('--protocol', default=None,
                      help="utkinect: 'cross_subject' or 'loso'")
    data.add_argument('--test-subject', type=int, default=None,
                      help='utkinect: held-out subject of the loso protocol')
    data.add_argument('--labels', default=None,
                      help="utkinect: 'original' or 'modified' label file")
    data.add_argument('--variant', default=None, help="ntu: '60' or '120'")
    data.add_argument('--benchmark', default=None,
                      help="ntu: 'xsub', 'xview' (60) or 'xset' (120)")
    data.add_argument('--num-samples', type=int, default=None,
                      help='synthetic: sequences over both splits')
    data.add_argument('--rotation', type=float, default=None,
                      help='augmentation: maximum rotation about each axis in '
                           'degrees (default: 10)')
    data.add_argument('--no-augment', action='store_true',
                      help='train without augmentation')
    data.add_argument('--no-motion', action='store_true',
                      help='leave out the motion (velocity) channels')
    data.add_argument('--bone', action='store_true',
                      help='add the bone channels')
    opt = p.add_argument_group('model and optimisation')
    opt.add_argument('--model', default='stgcn-compact', choices=MODEL_NAMES,
                     help='model preset (default: stgcn-compact)')
    opt.add_argument('--epochs', type=int, default=TrainConfig.epochs,
                     help=f'(default: {TrainConfig.epochs})')
    opt.add_argument('--lr', type=float, default=TrainConfig.lr,
                     help=f'peak learning rate (default: {TrainConfig.lr})')
    opt.add_argument('--batch-size', type=int, default=TrainConfig.batch_size,
                     help=f'(default: {TrainConfig.batch_size})')
    opt.add_argument('--optimizer', default=TrainConfig.optimizer,
                     choices=OPTIMIZERS, help='SGD with Nesterov momentum or '
                     f'AdamW (default: {TrainConfig.optimizer})')
    opt.add_argument('--schedule', default=TrainConfig.schedule,
                     choices=SCHEDULES,
                     help=f'learning-rate schedule (default: {TrainConfig.schedule})')
    opt.add_argument('--warmup', type=float, default=TrainConfig.warmup,
                     help=f'epochs of linear warm-up (default: {TrainConfig.warmup:g})')
    opt.add_argument('--weight-decay', type=float,
                     default=TrainConfig.weight_decay,
                     help=f'(default: {TrainConfig.weight_decay:g})')
    opt.add_argument('--seed', type=int, default=TrainConfig.seed,
                     help=f'(default: {TrainConfig.seed})')
    opt.add_argument('--device', default=TrainConfig.device,
                     help="'cpu', 'cuda', 'cuda:1', ... (default: cpu)")
    opt.add_argument('--threads', type=int, default=None,
                     help="torch CPU threads (default: $TCMP_PYG_THREADS, "
                          "else torch's default)")
    prune = p.add_argument_group('pruning')
    prune.add_argument('--prune', default=None, choices=METHOD_NAMES,
                       help='pruning method (default: none, a dense model)')
    prune.add_argument('--amount', type=float, default=0.99,
                       help='fraction of prunable weights removed (default: 0.99)')
    prune.add_argument('--tcmp-mode', default='hard', choices=('hard', 'relaxed'),
                       help='tcmp: how gradients pass the selection (default: hard)')
    prune.add_argument('--prune-start', type=float, default=0.1,
                       help='fraction of training before pruning starts '
                            '(default: 0.1)')
    prune.add_argument('--prune-end', type=float, default=0.6,
                       help='fraction of training at which the target is '
                            'reached (default: 0.6)')
    prune.add_argument('--update-every', type=int, default=1,
                       help='steps between mask updates (default: 1)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    p.set_defaults(func=_cmd_train)


def _set_threads(threads: Optional[int]) -> None:
    import torch

    if threads is None and os.environ.get('TCMP_PYG_THREADS'):
        threads = int(os.environ['TCMP_PYG_THREADS'])
    if threads is not None:
        torch.set_num_threads(threads)


def _cmd_train(args: argparse.Namespace) -> int:
    from tcmp_pyg.checkpoint import CheckpointError
    from tcmp_pyg.datasets.splits import DEFAULT_ROTATION, dataset_splits
    from tcmp_pyg.nn import build_model
    from tcmp_pyg.pruning import make_pruner
    from tcmp_pyg.train import TrainConfig, seed_everything, train

    _set_threads(args.threads)
    options = {k: getattr(args, k) for k in _TRAIN_DATASET_OPTIONS
               if getattr(args, k) is not None}
    root = args.root if args.root is not None else f'datasets/{args.dataset}'
    rotation = DEFAULT_ROTATION if args.rotation is None else args.rotation
    try:
        streams = dict(motion=not args.no_motion, bone=args.bone)
        train_ds, test_ds = dataset_splits(args.dataset, root,
                                           augment=not args.no_augment,
                                           rotation=rotation, **streams,
                                           **options)
        sample = train_ds[0]  # sets the input shape of the model
        # Seeded before the model is built, so its initialisation is too.
        seed_everything(args.seed)
        model = build_model(args.model, sample.x.size(-1),
                            len(train_ds.class_names), train_ds.layout,
                            num_frames=sample.x.size(1))
        pruner = None
        if args.prune is not None:
            pruner = make_pruner(args.prune, model, args.amount,
                                 tcmp_mode=args.tcmp_mode, start=args.prune_start,
                                 end=args.prune_end, update_every=args.update_every,
                                 seed=args.seed)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, optimizer=args.optimizer,
                             weight_decay=args.weight_decay,
                             schedule=args.schedule, warmup=args.warmup,
                             seed=args.seed, device=args.device,
                             progress=not args.quiet)
        # Everything `evaluate` needs to rebuild the test split, and the run's
        # full argument list.
        meta = dict(dataset=args.dataset, root=root, options=options,
                    center=True, **streams, augment=not args.no_augment,
                    rotation=rotation, class_names=list(train_ds.class_names),
                    model_name=args.model,
                    args={k: v for k, v in vars(args).items() if k != 'func'})
        result = train(model, train_ds, test_ds, config, pruner=pruner,
                       out_dir=args.out, meta=meta)
    except (FileNotFoundError, ValueError, TypeError, FloatingPointError,
            CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if result.resumed_from == result.epochs:
        print(f'{args.out} holds a finished run ({result.epochs} epochs); not '
              f'trained again')
    elif result.resumed_from:
        print(f'resumed {args.out} from epoch {result.resumed_from}')
    print(f'test accuracy: {result.test_accuracy:.4f} (last epoch of '
          f'{result.epochs}; {result.train_time_s:.1f} s training, '
          f'{result.samples_per_s:.1f} sequences/s)')
    if result.connectivity is not None:
        c = result.connectivity
        print(f"kept {c['kept']} of {c['weights']} weights, {c['live']} live, "
              f"{c['dead']} dead")
    print(f'run folder: {args.out}')
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('evaluate', help="recompute a checkpoint's test accuracy")
    p.add_argument('--checkpoint', required=True, help='a run\'s model.pt')
    p.add_argument('--root', default=None,
                   help='dataset root (default: the one recorded at training)')
    p.add_argument('--device', default='cpu', help='(default: cpu)')
    p.add_argument('--batch-size', type=int, default=64, help='(default: 64)')
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from torch_geometric.loader import DataLoader

    from tcmp_pyg.checkpoint import (CheckpointError, model_from_checkpoint,
                                     read_checkpoint)
    from tcmp_pyg.datasets.splits import dataset_splits
    from tcmp_pyg.train import evaluate

    try:
        checkpoint = read_checkpoint(args.checkpoint)
        meta = checkpoint['meta']
        if 'dataset' not in meta:
            raise ValueError(f"'{args.checkpoint}' records no dataset (it was "
                             f"not written by `tcmp-pyg train`)")
        model = model_from_checkpoint(checkpoint, args.checkpoint).to(args.device)
        root = args.root if args.root is not None else meta['root']
        _, test_ds = dataset_splits(meta['dataset'], root, augment=False,
                                    center=meta['center'], motion=meta['motion'],
                                    bone=meta['bone'], **meta['options'])
        result = evaluate(model, DataLoader(test_ds, batch_size=args.batch_size),
                          args.device)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f"{meta['dataset']} test split at {root}, {meta['options']}")
    print(f'test accuracy: {result.accuracy:.4f} ({result.correct}/'
          f'{result.total} sequences)')
    return 0


def _add_connectivity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('connectivity', help="print a checkpoint's connectivity "
                       "report (kept, live and dead weights per layer)")
    p.add_argument('--checkpoint', required=True, help='a run\'s model.pt')
    p.set_defaults(func=_cmd_connectivity)


def _cmd_connectivity(args: argparse.Namespace) -> int:
    from tcmp_pyg.checkpoint import CheckpointError, load_model
    from tcmp_pyg.pruning import connectivity

    try:
        model = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{model} from {args.checkpoint}')
    print(connectivity(model))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('demo', help='run the main job on the synthetic dataset')
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    raise NotImplementedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='tcmp-pyg', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    for add in (_add_datasets, _add_inspect, _add_train, _add_evaluate,
                _add_connectivity, _add_demo):
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
