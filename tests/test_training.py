"""Training loop: learns, resumes after kill -9 to identical metrics, DDP replicas agree."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from conftest import REPO

from au_ttt.settings import load_settings
from au_ttt.train.loop import RunSpec, train_run

RUNNER = """
import sys
from dataclasses import replace
sys.path.insert(0, {tests!r})
from toydata import ToyAUDataset
from au_ttt.settings import load_settings
from au_ttt.train.loop import RunSpec, train_run
s = load_settings({config!r})
s = replace(s, train=replace(s.train, epochs=4, batch_size=16, num_workers=0, lr=1e-3, warmup_epochs=0.5, threads=1))
train_run(s, RunSpec("bp4d", 3), ToyAUDataset(96, 0), ToyAUDataset(48, 1), {out!r}, device="cpu",
          resume={resume}, progress=False)
"""


def _settings(epochs=4):
    s = load_settings(REPO / "config/config.yaml")
    return replace(s, train=replace(s.train, epochs=epochs, batch_size=16, num_workers=0, lr=1e-3,
                                    warmup_epochs=0.5, threads=1))


def _run_script(out, resume: bool) -> subprocess.Popen:
    code = RUNNER.format(tests=str(REPO / "tests"), config=str(REPO / "config/config.yaml"), out=str(out),
                         resume=resume)
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_training_learns_and_writes_the_run_directory(tmp_path):
    from toydata import ToyAUDataset

    metrics = train_run(_settings(4), RunSpec("bp4d", 3), ToyAUDataset(96, 0), ToyAUDataset(48, 1), tmp_path,
                        device="cpu", progress=False)
    assert metrics["f1_mean"] > metrics["all_positive_f1_mean"] + 0.1
    assert metrics["epoch_policy"] == "last epoch"
    for name in ("checkpoint.pt", "model.safetensors", "metrics.json", "history.json", "predictions.parquet",
                 "curves.png", "run.json"):
        assert (tmp_path / name).is_file(), name
    assert len(json.loads((tmp_path / "history.json").read_text())) == 4


@pytest.mark.slow
def test_resume_after_kill_reaches_identical_metrics(tmp_path):
    reference = tmp_path / "reference"
    ref = _run_script(reference, resume=False)
    assert ref.wait(timeout=300) == 0, ref.stderr.read()

    killed = tmp_path / "killed"
    proc = _run_script(killed, resume=False)
    deadline = time.time() + 240
    while not (killed / "checkpoint.pt").exists():      # wait for epoch 1's checkpoint, then kill mid-epoch 2
        assert time.time() < deadline and proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before the kill; nothing was tested"
    resumed = _run_script(killed, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["f1"] == b["f1"] and a["f1_mean"] == b["f1_mean"]
    ha = json.loads((reference / "history.json").read_text())
    hb = json.loads((killed / "history.json").read_text())
    assert [h["train_total"] for h in ha] == [h["train_total"] for h in hb]   # bit-identical losses on CPU


@pytest.mark.slow
def test_ddp_two_processes_agree_on_weights(tmp_path):
    from au_ttt.train.pretrain import write_digits_imagefolder

    write_digits_imagefolder(tmp_path / "digits", size=32)
    cfg = tmp_path / "pt.yaml"
    cfg.write_text(f"model: {{img_size: 32, embed_dim: 32, depth: 1, num_heads: 2}}\n"
                   f"heatmaps: {{input_size: 32, crop_size: 36, target_size: 2}}\n"
                   f"pretrain: {{data_root: {tmp_path / 'digits'}, batch_size: 16, num_workers: 0, max_steps: 2, "
                   f"auto_augment: null}}\n")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "au_ttt.cli",
                           "pretrain", "--config", str(cfg), "--out", str(tmp_path / "out")],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "pretrain.json").read_text())
    assert result["world_size"] == 2 and result["steps"] == 2
    sums = result["rank_weight_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert (tmp_path / "out" / "backbone.safetensors").is_file()
