"""The ``tcmp-pyg`` command line: one subcommand per task."""
from __future__ import annotations

import argparse
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


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('demo', help='run the main job on the synthetic dataset')
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    raise NotImplementedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='tcmp-pyg', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    for add in (_add_datasets, _add_inspect, _add_demo):
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
