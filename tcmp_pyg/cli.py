"""The ``tcmp-pyg`` command line: one subcommand per task."""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from tcmp_pyg import __version__


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
                          'labels', 'variant', 'benchmark', 'num_samples',
                          'units')


# `train` options that apply only with --prune: their defaults, and the
# methods each applies to (None: every method).
PRUNING_DEFAULTS: Dict[str, object] = dict(amount=0.99, tcmp_mode='hard',
                                           prune_start=0.1, prune_end=0.6,
                                           update_every=1, keep_dense=[])
_PRUNING_METHODS: Dict[str, Optional[Tuple[str, ...]]] = dict(
    amount=None, tcmp_mode=('tcmp',), prune_start=None, prune_end=None,
    update_every=None, keep_dense=None)
# Pruning options taking one or more values (nargs='+').
_PRUNING_LISTS = ('keep_dense',)
# Methods an option applying to "every method" (None above) does not fit.
_PRUNING_EXCEPT: Dict[str, Tuple[str, ...]] = {}

# TCMP's channel focus: the same budget on fewer, fuller channels.
PRUNING_DEFAULTS['tcmp_channel_focus'] = 0.0
_PRUNING_METHODS['tcmp_channel_focus'] = ('tcmp',)

# SynFlow prunes once at initialisation: no schedule, its own iterations.
PRUNING_DEFAULTS['synflow_iterations'] = 100
_PRUNING_METHODS['synflow_iterations'] = ('synflow',)
for _dest in ('prune_start', 'prune_end', 'update_every'):
    _PRUNING_EXCEPT[_dest] = _PRUNING_EXCEPT.get(_dest, ()) + ('synflow',)


