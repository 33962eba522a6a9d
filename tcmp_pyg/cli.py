"""The ``tcmp-pyg`` command line: one subcommand per task."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _add_datasets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('datasets', help='list the available datasets and their stats')
    p.set_defaults(func=_cmd_datasets)


def _cmd_datasets(args: argparse.Namespace) -> int:
    raise NotImplementedError


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('inspect', help='load a dataset and print a summary')
    p.add_argument('--dataset', required=True)
    p.add_argument('--root', default=None,
                   help='dataset root holding raw/ (default: datasets/<name>)')
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    raise NotImplementedError


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
