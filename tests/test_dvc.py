"""dvc.yaml's commands, as DVC renders them, run through a shell: params.yaml values arrive as single arguments
and never run as code (`dvc exp run -S 'config=x$(touch PWNED)y'` used to run `touch`).

Snakemake is replaced by a recorder on PATH that writes the arguments it receives; the stage commands are the
ones DVC itself renders from dvc.yaml and params.yaml (dvc.repo.Repo), run with `bash -c` as DVC runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from dag import BIN, address_space_limit
from limits import CAP, bomb_config

from au_ttt.cli import main

CONFIG = REPO / ".test/config/config.yaml"
TARGETS = {"prepare": "data_products", "pretrain": "pretrained_backbone", "experiments": "experiments",
           "tables": "all"}
# the config values params.yaml may hold (`dvc exp run -S config=…`): a space, shell code, quotes, a dash
NAMES = {"space": "with space/config.yaml",
         "shell": "x$(touch PWNED)y`touch PWNED`it's \"quoted\"; touch PWNED.yaml",
         "dash": "-starts-with-dash.yaml"}


def dvc_project(root: Path, config: str, cores: object = 2) -> Path:
    """A DVC project holding the repository's dvc.yaml, params.yaml naming ``config`` (a copy of the CI config)."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    (root / "params.yaml").write_text(yaml.safe_dump({"config": config, "cores": cores}))
    (root / config).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG, root / config)
    return root


def rendered_commands(root: Path) -> dict[str, str]:
    """Each stage's `cmd` after DVC's own ${...} substitution from params.yaml."""
    from dvc.repo import Repo

    Repo.init(str(root), no_scm=True)
    with Repo(str(root)) as repo:
        return {stage.name: stage.cmd for stage in repo.index.stages}


def recorder(folder: Path) -> Path:
    """A `snakemake` that only writes its arguments (JSON) to $RECORD."""
    folder.mkdir()
    shim = folder / "snakemake"
    shim.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "json.dump(sys.argv[1:], open(os.environ['RECORD'], 'w'))\n")
    shim.chmod(0o755)
    return folder


def run_stage(cmd: str, root: Path, shims: Path, record: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{shims}:{BIN}:{os.environ.get('PATH', '')}", "RECORD": str(record),
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(["bash", "-c", cmd], cwd=root, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=address_space_limit(CAP))


@pytest.mark.parametrize("case", list(NAMES))
def test_rendered_commands_pass_the_config_as_one_argument(tmp_path, case):
    """Every stage's command for the shell-code value (each one costs an `au-ttt` start-up), the first stage's
    for the others."""
    name = NAMES[case]
    root = dvc_project(tmp_path / "project", name)
    commands = rendered_commands(root)
    assert set(commands) == set(TARGETS)
    shims = recorder(tmp_path / "shims")
    for stage, cmd in commands.items() if case == "shell" else [("prepare", commands["prepare"])]:
        record = tmp_path / f"{stage}.json"
        result = run_stage(cmd, root, shims, record)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(record.read_text()) == [TARGETS[stage], "--cores", "2", "--resources", "gpu=0",
                                                  f"--configfile={name}"]
    assert not list(tmp_path.rglob("PWNED*")), "a params.yaml value ran as a command"


@pytest.mark.parametrize(("params", "message"), [
    ({"config": "absent.yaml"}, "key 'config' has value 'absent.yaml', which is not an existing file; allowed: the "
                                "path of a project config file, e.g. `dvc exp run -S config=config/paper.yaml`"),
    ({"config": "."}, "key 'config' has value '.', which is not an existing file"),
    ({"config": ["a.yaml"]}, "key 'config' has value ['a.yaml'], which is not an existing file"),
    ({"config": "ok.yaml", "cores": "2; touch PWNED"}, "key 'cores' has value '2; touch PWNED'; allowed: an "
                                                       "integer >= 1 or 'all'"),
    ({"config": "ok.yaml", "cores": 0}, "key 'cores' has value 0; allowed: an integer >= 1 or 'all'"),
    ({"config": "ok.yaml", "cores": True}, "key 'cores' has value True"),
    ({"config": "ok.yaml", "cors": 2}, "unknown key 'cors'; allowed keys: config, cores"),
])
def test_bad_params_are_one_line_and_start_nothing(tmp_path, capsys, monkeypatch, params, message):
    shutil.copy(CONFIG, tmp_path / "ok.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail(f"Snakemake started: {a}"))
    assert main(["dvc-stage", "data_products"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"au-ttt dvc-stage: error: params.yaml: {message}")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("mapping", [False, True], ids=["list-bomb", "mapping-bomb"])
def test_a_config_snakemake_could_not_survive_is_refused_before_it_starts(tmp_path, mapping):
    """A mapping bomb given to Snakemake with --configfile is expanded by Snakemake's own start-up merge, before
    the Snakefile runs: the stage entry refuses it (and any config the DAG would refuse) first."""
    root = tmp_path / "project"
    root.mkdir()
    bomb_config(root / "bomb.yaml", mapping=mapping)
    (root / "params.yaml").write_text(yaml.safe_dump({"config": "bomb.yaml", "cores": "all"}))
    record = tmp_path / "record.json"
    result = run_stage("au-ttt dvc-stage experiments", root, recorder(tmp_path / "shims"), record)
    assert result.returncode == 2
    assert result.stderr.startswith("au-ttt dvc-stage: error: bomb.yaml: expands to more than 100,000 YAML values")
    assert not record.exists()
