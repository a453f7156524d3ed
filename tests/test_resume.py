"""The run key and resume: a checkpoint is resumed only when nothing that determines the result changed —
refused after a heatmap setting change, a changed crop file, a different pretrained file and a code change,
each named — and a resume that is accepted gives the uninterrupted run's result bit for bit. A NaN loss
stops a run without a final model; corrupt checkpoints and records are clear errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from runkit import SPEC, toy_inputs, toy_key, toy_settings
from safetensors.torch import load_file
from toydata import ToyAUDataset

from au_ttt.errors import InputError
from au_ttt.model.au_ttt import AUTTT, save_weights
from au_ttt.train import loop, runkey
from au_ttt.train.cross import load_run
from au_ttt.train.loop import FINAL_OUTPUTS, plan_resume, train_run
from au_ttt.train.recipe import NonFiniteLoss
from au_ttt.train.records import FoldMetrics, RunInfo
from au_ttt.train.runkey import source_digest, tree_digest
from au_ttt.train.tracking import RunLogger, TrackingConfig
from au_ttt.train.weights import weights_kind

EPOCHS = 3


def _data():
    return ToyAUDataset(64, 0), ToyAUDataset(32, 1)


def _backbone(path: Path, seed: int) -> Path:
    """A pretrained backbone as `au-ttt pretrain` writes it (no RoI branch, 10-class head)."""
    settings = toy_settings()
    torch.manual_seed(seed)
    return save_weights(AUTTT(replace(settings.model, au_roi=False), 10), path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs, two pretrained files, an uninterrupted run and a run stopped after epoch 2 of the same key."""
    root = tmp_path_factory.mktemp("resume")
    inputs = toy_inputs(root / "inputs")
    pre_a, pre_b = _backbone(root / "a.safetensors", 1), _backbone(root / "b.safetensors", 2)
    settings = toy_settings(EPOCHS, pretrained=str(pre_a))
    key = toy_key(settings, root / "inputs")
    full = train_run(settings, SPEC, *_data(), root / "full", key=key, device="cpu", progress=False)
    stopped = train_run(settings, SPEC, *_data(), root / "stopped", key=key, device="cpu", progress=False,
                        stop_after_epoch=2)
    assert full is not None and stopped is None
    return {"root": root, "inputs": inputs, "settings": settings, "key": key, "pre_b": pre_b}


def _copy_stopped(world, name: str) -> Path:
    out = world["root"] / name
    shutil.copytree(world["root"] / "stopped", out)
    return out


def _count_epochs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = loop._train_epoch

    def counting(*args, **kwargs):
        calls.append(args[4])  # epoch index
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", counting)
    return calls


def test_tree_digest_is_content_not_metadata(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    assert tree_digest(f) == hashlib.sha256(b"abc").hexdigest()
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "x.jpg").write_bytes(b"xx")
    (d / "sub" / "y.jpg").write_bytes(b"y")
    expected = hashlib.sha256(b"sub/y.jpg\x001\x00y" + b"x.jpg\x002\x00xx").hexdigest()  # sorted relative paths
    assert tree_digest(d) == expected
    os.utime(d / "x.jpg", (1, 1))
    (d / ".x.jpg.123.tmp").write_bytes(b"half-written")  # an interrupted writer's temporary is not content
    assert tree_digest(d) == expected
    (d / "x.jpg").write_bytes(b"xy")
    assert tree_digest(d) != expected
    (d / "x.jpg").write_bytes(b"xx")
    (d / "sub" / "y.jpg").rename(d / "sub" / "z.jpg")
    assert tree_digest(d) != expected
    with pytest.raises(InputError, match="nope: not found"):
        tree_digest(tmp_path / "nope")


def test_source_digest_hashes_the_real_package(tmp_path):
    files = sorted((p.relative_to(runkey.PACKAGE_ROOT).as_posix(), p) for p in runkey.PACKAGE_ROOT.rglob("*.py")
                   if "__pycache__" not in p.parts)
    assert any(rel == "train/runkey.py" for rel, _ in files)
    h = hashlib.sha256()
    for rel, p in files:
        data = p.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode() + data)
    assert source_digest() == h.hexdigest()
    copy = tmp_path / "au_ttt"
    shutil.copytree(runkey.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy) == source_digest()
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# an edit\n")
    assert source_digest(copy) != source_digest()


