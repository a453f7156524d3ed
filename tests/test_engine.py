"""The engine from Python: a notebook trains a fold in three lines, and gets what `au-ttt train` gets.

The same fold trained through :func:`au_ttt.engine.train` and through the command (same config, same data
products) gives bit-identical metrics.json F1 values: the command is only argument parsing around the engine.
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO
from runkit import synth_bp4d

from au_ttt.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small BP4D-format SynthAU replica through index → landmarks → crops → heatmaps, and a 2-epoch config."""
    root = tmp_path_factory.mktemp("engine")
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["tracking"].update(uri_dir=str(root / "mlflow"), experiment="engine", log_model=False)
    cfg["train"].update(epochs=2, eval_every=1, num_workers=0, threads=1, batch_size=16, pretrained=None)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    d = synth_bp4d(root, config)
    return {"root": root, "config": config, "d": d}


def test_engine_trains_a_fold_from_python_like_the_command(data):
    from au_ttt import engine

    d, root = data["d"], data["root"]
    # the README's three lines
    settings = engine.load(data["config"])
    paths = engine.DataPaths(d / "index.parquet", d / "crops", d / "heatmaps")
    metrics = engine.train(settings, paths, "bp4d", 1, root / "engine-run", device="cpu", progress=False)

    assert main(["train", "--config", str(data["config"]), "--dataset", "bp4d", "--test-part", "1",
                 "--index", str(paths.index), "--crops", str(paths.crops), "--heatmaps", str(paths.heatmaps),
                 "--out", str(root / "cli-run"), "--device", "cpu", "--no-progress"]) == 0
    from_engine = json.loads((root / "engine-run/metrics.json").read_text())
    from_cli = json.loads((root / "cli-run/metrics.json").read_text())
    assert from_engine["f1"] == from_cli["f1"] and from_engine["f1_mean"] == from_cli["f1_mean"]
    assert metrics.f1 == from_engine["f1"] and metrics.run_key == from_cli["run_key"]
    assert (root / "engine-run/train.log").is_file()
    assert json.loads((root / "engine-run/tracking.json").read_text())["mlflow"]["run_id"]


def test_settings_are_typed_and_overrides_apply(data):
    from au_ttt import engine

    settings = engine.with_overrides(engine.load(data["config"]), pretrained="none", threads=3)
    assert settings.train.pretrained is None and settings.train.threads == 3


def test_engine_pretrains_like_the_command(data, tmp_path):
    """:func:`engine.pretrain` and `au-ttt pretrain` write the same backbone (same seed, same steps)."""
    from au_ttt import engine

    digits = tmp_path / "digits"
    assert main(["pretrain", "--config", str(data["config"]), "--make-digits", str(digits)]) == 0
    settings = engine.load(data["config"])
    result = engine.pretrain(settings, tmp_path / "engine", data_root=digits, max_steps=2, device="cpu")
    assert result.steps == 2 and (tmp_path / "engine/backbone.safetensors").is_file()
    assert main(["pretrain", "--config", str(data["config"]), "--out", str(tmp_path / "cli"), "--data-root",
                 str(digits), "--max-steps", "2", "--device", "cpu"]) == 0
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "engine/backbone.safetensors"), load_file(tmp_path / "cli/backbone.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
