"""Run one DVC stage: read params.yaml, check what it names, then start Snakemake on it without a shell.

  au-ttt dvc-stage data_products [--params params.yaml] [-- further snakemake arguments, e.g. -n]

dvc.yaml's commands call this instead of pasting `${config}` and `${cores}` into a shell line: DVC substitutes
those as text, so a config path with a space split in two and `dvc exp run -S 'config=x$(touch y)'` ran the
command, and no quoting survives a value that holds a quote. Here `config` must name an existing file that
passes the whole project check (the one `au-ttt plan` runs: every section, the DAG's workflow schema, the
SynthAU sizes, the size and alias limits), `cores` must be an integer >= 1 or `all`, and the GPUs are the ones
visible here; Snakemake receives them as separate arguments.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

HELP = "run one DVC stage's Snakemake target on the config and cores params.yaml names (used by dvc.yaml)"

# The coarse Snakemake targets of the four DVC stages (workflow/Snakefile): prepare, pretrain, experiments, tables.
TARGETS = ("data_products", "pretrained_backbone", "experiments", "all")
_PARAMS = ("config", "cores")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=TARGETS, help="the stage's Snakemake target")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="DVC params file with `config` (a project config file) and `cores` (integer or all)")
    parser.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                        help="after `--`: further Snakemake arguments, passed on unchanged")


def snakemake_argv(target: str, params: Path) -> list[str]:
    """The Snakemake command line of a stage, after checking every value params.yaml gives it."""
    from au_ttt.config import ConfigError, load_yaml
    from au_ttt.resources import visible_gpus
    from au_ttt.workflow_config import check_config_file

    data = load_yaml(params)
    unknown = [k for k in data if k not in _PARAMS]
    if unknown:
        raise ConfigError(f"{params}: unknown key '{unknown[0]}'; allowed keys: {', '.join(_PARAMS)}")
    config, cores = data.get("config"), data.get("cores", "all")
    if not isinstance(config, str) or not Path(config).is_file():
        raise ConfigError(f"{params}: key 'config' has value {config!r}, which is not an existing file; allowed: "
                          "the path of a project config file, e.g. `dvc exp run -S config=config/paper.yaml`")
    if cores != "all" and (isinstance(cores, bool) or not isinstance(cores, int) or cores < 1):
        raise ConfigError(f"{params}: key 'cores' has value {cores!r}; allowed: an integer >= 1 or 'all'")
    check_config_file(config)
    # `--configfile=PATH` is one word: Snakemake's --configfile takes several files, and a path starting with
    # `-` or followed by the target would otherwise be read as something else
    return ["snakemake", target, "--cores", str(cores), "--resources", f"gpu={visible_gpus()}",
            f"--configfile={config}"]


def run(args: argparse.Namespace) -> int:
    extra = list(args.snakemake_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    argv = snakemake_argv(args.target, args.params) + extra
    print(f"au-ttt dvc-stage: {shlex.join(argv)}", flush=True)
    os.execvp(argv[0], argv)  # Snakemake takes over this process: DVC's signals and exit status reach it directly
