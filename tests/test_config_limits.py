"""Config files that would eat the machine: oversized files and "billion laughs" aliases are refused unparsed.

Snakemake walked a 9 x 9 alias bomb in `variants` (387 M values once written out, a few hundred bytes on disk)
for 86 s until MemoryError. Every entry point must now stop with one line naming the file: the package's loader
(`au-ttt plan`, `au-ttt train`), the Snakefile before Snakemake's own walks, and `au-ttt dvc-stage` before
Snakemake starts. Each subprocess runs under a timeout and an address-space cap (tests/limits.py), so a regression
fails instead of swapping the machine.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml
from conftest import REPO
from dag import BIN, address_space_limit, snakemake, workdir
from limits import BOMB_MESSAGE, CAP, bomb_config, laughs

from au_ttt.config import MAX_CONFIG_BYTES, ConfigError, load_yaml
from au_ttt.settings import load_settings


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "au-ttt"), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=address_space_limit(CAP))


def test_oversized_config_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("model: {}\n" + "#" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: larger than 1,000,000 bytes")):
        load_yaml(path)


@pytest.mark.parametrize("mapping", [False, True], ids=["lists", "mappings"])
def test_alias_bombs_are_refused_from_the_node_graph(tmp_path, mapping):
    """Counted on PyYAML's node graph, where an alias is a second reference: the cost of the file, not of 387 M."""
    path = tmp_path / "cfg.yaml"
    path.write_text("variants:\n" + laughs(mapping=mapping))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}: {BOMB_MESSAGE}")


def test_recursive_and_deeply_nested_yaml_are_clear_errors(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("variants: &v {a: *v}\n")
    with pytest.raises(ConfigError, match=r"refers to an anchor \(&name\) that contains it"):
        load_settings(path)
    path.write_text("variants: " + "[" * 20000 + "]" * 20000 + "\n")  # PyYAML's composer recurses per level
    with pytest.raises(ConfigError, match="not valid YAML: nested too deeply"):
        load_settings(path)


def test_modest_anchors_still_load(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model: &m {msp: false}\nvariants:\n  a: *m\n  b: {<<: *m, au_roi: false}\n")
    assert load_settings(path).variants == {"a": {"msp": False}, "b": {"msp": False, "au_roi": False}}


def test_shipped_configs_use_no_aliases():
    """The limits cost the shipped configs nothing: none uses an anchor or an alias."""
    for path in [*REPO.glob("config/*.yaml"), REPO / ".test/config/config.yaml", REPO / "params.yaml"]:
        events = list(yaml.parse(path.read_text()))
        assert not [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)], path


@pytest.mark.parametrize("command", [["plan", "--gpus", "0", "--bench"],
                                     ["train", "--dataset", "bp4d", "--test-part", "1", "--index", "i", "--crops",
                                      "c", "--heatmaps", "h"]], ids=["plan", "train"])
def test_cli_refuses_a_bomb_with_one_line(tmp_path, command):
    bomb = bomb_config(tmp_path / "bomb.yaml")
    result = run_cli(*command, "--config", str(bomb), *(["--out", str(tmp_path / "run")] if "train" in command
                                                        else []))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"au-ttt {command[0]}: error: {bomb}: {BOMB_MESSAGE} "
                                                  "(a project config has a few hundred): remove the aliases that "
                                                  "repeat anchors (&name) of anchors and write the values out"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("how", ["default config", "--configfile"])
def test_snakemake_dry_run_refuses_a_bomb_before_walking_it(tmp_path, how):
    """The Snakefile reads the config files with the package's loader before Snakemake's schema check, merges and
    dumps walk them. (A mapping bomb given with --configfile is expanded by Snakemake's own start-up merge before
    any workflow code runs: README, `au-ttt dvc-stage` checks that one first.)"""
    bomb = bomb_config(tmp_path / "bomb.yaml")
    if how == "default config":
        work, args = workdir(tmp_path / "work", bomb), ()
    else:
        work, args = workdir(tmp_path / "work", REPO / ".test/config/config.yaml"), ("--configfile", str(bomb))
    result = snakemake(work, "-n", "all", *args, timeout=300, max_bytes=CAP)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    shown = "config/config.yaml" if how == "default config" else str(bomb)
    assert f"WorkflowError in file \"{REPO / 'workflow/Snakefile'}\"" in out, out[-3000:]
    assert f"\n{shown}: {BOMB_MESSAGE}" in out
    assert not (work / "results").exists()