def test_key_components_and_what_is_left_out(world, tmp_path):
    settings, key, inputs = world["settings"], world["key"], world["inputs"]
    assert set(key.components) == {"config.model", "config.loss", "config.train", "config.heatmaps", "spec", "index",
                                   "crops", "heatmaps", "pretrained", "code"}
    assert key.components["pretrained"] == tree_digest(settings.train.pretrained)
    same = replace(settings, train=replace(settings.train, num_workers=3, threads=2))
    assert toy_key(same, world["root"] / "inputs").digest == key.digest  # cannot change the result
    moved = tmp_path / "elsewhere.safetensors"
    shutil.copy(settings.train.pretrained, moved)
    renamed = replace(settings, train=replace(settings.train, pretrained=str(moved)))
    assert toy_key(renamed, world["root"] / "inputs").digest == key.digest  # content, not path
    lr = replace(settings, train=replace(settings.train, lr=2e-3))
    assert toy_key(lr, world["root"] / "inputs").changes(key.components) == ["config section 'train'"]
    variant = toy_key(settings, world["root"] / "inputs", spec=replace(SPEC, variant="msp"))
    assert "config section 'model'" in variant.changes(key.components)
    assert inputs["index"].is_file()


def test_resume_refused_after_each_change(world, monkeypatch, caplog):
    settings, root = world["settings"], world["root"]
    heat = replace(settings, heatmaps=replace(settings.heatmaps, sigma_frac=0.2))
    cases = {"heatmap setting": (heat, {}, "config section 'heatmaps'"),
             "pretrained file": (replace(settings, train=replace(settings.train, pretrained=str(world["pre_b"]))), {},
                                 "pretrained weights file")}
    crops = root / "crops-edited"
    shutil.copytree(world["inputs"]["crops"], crops)
    (crops / "images" / "F001" / "1.jpg").write_bytes(b"\x01" * 99 + b"\x02")  # one byte of one crop
    cases["crop file"] = (settings, {"crops": crops}, "crop store content")
    code = root / "au_ttt-edited"
    shutil.copytree(runkey.PACKAGE_ROOT, code, ignore=shutil.ignore_patterns("__pycache__"))
    (code / "losses.py").write_text((code / "losses.py").read_text().replace("LOG_EPS = 1e-8", "LOG_EPS = 1e-7"))
    stored = torch.load(root / "stopped" / "checkpoint.pt", weights_only=True)["run_key"]
    assert stored["digest"] == world["key"].digest
    for name, (changed, overrides, component) in cases.items():
        key = toy_key(changed, root / "inputs", **overrides)
        plan = plan_resume(root / "stopped", key, resume=True)
        assert not plan.resumed, name
        assert plan.message.startswith(f"not resuming {root / 'stopped' / 'checkpoint.pt'}: {component} changed"), name
    monkeypatch.setattr(runkey, "PACKAGE_ROOT", code)  # the code-change case: the digest reads the edited copy
    plan = plan_resume(root / "stopped", toy_key(settings, root / "inputs"), resume=True)
    assert not plan.resumed and "au_ttt source code changed" in plan.message
    monkeypatch.undo()

    # a refused plan really trains from epoch 1, and says why in the log
    out = _copy_stopped(world, "refused")
    epochs = _count_epochs(monkeypatch)
    key = toy_key(heat, root / "inputs")
    with caplog.at_level("INFO", logger="au_ttt.train.loop"):
        train_run(heat, SPEC, *_data(), out, key=key, device="cpu", progress=False,
                  plan=plan_resume(out, key, resume=True))
    assert epochs == [0, 1, 2]
    assert "config section 'heatmaps' changed since it was written; training from the start" in caplog.text
    assert RunInfo.read(out).run_key == key.digest != world["key"].digest


def test_resume_accepted_is_bit_identical(world, monkeypatch):
    root, settings, key = world["root"], world["settings"], world["key"]
    out = _copy_stopped(world, "resumed")
    plan = plan_resume(out, toy_key(settings, root / "inputs"), resume=True)
    assert plan.resumed and plan.message.startswith("resuming after epoch 2")
    epochs = _count_epochs(monkeypatch)
    train_run(settings, SPEC, *_data(), out, key=key, device="cpu", progress=False, plan=plan)
    assert epochs == [2]  # only the missing epoch was trained
    full = root / "full"
    assert (out / "metrics.json").read_bytes() == (full / "metrics.json").read_bytes()
    a, b = load_file(full / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet"),
                                  pd.read_parquet(full / "predictions.parquet"))
    losses = [[h["train_total"] for h in json.loads((d / "history.json").read_text())] for d in (full, out)]
    assert losses[0] == losses[1] and len(losses[0]) == EPOCHS
    assert FoldMetrics.read(out).run_key == key.digest


