"""The single ``au-ttt`` command line: one subcommand per pipeline step."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from au_ttt import __version__
from au_ttt.errors import InputError

# subcommand name -> module under au_ttt.commands (each has HELP, add_arguments, run)
COMMANDS: dict[str, str] = {
    "info": "info",
    "bench": "bench",
    "data": "data",
    "pretrain": "pretrain",
    "train": "train",
    "evaluate": "evaluate",
    "landmarks": "landmarks", "crops": "crops", "heatmaps": "heatmaps", "gather": "gather",
    "loader-bench": "loader_bench",
    "synth": "synth", "baseline": "baseline",
    "mlflow-ui": "mlflow_ui",
    "tables": "tables",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="au-ttt",
        description="AU-TTT reproduction pipeline: data, landmarks, heatmaps, training, evaluation, tables. "
        "Run `au-ttt <command> --help` for the options of each step.",
    )
    parser.add_argument("--version", action="version", version=f"au-ttt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"au_ttt.commands.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args._run(args) or 0)
    except (InputError, FileNotFoundError) as err:
        print(f"au-ttt {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