def _channel_focus(text: str) -> float:
    """``--tcmp-channel-focus``: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0.0):
        raise argparse.ArgumentTypeError(f'expected a finite number >= 0 (got '
                                         f'{text!r})')
    return value


def _flag(dest: str) -> str:
    return '--' + dest.replace('_', '-')


def _applies(dest: str, method: Optional[str]) -> bool:
    methods = _PRUNING_METHODS[dest]
    return (method is not None and (methods is None or method in methods)
            and method not in _PRUNING_EXCEPT.get(dest, ()))


def pruning_option_problem(args: argparse.Namespace) -> Optional[str]:
    """Why the pruning options of parsed ``train`` arguments do not fit its
    ``--prune`` (None if they do); given options are those not None."""
    for dest in PRUNING_DEFAULTS:
        if getattr(args, dest) is None or _applies(dest, args.prune):
            continue
        if args.prune is None:
            return (f'{_flag(dest)} applies only with --prune (without it a '
                    f'dense model is trained); add e.g. --prune tcmp or leave '
                    f'{_flag(dest)} out')
        if args.prune in _PRUNING_EXCEPT.get(dest, ()):
            return (f'{_flag(dest)} does not apply to --prune {args.prune}; '
                    f'leave it out')
        return (f'{_flag(dest)} applies only with --prune '
                f"{' or '.join(_PRUNING_METHODS[dest])} (got --prune "
                f'{args.prune}); leave it out')
    return None


def train_args_for(method: Optional[str], train_args: Sequence[str],
                   drop: Sequence[str] = ()) -> List[str]:
    """``train_args`` without the pruning options that do not apply to
    ``method`` (None: a dense run), so that one list of extra ``train``
    arguments fits every run of a sweep.

    Args:
        method (str, optional): The run's ``--prune`` method.
        train_args (Sequence[str]): ``tcmp-pyg train`` arguments; the pruning
            options are recognised as ``--flag VALUE`` or ``--flag=VALUE``.
        drop (Sequence[str], optional): Further options (``'--flag'``, taking
            a value) to leave out, e.g. those the caller sets itself.

    Returns:
        The arguments that apply, in their order.
    """
    drop = {_flag(dest) for dest in PRUNING_DEFAULTS
            if not _applies(dest, method)} | set(drop)
    lists = {_flag(dest) for dest in _PRUNING_LISTS}
    kept: List[str] = []
    skip_value = skip_values = False
    for arg in train_args:
        if skip_values and not arg.startswith('-'):
            continue  # a further value of a dropped list option
        skip_values = False
        if skip_value:
            skip_value = False
        elif arg.split('=', 1)[0] in drop:
            skip_values = arg in lists
            skip_value = '=' not in arg and not skip_values
        else:
            kept.append(arg)
    return kept


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
    data.add_argument('--units', default=None, choices=('metres', 'normalized'),
                      help="sbu: coordinates in metres or as stored in the files "
                           "(default: metres)")
    data.add_argument('--val-fraction', type=float, default=None,
                      help='hold out this stratified share of the training split '
                           'for validation (seeded by --seed); its accuracy is '
                           'logged beside the test accuracy')
    data.add_argument('--rotation', type=float, default=None,
                      help='augmentation: maximum rotation about each axis in '
                           "degrees (default: the model's recipe, 10)")
    data.add_argument('--swap-bodies', action=argparse.BooleanOptionalAction,
                      default=None,
                      help='augmentation: random order of the persons of '
                           "multi-body layouts (SBU, NTU) (default: the model's "
                           'recipe, on)')
    data.add_argument('--crop', type=float, default=None,
                      help='augmentation: random temporal window of at least '
                           'this share of the frames, resampled (e.g. 0.7; '
                           "default: the model's recipe)")
    data.add_argument('--no-augment', action='store_true',
                      help='train without augmentation')
    data.add_argument('--average-body-orders',
                      action=argparse.BooleanOptionalAction, default=None,
                      help='evaluate (validation and test) by averaging the '
                           'predicted probabilities over both orders of the '
                           'persons of multi-body layouts (no effect on one-'
                           "body data) (default: the model's recipe)")
    data.add_argument('--no-motion', action='store_true',
                      help='leave out the motion (velocity) channels')
    data.add_argument('--bone', action=argparse.BooleanOptionalAction,
                      default=None,
                      help="add the bone channels (default: the model's recipe)")
    opt = p.add_argument_group('model and optimisation')
    opt.add_argument('--model', default='stgcn-compact', choices=MODEL_NAMES,
                     help='model preset (default: stgcn-compact); it brings '
                          'its recipe, the defaults of the options marked '
                          '"recipe": ' + _recipe_summary())
    opt.add_argument('--init-from', default=None, metavar='RUN/model.pt',
                     help='start from the weights and BatchNorm statistics of '
                          'a checkpoint of the same architecture (its masks '
                          'folded into the weights, then reset); with --prune '
                          'mp --prune-start 0 --prune-end 0 this is one-shot '
                          'magnitude pruning of a trained model followed by '
                          'fine-tuning')
    opt.add_argument('--width', type=float, default=1.0,
                     help='multiply every hidden channel count of the preset by '
                          'W (rounded, at least 1): a narrow dense rival of a '
                          'given size, see `tcmp-pyg width` (default: 1)')
    opt.add_argument('--epochs', type=int, default=None, help='(default: recipe)')
    opt.add_argument('--lr', type=float, default=None,
                     help='peak learning rate (default: recipe)')
    opt.add_argument('--batch-size', type=int, default=TrainConfig.batch_size,
                     help='sequences per step, over all processes '
                          f'(default: {TrainConfig.batch_size})')
    opt.add_argument('--optimizer', default=None, choices=OPTIMIZERS,
                     help='SGD with Nesterov momentum or AdamW (default: recipe)')
    opt.add_argument('--schedule', default=TrainConfig.schedule,
                     choices=SCHEDULES,
                     help=f'learning-rate schedule (default: {TrainConfig.schedule})')
    opt.add_argument('--warmup', type=float, default=None,
                     help='epochs of linear warm-up (default: recipe)')
    opt.add_argument('--weight-decay', type=float, default=None,
                     help='(default: recipe)')
    opt.add_argument('--label-smoothing', type=float,
                     default=TrainConfig.label_smoothing,
                     help='weight of the uniform target mixed into the training '
                          f'loss (default: {TrainConfig.label_smoothing:g})')
    opt.add_argument('--seed', type=int, default=TrainConfig.seed,
                     help=f'(default: {TrainConfig.seed})')
    opt.add_argument('--device', default=TrainConfig.device,
                     help="'cpu', 'cuda', 'cuda:1', ... (default: cpu)")
    opt.add_argument('--threads', type=int, default=None,
                     help="torch CPU threads (default: $TCMP_PYG_THREADS, "
                          "else torch's default)")
    opt.add_argument('--nproc', type=int, default=1,
                     help='train in N local processes with DistributedData'
                          'Parallel (one per GPU with --device cuda); '
                          '--batch-size is the global batch, split across '
                          'them. Under torchrun leave it out (default: 1)')
    prune = p.add_argument_group('pruning (the options after --prune need it)')
    prune.add_argument('--prune', default=None, choices=METHOD_NAMES,
                       help='pruning method (default: none, a dense model)')
    # Defaults of None tell a given option from an absent one; the values of
    # PRUNING_DEFAULTS are filled in once --prune is checked (see main).
    prune.add_argument('--amount', type=float, default=None,
                       help='fraction of prunable weights removed (default: '
                            f"{PRUNING_DEFAULTS['amount']})")
    prune.add_argument('--tcmp-mode', default=None, choices=('hard', 'relaxed'),
                       help='tcmp: how gradients pass the selection (default: '
                            f"{PRUNING_DEFAULTS['tcmp_mode']})")
    prune.add_argument('--tcmp-channel-focus', type=_channel_focus, default=None,
                       metavar='A',
                       help='tcmp: rank each layer\'s entries by |w| times '
                            '(importance of its input and output channels)^A, '
                            'spending the budget on fewer, fuller channels '
                            '(a smaller compacted model); 0 ranks by |w| '
                            f"(default: {PRUNING_DEFAULTS['tcmp_channel_focus']})")
    prune.add_argument('--prune-start', type=float, default=None,
                       help='fraction of training before pruning starts '
                            f"(default: {PRUNING_DEFAULTS['prune_start']})")
    prune.add_argument('--prune-end', type=float, default=None,
                       help='fraction of training at which the target is '
                            f"reached (default: {PRUNING_DEFAULTS['prune_end']})")
    prune.add_argument('--update-every', type=int, default=None,
                       help='steps between mask updates (default: '
                            f"{PRUNING_DEFAULTS['update_every']})")
    prune.add_argument('--keep-dense', nargs='+', default=None, metavar='LAYER',
                       help='prunable layers that keep every weight, counted '
                            "inside the budget (e.g. the classifier: 'fc' of "
                            "stgcn/stgcn-compact, 'fc2' of attention-gcn, "
                            "'classifier' of sahbi-gcn) (default: none)")
    prune.add_argument('--synflow-iterations', type=int, default=None,
                       help='synflow: pruning rounds at initialisation, the '
                            'kept fraction shrinking exponentially (default: '
                            f"{PRUNING_DEFAULTS['synflow_iterations']}); the "
                            'masks are then frozen, so --prune-start, '
                            '--prune-end and --update-every do not apply')
    p.add_argument('--tensorboard', action='store_true',
                   help='also write per-epoch scalars (losses, accuracies, lr, '
                        'kept/live/dead weights per layer) to OUT/tensorboard '
                        '(needs `pip install tensorboard`)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    p.set_defaults(func=_cmd_train_launch)


def _recipe_summary() -> str:
    from tcmp_pyg.recipes import RECIPES
    return '; '.join(
        f'{name}: {r.epochs} epochs, {r.optimizer} lr {r.lr:g}, weight decay '
        f'{r.weight_decay:g}, rotation {r.rotation:g}, '
        f"{'' if r.swap_bodies else 'no '}person swap"
        + (f', crop {r.crop:g}' if r.crop is not None else '')
        + (', bone channels' if r.bone else '')
        + (', evaluated over both person orders' if r.average_body_orders else '')
        for name, r in RECIPES.items())


def _apply_recipe(args: argparse.Namespace) -> None:
    """Fills the options left out with the model's recipe, in place, so that
    the run folder records the values used."""
    from tcmp_pyg.recipes import recipe_for

    recipe = recipe_for(args.model)
    for name in ('epochs', 'optimizer', 'lr', 'weight_decay', 'warmup',
                 'rotation', 'swap_bodies', 'crop', 'bone',
                 'average_body_orders'):
        if getattr(args, name) is None:
            setattr(args, name, getattr(recipe, name))


def _set_threads(threads: Optional[int]) -> None:
    import torch

    if threads is None and os.environ.get('TCMP_PYG_THREADS'):
        threads = int(os.environ['TCMP_PYG_THREADS'])
    if threads is not None:
        torch.set_num_threads(threads)


def _tensorboard_dir(args: argparse.Namespace) -> Optional[str]:
    """``OUT/tensorboard`` with ``--tensorboard`` (ImportError if tensorboard
    is not installed), else None."""
    from tcmp_pyg.train import summary_writer_class

    if not args.tensorboard:
        return None
    summary_writer_class()
    return os.path.join(args.out, 'tensorboard')


def _cmd_train_launch(args: argparse.Namespace) -> int:
    """`train` in one process, in --nproc local processes, or in the one of
    torchrun's processes this is (see tcmp_pyg.distributed)."""
    import torch

    from tcmp_pyg.distributed import launch, process_group, torchrun_world_size

    world_size = torchrun_world_size()
    nproc = world_size or args.nproc
    problem = None
    if args.nproc < 1:
        problem = f'--nproc must be >= 1 (got {args.nproc})'
    elif world_size is not None and args.nproc not in (1, world_size):
        problem = (f'--nproc {args.nproc} but torchrun started {world_size} '
                   f'processes; leave --nproc out under torchrun')
    elif args.batch_size % nproc:
        problem = (f'--batch-size ({args.batch_size}) is the global batch and '
                   f'must be a multiple of the {nproc} processes')
    elif (world_size is None and nproc > 1 and args.device.startswith('cuda')
          and nproc > torch.cuda.device_count()):
        problem = (f'--nproc {nproc} with --device {args.device} needs {nproc} '
                   f'GPUs (found {torch.cuda.device_count()})')
    if problem is not None:
        print(f'error: {problem}', file=sys.stderr)
        return 1
    if world_size is None and nproc > 1:
        # Each child finds torchrun-style variables and joins the group below.
        return launch(_cmd_train_launch, (args,), nproc)
    try:
        with process_group(args.device) as device:
            return _cmd_train(argparse.Namespace(**{**vars(args), 'device': device}))
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1