class _PoisonedAfter(ToyAUDataset):
    """Images turn to NaN after ``clean`` reads: a defect in the inputs that appears in epoch 2."""

    def __init__(self, clean: int, *args):
        super().__init__(*args)
        self.clean, self.reads = clean, 0

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        item = super().__getitem__(i)
        if self.reads > self.clean:
            item["image"] = torch.full_like(item["image"], float("nan"))
        return item


def test_non_finite_loss_stops_without_final_model(world, tmp_path):
    settings = toy_settings(EPOCHS)
    out = tmp_path / "nan"
    out.mkdir()
    (out / "metrics.json").write_text('{"f1_mean": 0.9}')  # an older run's result must not survive
    key = toy_key(settings, world["root"] / "inputs")
    with pytest.raises(NonFiniteLoss) as err, \
            RunLogger(TrackingConfig(enabled=False), out, run_name=SPEC.name) as tracker:
        train_run(settings, SPEC, _PoisonedAfter(64, 64, 0), ToyAUDataset(32, 1), out, key=key, device="cpu",
                  progress=False, tracker=tracker)
    message = str(err.value)
    assert message.startswith("bp4d-test3-model epoch 2, step 5: the training loss is not finite (mdwa nan")
    assert "lower train.lr (now 0.001), or check the inputs" in message and "\n" not in message
    assert message.endswith(f"the last good checkpoint is {out / 'checkpoint.pt'} (epoch 1)")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 0
    assert not [n for n in FINAL_OUTPUTS if (out / n).exists()]
    record = json.loads((out / "tracking.json").read_text())
    assert record["status"] == "FAILED" and [s for s, *_ in record["metrics"]["train_total"]] == [1]


def test_overflowing_learning_rate_is_caught_before_the_weights(world, tmp_path):
    """lr 1e12 passes config validation (finite, > 0) but blows the model up: stopped, no checkpoint, no model."""
    settings = toy_settings(EPOCHS, lr=1e12, min_lr=0.0)
    with pytest.raises(NonFiniteLoss, match=r"epoch 1, step \d+: the (training loss is not finite|gradient norm is) .*"
                                            r"lower train.lr \(now 1e\+12\).*no checkpoint was written$"):
        train_run(settings, SPEC, *_data(), tmp_path, key=toy_key(settings, world["root"] / "inputs"), device="cpu",
                  progress=False)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "model.safetensors").exists()


def test_corrupt_files_are_clear_errors(world, tmp_path):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    good = (world["root"] / "stopped" / "checkpoint.pt").read_bytes()
    for damage in (good[: len(good) // 2], b"not a checkpoint"):
        ckpt.write_bytes(damage)
        with pytest.raises(InputError, match=f"{ckpt}: not a readable checkpoint .*delete it to train this run"):
            plan_resume(ckpt.parent, world["key"], resume=True)
    torch.save({"model": {}}, ckpt)
    with pytest.raises(InputError, match=r"not an `au-ttt train` checkpoint of this version \(missing optimizer"):
        plan_resume(ckpt.parent, world["key"], resume=True)

    run = tmp_path / "finished"
    shutil.copytree(world["root"] / "full", run)
    (run / "run.json").write_text('{"spec": {"dataset": "bp4d"')
    with pytest.raises(InputError, match=f"{run / 'run.json'}: not valid JSON"):
        load_run(run)
    (run / "run.json").write_text(json.dumps({"spec": {"dataset": "bp4d", "test_part": "three"}}))
    with pytest.raises(InputError, match=f"{run / 'run.json'}: key 'spec.test_part' has value 'three'"):
        load_run(run)
    shutil.copy(world["root"] / "full" / "run.json", run / "run.json")
    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(weights[:100])
    with pytest.raises(InputError, match=r"model\.safetensors: not a readable safetensors file"):
        load_run(run)
    bad = tmp_path / "pre.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(InputError, match=r"pre\.safetensors: not a readable safetensors file"):
        weights_kind(bad)
    assert weights_kind(world["pre_b"]) == "au_ttt"
