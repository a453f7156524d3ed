"""The single ``au-ttt`` command line: one subcommand per pipeline step."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from collections.abc import Collection, Sequence

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
    "synth": "synth", "baseline": "baseline", "probe": "probe",
    "mlflow-ui": "mlflow_ui",
    "predict": "predict",
    "export": "export",
    "tables": "tables",
    "plan": "plan",
    "dvc-stage": "dvc_stage",
}


def build_parser(with_options: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``with_options`` names the commands whose options are added (None: all).

    Every command is listed with its one-line help either way. :func:`main` adds the options of the command it
    runs only, because adding a command's options may import what it needs (``bench`` imports torch): a DAG job
    that runs ``au-ttt heatmaps`` would otherwise pay for that import before its first frame.
    """
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
        if with_options is None or name in with_options:
            module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs: its first word that is not an option (the top level takes no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(with_options=[command_named(words) or ""]).parse_args(words)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args._run(args) or 0)
    except InputError as err:
        print(f"au-ttt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the operating system refused: a one-line answer naming the path, not a traceback
        print(f"au-ttt {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"au-ttt {args.command}: interrupted; outputs are written atomically, nothing half-written was left",
              file=sys.stderr)
        return 130


_OS_FIXES = {
    errno.ENOENT: "check the path (a typo, or a step that has not run yet?)",
    errno.EACCES: "the folder is not writable/readable for this user: fix its permissions or choose another path",
    errno.EPERM: "the folder is not writable/readable for this user: fix its permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose an output folder on a writable disk",
    errno.ENOSPC: "the disk is full: free space or choose an output folder on another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose an output folder on another disk",
    errno.EISDIR: "a folder is in the way of a file: remove it or choose another path",
    errno.ENOTDIR: "a file is in the way of a folder: remove it or choose another path",
    errno.EEXIST: "a file is in the way of a folder: remove it or choose another path",
}


def describe_os_error(err: OSError) -> str:
    """``<path>: <what the OS said> — <what to do>`` for an OSError raised anywhere in a command."""
    where = " → ".join(str(f) for f in (err.filename, err.filename2) if f) or "(no path given by the OS)"
    what = err.strerror or str(err)
    fix = _OS_FIXES.get(err.errno or -1, "see the message above")
    return f"{where}: {what} — {fix}"


if __name__ == "__main__":
    sys.exit(main())