def _cmd_train(args: argparse.Namespace) -> int:
    from tcmp_pyg.checkpoint import CheckpointError, init_from_checkpoint
    from tcmp_pyg.datasets.splits import body_order_views, dataset_splits
    from tcmp_pyg.distributed import DistributedContext, main_process_first
    from tcmp_pyg.nn import build_model, model_size
    from tcmp_pyg.pruning import make_pruner
    from tcmp_pyg.train import TrainConfig, seed_everything, train

    _set_threads(args.threads)
    try:
        tensorboard_dir = _tensorboard_dir(args)
    except ImportError as e:  # before the data is loaded
        print(f'error: --tensorboard: {e}', file=sys.stderr)
        return 1
    _apply_recipe(args)
    options = {k: getattr(args, k) for k in _TRAIN_DATASET_OPTIONS
               if getattr(args, k) is not None}
    root = args.root if args.root is not None else f'datasets/{args.dataset}'
    rotation = args.rotation
    try:
        streams = dict(motion=not args.no_motion, bone=args.bone)
        with main_process_first():  # several processes: rank 0 processes the data
            splits = dataset_splits(args.dataset, root,
                                    augment=not args.no_augment,
                                    rotation=rotation,
                                    swap_bodies=args.swap_bodies,
                                    crop=args.crop,
                                    val_fraction=args.val_fraction,
                                    seed=args.seed, **streams, **options)
        train_ds, val_ds, test_ds = (splits if len(splits) == 3 else
                                     (splits[0], None, splits[1]))
        if hasattr(train_ds, 'units'):  # recorded: the default may change
            options['units'] = train_ds.units
        sample = train_ds[0]  # sets the input shape of the model
        # Seeded before the model is built, so its initialisation is too.
        seed_everything(args.seed)
        model = build_model(args.model, sample.x.size(-1),
                            len(train_ds.class_names), train_ds.layout,
                            num_frames=sample.x.size(1), width=args.width)
        if args.init_from is not None:
            init_from_checkpoint(model, args.init_from)
        pruner = None
        if args.prune is not None:
            pruner = make_pruner(args.prune, model, args.amount,
                                 tcmp_mode=args.tcmp_mode, start=args.prune_start,
                                 end=args.prune_end, update_every=args.update_every,
                                 seed=args.seed, keep_dense=args.keep_dense,
                                 synflow_iterations=args.synflow_iterations,
                                 tcmp_channel_focus=args.tcmp_channel_focus)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, optimizer=args.optimizer,
                             weight_decay=args.weight_decay,
                             label_smoothing=args.label_smoothing,
                             schedule=args.schedule, warmup=args.warmup,
                             seed=args.seed, device=args.device,
                             progress=not args.quiet)
        costs: dict = {}

        def final_metrics(trained) -> dict:  # written with the run's metrics
            costs['cost'] = _cost(trained, test_ds)
            return costs

        # Everything `evaluate` needs to rebuild the test split, and the run's
        # full argument list.
        meta = dict(dataset=args.dataset, root=root, options=options,
                    center=True, **streams, augment=not args.no_augment,
                    rotation=rotation, swap_bodies=args.swap_bodies,
                    crop=args.crop, val_fraction=args.val_fraction,
                    average_body_orders=args.average_body_orders,
                    class_names=list(train_ds.class_names),
                    model_name=args.model, init_from=args.init_from,
                    width=args.width,
                    parameters=model_size(model, 'parameters'),
                    prunable_weights=model_size(model, 'weights'),
                    args={k: v for k, v in vars(args).items() if k != 'func'})
        test_eval, val_eval = test_ds, val_ds
        if args.average_body_orders:
            test_eval = body_order_views(test_ds)
            val_eval = body_order_views(val_ds) if val_ds is not None else None
        result = train(model, train_ds, test_eval, config, val_dataset=val_eval,
                       pruner=pruner, out_dir=args.out, meta=meta,
                       tensorboard_dir=tensorboard_dir,
                       final_metrics=final_metrics)
    except (FileNotFoundError, ValueError, TypeError, FloatingPointError,
            CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if not DistributedContext.current().is_main:
        return 0  # rank 0 reports
    cost = costs['cost']  # --out is required: train() wrote metrics.json
    if result.resumed_from == result.epochs:
        print(f'{args.out} holds a finished run ({result.epochs} epochs); not '
              f'trained again')
    elif result.resumed_from:
        print(f'resumed {args.out} from epoch {result.resumed_from}')
    if result.val_accuracy is not None:
        print(f'validation accuracy: {result.val_accuracy:.4f} ({len(val_ds)} '
              f'sequences held out of the training split)')
    print(f'test accuracy: {result.test_accuracy:.4f} (last epoch of '
          f'{result.epochs}; {result.train_time_s:.1f} s training, '
          f'{result.samples_per_s:.1f} sequences/s)')
    if result.connectivity is not None:
        c = result.connectivity
        print(f"kept {c['kept']} of {c['weights']} weights, {c['live']} live, "
              f"{c['dead']} dead, {c['reachable_outputs']} of "
              f"{c['num_outputs']} outputs reachable")
    compacted = ('no compacted model (disconnected)' if cost['compact_params'] is None
                 else f"compacted: {cost['compact_params']:,} parameters, "
                      f"{cost['compact_macs']:,} MACs per sequence")
    print(f"parameters: {cost['params']:,} ({cost['nonzero_params']:,} nonzero), "
          f"{cost['macs']:,} MACs per sequence; {compacted}")
    print(f'run folder: {args.out}')
    return 0


def _cost(model, test_ds) -> dict:
    """The run's costs (:func:`~tcmp_pyg.pruning.compact.model_cost` on one
    test sequence), recorded in its ``metrics.json`` as ``cost``."""
    from torch_geometric.data import Batch

    from tcmp_pyg.pruning.compact import model_cost

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    cost = model_cost(model, Batch.from_data_list([test_ds[0]]).to(device))
    model.train(was_training)
    return cost


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('evaluate', help="recompute a checkpoint's test accuracy")
    p.add_argument('--checkpoint', required=True, help='a run\'s model.pt')
    p.add_argument('--root', default=None,
                   help='dataset root (default: the one recorded at training)')
    p.add_argument('--device', default='cpu', help='(default: cpu)')
    p.add_argument('--batch-size', type=int, default=64, help='(default: 64)')
    p.add_argument('--average-body-orders',
                   action=argparse.BooleanOptionalAction, default=None,
                   help='average the predictions over both orders of the '
                        'persons (default: as the run was evaluated)')
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from torch_geometric.loader import DataLoader

    from tcmp_pyg.checkpoint import (CheckpointError, model_from_checkpoint,
                                     read_checkpoint)
    from tcmp_pyg.datasets.splits import body_order_views
    from tcmp_pyg.train import evaluate

    try:
        checkpoint = read_checkpoint(args.checkpoint)
        meta = checkpoint['meta']
        if 'dataset' not in meta:
            raise ValueError(f"'{args.checkpoint}' records no dataset (it was "
                             f"not written by `tcmp-pyg train`)")
        model = model_from_checkpoint(checkpoint, args.checkpoint).to(args.device)
        root = args.root if args.root is not None else meta['root']
        test_ds = _recorded_test_split(meta, root)
        orders = args.average_body_orders
        if orders is None:  # runs from before the option: plain
            orders = bool(meta.get('average_body_orders'))
        views = body_order_views(test_ds) if orders else [test_ds]
        result = evaluate(model, [DataLoader(v, batch_size=args.batch_size)
                                  for v in views], args.device)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f"{meta['dataset']} test split at {root}, {meta['options']}")
    averaged = ', averaged over both person orders' if len(views) > 1 else ''
    print(f'test accuracy: {result.accuracy:.4f} ({result.correct}/'
          f'{result.total} sequences{averaged})')
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


