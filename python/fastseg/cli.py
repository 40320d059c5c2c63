"""``fastseg <command>``: a thin command line; every command calls the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from fastseg.errors import FastsegError

Handler = Callable[[argparse.Namespace], int]


def _cmd_info(args: argparse.Namespace) -> int:
    from fastseg._info import format_info, info

    data = info()
    print(json.dumps(data, indent=2) if args.json else format_info(data))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fastseg.demo import run_demo

    run_demo(out_dir=args.out, minutes=args.minutes, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastseg", description="Deep-learning segmentation of 3D CT and MR images."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="version, native build, CUDA, GPU and peer libraries")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser("demo", help="synthetic CT phantoms through the whole workflow")
    p.add_argument("--out", default="fastseg_demo", help="output folder (default: ./fastseg_demo)")
    p.add_argument("--minutes", type=float, default=4.0, help="training time budget in minutes")
    p.add_argument("--seed", type=int, default=0, help="random seed of phantoms and training")
    p.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except FastsegError as exc:
        print(f"fastseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
