"""A bundle record is checked against its weights before anything is allocated, and names only its own files.

The edited records keep the weights file and its checksum, so only the new checks can refuse them. The
loads that could allocate run in a subprocess under an address-space limit (RLIMIT_AS), so a regression
fails with a MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image
from predict_support import make_run

from au_ttt.cli import main
from au_ttt.predict import samples

EXE = Path(sys.executable).with_name("au-ttt")
# `au-ttt predict` of the test bundle runs under 5 GiB of address space (measured: fails under 4 GiB, imports
# included); the huge configs below need 20-30 GiB.
MEMORY_GUARD = 6 << 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny run (config/config.yaml: 64 px, embed_dim 64, depth 2), its bundle and one photo."""
    tmp = tmp_path_factory.mktemp("bundle-guard")
    run = make_run(tmp / "run", REPO / "config/config.yaml")
    assert main(["export", str(run), "--out", str(tmp / "bundle")]) == 0
    photo = tmp / "face.png"
    Image.fromarray(samples.astronaut()).save(photo)
    return {"tmp": tmp, "bundle": tmp / "bundle", "photo": photo}


def _edited(exported, dst: Path, edit) -> Path:
    """A copy of the bundle whose bundle.json went through ``edit(record, folder)``."""
    shutil.copytree(exported["bundle"], dst)
    rec = json.loads((dst / "bundle.json").read_text())
    edit(rec, dst)
    (dst / "bundle.json").write_text(json.dumps(rec))
    return dst


def _guarded_predict(exported, model: Path, out: Path) -> subprocess.CompletedProcess:
    def guard() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_GUARD, MEMORY_GUARD))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(EXE), "predict", str(exported["photo"]), "--model", str(model), "--out", str(out),
                           "--device", "cpu", "--no-progress"], preexec_fn=guard, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize(("model", "message"), [
    ({"depth": 1_000_000_000}, "depth must be in [1, 192], got 1000000000"),
    ({"embed_dim": 1_000_000_000}, "embed_dim must be in [1, 8192], got 1000000000"),
    # within every bound, ~8e9 parameters (31 GB): only the header check stops it before the allocation
    ({"embed_dim": 2048, "num_heads": 16, "depth": 90},
     "key 'cls_token' has shape [1, 1, 64] in model.safetensors, [1, 1, 2048] from the config"),
])
def test_huge_model_config_is_refused_before_allocation(exported, tmp_path, model, message):
    bad = _edited(exported, tmp_path / "bad", lambda rec, _: rec["model"].update(model))
    res = _guarded_predict(exported, bad, tmp_path / "out")
    assert res.returncode == 2, res.stderr[-3000:]
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"au-ttt predict: error: {bad / 'bundle.json'}: ") and message in err
    assert not (tmp_path / "out").exists()


def test_header_check_lists_missing_and_extra_keys(exported, tmp_path, capsys):
    bad = _edited(exported, tmp_path / "bad", lambda rec, _: rec["model"].update(depth=3))
    assert main(["predict", str(exported["photo"]), "--model", str(bad), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not match its weights (model.safetensors lacks 40 key(s) the config implies, first 'blocks.2." in err


def _point_weights_at(target: Path):
    """An edit that names ``target`` (relative to the bundle folder, or absolute) with its true checksum."""
    def edit(rec: dict, folder: Path) -> None:
        path = target if target.is_absolute() else folder / target
        rec["weights"]["file"] = str(target)
        rec["weights"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return edit


def _in_subfolder(outside: Path):
    def edit(rec: dict, folder: Path) -> None:
        (folder / "sub").mkdir()
        shutil.copyfile(outside, folder / "sub" / "model.safetensors")
        _point_weights_at(Path("sub") / "model.safetensors")(rec, folder)
    return edit


def _via_symlink(outside: Path):
    def edit(rec: dict, folder: Path) -> None:
        (folder / "link.safetensors").symlink_to(outside)
        _point_weights_at(Path("link.safetensors"))(rec, folder)
    return edit


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "subfolder", "symlink"])
def test_weights_file_must_stay_inside_the_bundle(exported, tmp_path, capsys, kind):
    outside = tmp_path / "elsewhere.safetensors"   # the bundle's own weights: they would load without the check
    shutil.copyfile(exported["bundle"] / "model.safetensors", outside)
    edit = {"absolute": lambda: _point_weights_at(outside),
            "dotdot": lambda: _point_weights_at(Path("..") / outside.name),
            "subfolder": lambda: _in_subfolder(outside),
            "symlink": lambda: _via_symlink(outside)}[kind]()
    bad = _edited(exported, tmp_path / "bad", edit)
    assert main(["predict", str(exported["photo"]), "--model", str(bad), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"au-ttt predict: error: {bad / 'bundle.json'}: weights.file ") and "\n" not in err
    assert "inside the bundle folder" in err
    assert not (tmp_path / "out").exists()


def test_etc_passwd_is_not_opened(exported, tmp_path, capsys):
    passwd = Path("/etc/passwd")
    bad = _edited(exported, tmp_path / "bad", _point_weights_at(passwd))
    assert main(["predict", str(exported["photo"]), "--model", str(bad), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "weights.file '/etc/passwd' must be the name of a file inside the bundle folder" in err