# -- compact / export -------------------------------------------------------

def _add_compact(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('compact', help="remove a pruned checkpoint's dead "
                       'channels: a physically smaller model, same outputs')
    p.add_argument('--checkpoint', required=True, help="a pruned run's model.pt")
    p.add_argument('--out', required=True, help='the compact checkpoint to write')
    p.add_argument('--root', default=None,
                   help='dataset root of the example batch (default: the one '
                        'recorded at training)')
    p.add_argument('--batch-size', type=int, default=64,
                   help='sequences in the example batch that measures the '
                        'MACs and the gating change (default: 64)')
    p.add_argument('--num-frames', type=int, default=None,
                   help='frames of the random example batch used when the '
                        "dataset is not available (default: the training "
                        "setting, else 32)")
    p.set_defaults(func=_cmd_compact)


def _recorded_test_split(meta: dict, root: Optional[str]):
    """The test split a checkpoint was evaluated on (``meta`` written by
    `tcmp-pyg train`), without augmentation, at ``root`` or the recorded one."""
    from tcmp_pyg.datasets.splits import dataset_splits

    options = dict(meta['options'])
    if meta['dataset'] == 'sbu':  # runs from before the units option
        options.setdefault('units', 'normalized')
    _, test_ds = dataset_splits(meta['dataset'], root or meta['root'],
                                augment=False, center=meta['center'],
                                motion=meta['motion'], bone=meta['bone'],
                                **options)
    return test_ds


def _recorded_num_frames(model, meta: dict) -> int:
    """Frames per sequence of the training data: the model's own
    (AttentionGCN), the recorded dataset option or that dataset's default,
    else 32 (STGCN takes any length)."""
    import inspect

    from tcmp_pyg.datasets import DATASETS

    if hasattr(model, 'num_frames'):
        return model.num_frames
    frames = meta.get('options', {}).get('num_frames')
    if frames is None and meta.get('dataset') in DATASETS:
        param = inspect.signature(DATASETS[meta['dataset']].__init__).parameters.get(
            'num_frames')
        frames = param.default if param is not None else None
    return frames if isinstance(frames, int) else 32


def _random_batch(model, num_frames: int, batch_size: int):
    """A PyG batch of ``batch_size`` random sequences on the model's layout."""
    from torch_geometric.data import Batch, Data

    from tcmp_pyg.export import example_input

    x = example_input(model, num_frames, batch_size).cpu()  # [B, M * V, T, C]
    edge_index = model.layout.edge_index()
    return Batch.from_data_list([Data(x=xb, edge_index=edge_index) for xb in x])


def _example_batch(model, meta: dict, args: argparse.Namespace):
    """(batch, description): the first test batch of the recorded dataset,
    else random input."""
    from torch_geometric.loader import DataLoader

    why = 'the checkpoint records no dataset'
    if 'dataset' in meta:
        root = args.root or meta['root']
        try:
            test_ds = _recorded_test_split(meta, root)
        except FileNotFoundError:
            why = f"dataset '{meta['dataset']}' not found at {root}; see --root"
        else:
            batch = next(iter(DataLoader(test_ds, batch_size=args.batch_size)))
            return batch, (f"{batch.num_graphs} test sequences of "
                           f"{meta['dataset']} at {root}")
    frames = args.num_frames or _recorded_num_frames(model, meta)
    batch = _random_batch(model, frames, args.batch_size)
    return batch, f'{batch.num_graphs} random sequences of {frames} frames ({why})'


def _compact(model, path: str, example):
    """``compact(model, example)`` with the CLI's errors; the gating change
    is left for the caller to print (no warning)."""
    import warnings

    from tcmp_pyg.nn import CompactAttentionGCN, CompactSTGCN
    from tcmp_pyg.pruning import compact, prunable_weights

    if isinstance(model, (CompactSTGCN, CompactAttentionGCN)):
        raise ValueError(f"'{path}' holds a {type(model).__name__}: it is "
                         f"compact already")
    if all(bool((m.weight_mask != 0).all()) for _, m in prunable_weights(model)):
        raise ValueError(f"nothing to compact: '{path}' was not pruned (every "
                         f"weight mask is all ones; train with --prune)")
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return compact(model, example)


def _cmd_compact(args: argparse.Namespace) -> int:
    from tcmp_pyg.checkpoint import (CheckpointError, model_from_checkpoint,
                                     read_checkpoint, save_checkpoint)
    from tcmp_pyg.pruning import count_macs, count_parameters

    if os.path.abspath(args.out) == os.path.abspath(args.checkpoint):
        print(f"error: --out '{args.out}' would replace the pruned checkpoint; "
              f"write the compact model to another file", file=sys.stderr)
        return 1
    try:
        checkpoint = read_checkpoint(args.checkpoint)
        meta = checkpoint['meta']
        model = model_from_checkpoint(checkpoint, args.checkpoint).eval()
        example, source = _example_batch(model, meta, args)
        params = count_parameters(model)
        kept = count_parameters(model, nonzero=True)
        macs = count_macs(model, example)
        small = _compact(model, args.checkpoint, example)
        save_checkpoint(args.out, small,
                        meta=dict(meta, compacted_from=os.fspath(args.checkpoint),
                                  gating_change=small.gating_change))
    except (CheckpointError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{type(model).__name__} from {args.checkpoint} -> '
          f'{type(small).__name__}')
    same = count_parameters(small) == params
    print(f'parameters: {params:,} ({kept:,} kept by the masks) -> '
          f'{count_parameters(small):,}'
          + (' (no channel is dead: nothing to remove)' if same else ''))
    print(f'MACs per sequence: {macs:,} -> {count_macs(small, example):,} '
          f'(on {source})')
    print(f'gating change: {small.gating_change:.3g} (largest output change '
          f'from switching off dead channels; the compact model equals the '
          f'gated one)')
    print(f'wrote {args.out}')
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('export', help="write a checkpoint's model as ONNX "
                       '(dense operations, eval mode) for on-device inference')
    p.add_argument('--checkpoint', required=True,
                   help="a run's model.pt or a `tcmp-pyg compact` output")
    p.add_argument('--onnx', required=True, help='the .onnx file to write')
    p.add_argument('--compact', action='store_true',
                   help='compact the pruned model first (as `tcmp-pyg compact`)')
    p.add_argument('--num-frames', type=int, default=None,
                   help='frames per sequence, fixed in the graph (default: '
                        'the training setting, else 32)')
    p.add_argument('--batch-size', type=int, default=1,
                   help='batch size, fixed in the graph (default: 1)')
    p.add_argument('--dynamic-batch', action='store_true',
                   help='a dynamic batch axis instead of --batch-size')
    p.set_defaults(func=_cmd_export)


def _onnx_difference(model, path: str, num_frames: int, batch_size: int
                     ) -> Optional[float]:
    """Largest absolute difference between onnxruntime on the file and the
    PyTorch model on a random input; None without onnxruntime."""
    import importlib.util

    import torch

    from tcmp_pyg.export import example_input, pyg_forward

    if importlib.util.find_spec('onnxruntime') is None:
        return None
    import onnxruntime

    x = example_input(model, num_frames, batch_size, seed=1).cpu()
    with torch.no_grad():
        expected = pyg_forward(model.cpu().eval(), x)
    session = onnxruntime.InferenceSession(str(path),
                                           providers=['CPUExecutionProvider'])
    got = torch.from_numpy(session.run(['logits'], {'x': x.numpy()})[0])
    return float((got - expected).abs().max())


def _cmd_export(args: argparse.Namespace) -> int:
    from tcmp_pyg.checkpoint import (CheckpointError, model_from_checkpoint,
                                     read_checkpoint)
    from tcmp_pyg.export import export_onnx, require_onnx
    from tcmp_pyg.pruning import count_parameters

    batch_size = None if args.dynamic_batch else args.batch_size
    try:
        require_onnx()
        checkpoint = read_checkpoint(args.checkpoint)
        model = model_from_checkpoint(checkpoint, args.checkpoint).eval()
        frames = args.num_frames or _recorded_num_frames(model, checkpoint['meta'])
        if args.compact:
            params = count_parameters(model)
            model = _compact(model, args.checkpoint, _random_batch(model, frames, 8))
            print(f'compacted: {params:,} -> {count_parameters(model):,} '
                  f'parameters (gating change {model.gating_change:.3g} on '
                  f'random input)')
        path = export_onnx(model, args.onnx, num_frames=frames,
                           batch_size=batch_size)
        diff = _onnx_difference(model, path, frames, batch_size or 2)
    except (ImportError, CheckpointError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    B = batch_size or 'B'
    V, C = model.layout.num_nodes, model.in_channels
    print(f'wrote {path} ({type(model).__name__}; input x [{B}, {V}, {frames}, '
          f'{C}] = (batch, bodies x joints, frames, channels), output logits '
          f'[{B}, {model.num_classes}]; {os.path.getsize(path) / 1024:.1f} KiB)')
    if diff is None:
        print('onnxruntime is not installed: the file was not run '
              '(pip install onnxruntime)')
    else:
        print(f'onnxruntime vs PyTorch: max abs difference {diff:.3g}')
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    from tcmp_pyg.nn.models import MODEL_NAMES
    from tcmp_pyg.sweep import sweep_methods

    p = sub.add_parser('sweep', help='train every (model, method, amount, fold, '
                       'seed) combination; resumable; writes results.csv/.md and a plot')
    p.add_argument('--dataset', required=True, help='dataset name')
    p.add_argument('--root', default=None, help='dataset root (default: datasets/<name>)')
    p.add_argument('--out', required=True, help='sweep folder (runs go to OUT/runs)')
    p.add_argument('--model', nargs='+', default=['stgcn-compact'],
                   choices=MODEL_NAMES, help='(default: stgcn-compact)')
    names = sweep_methods()
    p.add_argument('--methods', nargs='+', default=['dense', 'mp', 'tcmp'],
                   metavar='METHOD',
                   help=f"{{{','.join(names)}}} or a --variant label (default: "
                        "dense mp tcmp). 'oneshot' prunes the "
                        "trained 'dense' run of the same model, fold and seed "
                        'by global magnitude at once and fine-tunes it '
                        "('oneshot-X': by the allocation of 'mp-X'; "
                        "'oneshot-tcmp': by TCMP's consistent selection); it needs "
                        "'dense' in the grid and starts once that run finished")
    p.add_argument('--variant', action='append', default=[], metavar="'LABEL=METHOD ARGS'",
                   help="a method variant that --methods may name: its runs train as "
                        "METHOD with the further train arguments ARGS and are named, "
                        "tabulated and compared as LABEL, e.g. --variant "
                        "'tcmp-relaxed=tcmp --tcmp-mode relaxed' --methods tcmp "
                        'tcmp-relaxed (repeatable)')
    p.add_argument('--finetune-epochs', type=int, default=None,
                   help='epochs of the oneshot runs (default: --epochs)')
    p.add_argument('--amounts', nargs='+', type=float, default=[0.99],
                   help='pruning rates (default: 0.99)')
    p.add_argument('--folds', nargs='+', type=int, default=None,
                   help='folds (datasets with folds, e.g. sbu 1..5)')
    p.add_argument('--seeds', nargs='+', type=int, default=[0], help='(default: 0)')
    p.add_argument('--widths', nargs='+', type=float, default=[1.0],
                   help="preset widths of the dense runs (train --width): "
                   "matched-size dense rivals, rows named e.g. 'dense-w0.25'; "
                   'list 1 to keep the full-width one (default: 1)')
    p.add_argument('--launcher', default='local', choices=('local', 'ray'),
                   help='local: processes on this machine; ray: one Ray task per '
                   "run on a Ray cluster (pip install 'tcmp-pyg[ray]') (default: local)")
    p.add_argument('--jobs', type=int, default=None,
                   help='local: runs in parallel processes (default: 1)')
    p.add_argument('--threads-per-job', type=int, default=None,
                   help='local: torch threads of each run (default: 1)')
    p.add_argument('--address', default=None,
                   help="ray: cluster address, HOST:PORT or 'auto' (default: "
                   '$RAY_ADDRESS, else a new local Ray instance)')
    p.add_argument('--cpus-per-run', type=float, default=None,
                   help='ray: CPUs reserved by each run, also its torch threads '
                   '(default: 1)')
    p.add_argument('--gpus-per-run', type=float, default=None,
                   help='ray: GPUs reserved by each run; runs then train on cuda '
                   'unless --train-args names a --device (default: 0)')
    p.add_argument('--epochs', type=int, default=None,
                   help='epochs of every run (default: as tcmp-pyg train)')
    p.add_argument('--lr', type=float, default=None,
                   help='learning rate of every run (default: as tcmp-pyg train)')
    p.add_argument('--num-frames', type=int, default=None,
                   help='frames per sequence (default: as tcmp-pyg train)')
    p.add_argument('--train-args', default='',
                   help='further `tcmp-pyg train` arguments, quoted '
                   "(e.g. '--tcmp-mode relaxed'; a lone flag needs '=': "
                   "--train-args=--bone)")
    p.add_argument('--device', default=None,
                   help="device of every run: 'cpu', 'cuda', 'cuda:1', ... "
                        '(default: as tcmp-pyg train)')
    p.add_argument('--keep-dense', nargs='+', default=None, metavar='LAYER',
                   help='layers every pruned run keeps dense (tcmp-pyg train '
                        '--keep-dense; dense runs ignore it). Run names do not '
                        'show it: give such a sweep its own --out')
    p.add_argument('--interval', default='t', choices=('t', 'bootstrap'),
                   help='95 %% intervals of the results and of the paired '
                   'comparisons: Student-t or percentile bootstrap (default: t)')
    p.add_argument('--summarize-only', action='store_true',
                   help='start no run: write the tables and plots of the '
                        "grid's finished runs (e.g. of a folder filled by "
                        'several sweep calls)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    import shlex

    from tcmp_pyg.sweep import run_sweep

    train_args = shlex.split(args.train_args)
    for flag, value in (('--epochs', args.epochs), ('--lr', args.lr),
                        ('--num-frames', args.num_frames),
                        ('--device', args.device)):
        if value is not None:
            train_args += [flag, str(value)]
    if args.keep_dense:  # train_args_for drops it from the dense runs
        train_args += ['--keep-dense', *args.keep_dense]
    from tcmp_pyg.sweep import parse_variant, sweep_methods

    variants = {}
    try:
        for spec in args.variant:
            label, method, extra = parse_variant(spec)
            if label in variants:
                raise ValueError(f"variant '{label}' given twice")
            variants[label] = (method, extra)
    except ValueError as e:
        print(f'error: --variant: {e}', file=sys.stderr)
        return 1
    known = sweep_methods() + tuple(variants)
    unknown = [m for m in args.methods if m not in known]
    if unknown:
        print(f"error: --methods: unknown method(s) {unknown} (expected one of "
              f"{', '.join(known)}; a variant needs --variant 'LABEL=METHOD ARGS')",
              file=sys.stderr)
        return 1
    if any(a < 0 or a >= 1 for a in args.amounts):
        print(f'error: --amounts must lie in [0, 1), got {args.amounts}',
              file=sys.stderr)
        return 1
    local = dict(jobs=args.jobs, threads_per_job=args.threads_per_job)
    ray_options = dict(address=args.address, cpus_per_run=args.cpus_per_run,
               gpus_per_run=args.gpus_per_run)
    other = ray_options if args.launcher == 'local' else local
    given = ['--' + k.replace('_', '-') for k, v in other.items() if v is not None]
    if given:
        print(f"error: {', '.join(given)}: not an option of --launcher "
              f'{args.launcher} (local: --jobs, --threads-per-job; ray: --address, '
              '--cpus-per-run, --gpus-per-run)', file=sys.stderr)
        return 1
    if args.launcher == 'local':
        options = dict(jobs=args.jobs or 1, threads_per_job=args.threads_per_job or 1)
    else:
        options = dict(launcher='ray', **ray_options)
    try:
        rows = run_sweep(args.dataset, args.root, args.out, models=args.model,
                         methods=args.methods, amounts=args.amounts,
                         folds=args.folds or [None], seeds=args.seeds,
                         widths=args.widths, train_args=train_args,
                         progress=not args.quiet, interval=args.interval,
                         finetune_epochs=args.finetune_epochs,
                         summarize_only=args.summarize_only, variants=variants,
                         **options)
    except (ImportError, ValueError, ConnectionError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except RuntimeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    with open(os.path.join(args.out, 'results.md')) as f:
        print(f.read())
    print(f'{len(rows)} runs; results in {args.out}/results.csv, comparisons.csv, '
          f'results.md and accuracy_vs_rate.png'
          + (', accuracy_vs_cost.png' if os.path.exists(
              os.path.join(args.out, 'accuracy_vs_cost.png')) else ''))
    failed = [r for r in rows if r['status'] == 'failed']
    if failed:
        print(f'error: {len(failed)} of {len(rows)} sweep runs failed (see the '
              f"table above and their train.log under {os.path.join(args.out, 'runs')}); "
              f'the same command retries them', file=sys.stderr)
        return 1
    return 0


def _add_width(sub: argparse._SubParsersAction) -> None:
    from tcmp_pyg.nn.models import MODEL_NAMES

    p = sub.add_parser('width', help='the preset width whose dense size is closest '
                       'to a target: matched-size dense rivals of a pruned model')
    p.add_argument('--model', default=None, choices=MODEL_NAMES,
                   help="(default: the --like checkpoint's preset, else "
                        'stgcn-compact)')
    target = p.add_mutually_exclusive_group()
    target.add_argument('--params', type=int, default=None,
                        help='target number of parameters (all of them, as in '
                             "`tcmp-pyg compact`'s compacted model)")
    target.add_argument('--weights', type=int, default=None,
                        help='target number of prunable weights (e.g. the '
                             'weights a pruned model keeps)')
    p.add_argument('--like', default=None,
                   help="a `tcmp-pyg train` run's model.pt: its input channels, "
                        'classes, layout and frames; when pruned and no target '
                        'is given, both rivals of it (as many weights as it '
                        'keeps, as many parameters as its compacted model)')
    p.add_argument('--in-channels', type=int, default=None,
                   help='channels per joint without --like (default: 6, '
                        'coordinates and their motion)')
    p.add_argument('--num-classes', type=int, default=None,
                   help='classes without --like (default: 8, SBU)')
    p.add_argument('--layout', default=None,
                   help="skeleton layout without --like (default: 'sbu')")
    p.add_argument('--num-frames', type=int, default=None,
                   help='frames per sequence without --like (default: 40)')
    p.set_defaults(func=_cmd_width)


def _width_targets(args: argparse.Namespace, model) -> List[Tuple[str, int]]:
    """``[(count, target)]``: the given target, else those of a pruned
    ``--like`` model (its kept weights, its compacted model's parameters)."""
    import warnings

    from tcmp_pyg.nn import CompactAttentionGCN, CompactSTGCN
    from tcmp_pyg.pruning import compact, count_parameters, prunable_weights

    if args.params is not None:
        return [('parameters', args.params)]
    if args.weights is not None:
        return [('weights', args.weights)]
    if model is None:
        raise ValueError('give a target: --params N, --weights N, or --like a '
                         'pruned checkpoint')
    kept = sum(int((m.weight_mask != 0).sum()) for _, m in prunable_weights(model))
    if isinstance(model, (CompactSTGCN, CompactAttentionGCN)):
        return [('weights', kept), ('parameters', count_parameters(model))]
    if all(bool((m.weight_mask != 0).all()) for _, m in prunable_weights(model)):
        raise ValueError(f"'{args.like}' was not pruned; give --params or "
                         f"--weights")
    targets = [('weights', kept)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            targets.append(('parameters', count_parameters(compact(model))))
    except (TypeError, ValueError) as e:  # a model compact() does not support
        print(f'no compacted size: {e}')
    return targets


def _cmd_width(args: argparse.Namespace) -> int:
    from tcmp_pyg.checkpoint import (CheckpointError, model_from_checkpoint,
                                     read_checkpoint)
    from tcmp_pyg.nn import build_model, model_size, width_for_params

    model, name = None, args.model
    shape = dict(in_channels=args.in_channels, num_classes=args.num_classes,
                 layout=args.layout, num_frames=args.num_frames)
    try:
        if args.like is not None:
            given = [_flag(k) for k, v in shape.items() if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: --like sets them")
            checkpoint = read_checkpoint(args.like)
            model = model_from_checkpoint(checkpoint, args.like)
            name = name or checkpoint['meta'].get('model_name')
            if name is None:
                raise ValueError(f"'{args.like}' records no preset; give --model")
            shape = dict(in_channels=model.in_channels,
                         num_classes=model.num_classes, layout=model.layout,
                         num_frames=_recorded_num_frames(model, checkpoint['meta']))
        else:
            defaults = dict(in_channels=6, num_classes=8, layout='sbu', num_frames=40)
            shape = {k: defaults[k] if v is None else v for k, v in shape.items()}
        name = name or 'stgcn-compact'
        targets = _width_targets(args, model)
        for count, target in targets:
            width = width_for_params(name, target, **shape, count=count)
            size = model_size(build_model(name, **shape, width=width), count)
            print(f'{name} --width {width:g}: {size:,} {count} (target {target:,})')
    except (CheckpointError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('demo', help='the main job: train dense, MP and TCMP at 99 %% '
                       'and 99.9 %%, compact, print a table and write a report')
    p.add_argument('--dataset', default='synthetic',
                   help='(default: synthetic, generated on the fly)')
    p.add_argument('--root', default=None, help='dataset root (default: datasets/<name>)')
    p.add_argument('--fold', type=int, default=None, help='sbu: fold 1..5 (default: 1)')
    p.add_argument('--out', default='report', help='report folder (default: report)')
    p.add_argument('--epochs', type=int, default=None,
                   help='epochs per run (default: 12 synthetic, 60 real data)')
    p.add_argument('--seed', type=int, default=0, help='(default: 0)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tcmp_pyg.demo import run_demo

    _set_threads(args.threads)
    fold = args.fold
    if fold is None and args.dataset == 'sbu':
        fold = 1
    try:
        run_demo(args.out, dataset=args.dataset, root=args.root, fold=fold,
                 epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


def _parsers() -> Tuple[argparse.ArgumentParser,
                        Dict[str, argparse.ArgumentParser]]:
    """The parser and its subcommands' parsers by name."""
    parser = argparse.ArgumentParser(prog='tcmp-pyg', description=__doc__)
    parser.add_argument('--version', action='version',
                        version=f'%(prog)s {__version__}')
    sub = parser.add_subparsers(dest='command', required=True)
    for add in (_add_datasets, _add_inspect, _add_train, _add_evaluate,
                _add_connectivity, _add_compact, _add_export, _add_sweep,
                _add_width, _add_demo):
        add(sub)
    return parser, sub.choices


def build_parser() -> argparse.ArgumentParser:
    """The ``tcmp-pyg`` argument parser."""
    return _parsers()[0]


def main(argv: Optional[List[str]] = None) -> int:
    parser, commands = _parsers()
    args = parser.parse_args(argv)
    if args.command == 'train':
        problem = pruning_option_problem(args)
        if problem is not None:
            commands['train'].error(problem)  # usage and exit code 2
        if args.prune is not None:
            for dest, value in PRUNING_DEFAULTS.items():
                if getattr(args, dest) is None:
                    setattr(args, dest, copy.copy(value))  # lists unshared
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
