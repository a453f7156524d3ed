"""Training: learns, resumes after an external kill -9 to identical weights, DDP through the 127.0.0.1-only
launcher agrees across processes, and the train/pretrain config refuses bad numbers with clear messages."""

import ipaddress
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from runkit import SPEC, descendants, listening_sockets, state, toy_key, toy_settings, wait_for
from safetensors.torch import load_file

from au_ttt.config import ConfigError
from au_ttt.settings import load_settings
from au_ttt.train.loop import train_run
from au_ttt.train.runtime import ENV_STOP_AT, torchrun_command

RUNNER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from runkit import SPEC, toy_key, toy_settings
from toydata import ToyAUDataset
from au_ttt.train.loop import plan_resume, train_run
s = toy_settings(4)
key = toy_key(s, Path({inputs!r}))
train_run(s, SPEC, ToyAUDataset(96, 0), ToyAUDataset(48, 1), {out!r}, device="cpu", key=key,
          plan=plan_resume({out!r}, key, {resume}), progress=False)
"""


def _run_script(out, inputs, resume: bool, stop_at: str | None = None) -> subprocess.Popen:
    code = RUNNER.format(tests=str(REPO / "tests"), inputs=str(inputs), out=str(out), resume=resume)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(ENV_STOP_AT, None)
    if stop_at:
        env[ENV_STOP_AT] = stop_at   # the run stops itself (SIGSTOP) exactly there
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_training_learns_and_writes_the_run_directory(tmp_path):
    from toydata import ToyAUDataset

    settings = toy_settings(4)
    metrics = train_run(settings, SPEC, ToyAUDataset(96, 0), ToyAUDataset(48, 1), tmp_path / "run",
                        key=toy_key(settings, tmp_path / "inputs"), device="cpu", progress=False)
    assert metrics.f1_mean > metrics.all_positive_f1_mean + 0.1
    assert metrics.epoch_policy == "last epoch"
    for name in ("checkpoint.pt", "model.safetensors", "metrics.json", "history.json", "predictions.parquet",
                 "curves.png", "run.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 4
    from au_ttt.tables.uncertainty import read_counts  # the tables read these predictions: subjects, same F1

    assert read_counts(tmp_path / "run", metrics.aus, metrics.f1, "-").subjects == ("T0", "T1", "T2", "T3")


@pytest.mark.slow
def test_resume_after_kill_reaches_identical_metrics(tmp_path):
    inputs = tmp_path / "inputs"
    reference = tmp_path / "reference"
    ref = _run_script(reference, inputs, resume=False)
    assert ref.wait(timeout=300) == 0, ref.stderr.read()

    killed = tmp_path / "killed"
    proc = _run_script(killed, inputs, resume=False, stop_at="epoch2.step3")   # after epoch 1's checkpoint

    def stopped() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"training ended before it stopped at epoch2.step3: {proc.stderr.read()[-2000:]}")
        return state(proc.pid) == "T"

    wait_for(stopped, 300, "the training run to stop at epoch2.step3", poll=0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before the kill; nothing was tested"
    resumed = _run_script(killed, inputs, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a == b
    ha = json.loads((reference / "history.json").read_text())
    hb = json.loads((killed / "history.json").read_text())
    assert [h["train_total"] for h in ha] == [h["train_total"] for h in hb]   # bit-identical losses on CPU
    wa, wb = load_file(reference / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def test_socket_inspection_tells_loopback_from_all_interfaces():
    """The checker of the DDP test reads the kernel's tables right (IPv4 and IPv6, wildcard and loopback)."""
    import socket

    made = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen()
        made.append((host, sock.getsockname()[1], sock))
    try:
        seen = set(listening_sockets([os.getpid()]))
        assert {(host, port) for host, port, _ in made} <= seen
        assert [_loopback(h) for h, _, _ in made] == [True, False, False]
    finally:
        for *_, sock in made:
            sock.close()


def test_torchrun_command_binds_only_loopback(tmp_path):
    cmd = torchrun_command(4, ["pretrain", "--out", "dir with space"], tmp_path)
    assert cmd[0] == "env" and "GLOO_SOCKET_IFNAME=lo" in cmd and "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in cmd
    args = cmd[cmd.index("-m") + 1:]
    assert args[:2] == ["torch.distributed.run", "--nnodes"]
    flags = dict(zip(args[1:-3:2], args[2:-3:2], strict=True))
    assert flags["--nproc-per-node"] == "4" and flags["--local-addr"] == "127.0.0.1"
    assert flags["--rdzv-conf"] == "store_type=file" and flags["--rdzv-endpoint"].startswith(str(tmp_path))
    assert cmd[-3:] == ["pretrain", "--out", "dir with space"]  # a list: no shell splitting of values


@pytest.mark.slow
def test_ddp_two_processes_agree_and_listen_only_on_loopback(tmp_path):
    """`au-ttt pretrain --nproc 2` (gloo): both ranks stop themselves at step 1, every listening socket of the
    job is inspected (/proc/net/tcp{,6}), then they continue and must end with identical weights."""
    from au_ttt.train.pretrain import write_digits_imagefolder

    write_digits_imagefolder(tmp_path / "digits", size=32)
    cfg = tmp_path / "pt.yaml"
    cfg.write_text(f"model: {{img_size: 32, embed_dim: 32, depth: 1, num_heads: 2}}\n"
                   f"heatmaps: {{input_size: 32, crop_size: 36, target_size: 2}}\n"
                   f"pretrain: {{data_root: {tmp_path / 'digits'}, batch_size: 16, num_workers: 0, max_steps: 2, "
                   f"auto_augment: null}}\n")
    exe = os.path.join(os.path.dirname(sys.executable), "au-ttt")
    proc = subprocess.Popen([exe, "pretrain", "--nproc", "2", "--device", "cpu", "--config", str(cfg), "--out",
                             str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", ENV_STOP_AT: "pretrain.step1"})

    def stopped_ranks() -> list[int] | None:
        if proc.poll() is not None:
            pytest.fail(f"pretraining ended before step 1: {proc.stdout.read()[-3000:]}")
        ranks = [p for p in descendants(proc.pid) if state(p) == "T"]
        return ranks if len(ranks) == 2 else None

    try:
        stopped = wait_for(stopped_ranks, 300, "both ranks to stop themselves at step 1", poll=0.2)
        sockets = listening_sockets([proc.pid, *descendants(proc.pid)])
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        pids = descendants(proc.pid)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()  # its torchrun and workers die with it (PR_SET_PDEATHSIG)
    assert proc.returncode == 0, out[-3000:]
    assert sockets, "no listening socket seen: the check would be vacuous"  # gloo peers listen
    assert all(_loopback(addr) for addr, _ in sockets), f"listening beyond 127.0.0.1: {sockets}"
    result = json.loads((tmp_path / "out" / "pretrain.json").read_text())
    assert result["world_size"] == 2 and result["steps"] == 2
    sums = result["rank_weight_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert (tmp_path / "out" / "backbone.safetensors").is_file()
    assert "world size 2" in out
    assert not [p for p in pids if state(p) is not None]  # the launcher left no process behind


@pytest.mark.parametrize(("text", "message"), [
    ("lr: .inf", "key 'train.lr' has value inf; allowed: a finite number"),
    ("grad_clip: .nan", "key 'train.grad_clip' has value nan; allowed: a finite number"),
    ("epochs: 1e29", "key 'train.epochs' has value '1e29'; allowed: an integer"),
    ("epochs: 1.0e+29", "key 'train.epochs' has value 1e+29; allowed: an integer"),
    ("epochs: 100001", "section 'train': epochs must be in 1..100000, got 100001"),
    ("batch_size: 0", "section 'train': batch_size must be >= 1, got 0"),
    ("lr: -1", "section 'train': lr must be > 0, got -1"),
    ("lr: 0", "section 'train': lr must be > 0, got 0"),
    ("grad_clip: -1", "section 'train': grad_clip must be >= 0, got -1"),
    ("num_workers: -1", "section 'train': num_workers must be in 0..1024, got -1"),
    ("warmup_epochs: 50", "section 'train': warmup_epochs must be in 0..20, got 50"),
    ("min_lr: 1.0", "section 'train': min_lr must be in 0..0.0001, got 1"),
    ("{lr: 1.0, weight_decay: -0.1, seed: -3}",
     "weight_decay must be >= 0, got -0.1; seed must be in 0..4.29497e+09, got -3"),
])
def test_train_config_numbers_get_clear_answers(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    body = text.strip("{}").replace(", ", "\n  ")
    path.write_text(f"train:\n  {body}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_yaml_floats_and_pretrain_source(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 2e-3\n  min_lr: 1e-6\npretrain:\n  lr: 5e-4\n  source: none\n")
    s = load_settings(path)
    assert (s.train.lr, s.train.min_lr, s.pretrain.lr, s.pretrain.source) == (0.002, 1e-6, 5e-4, "none")
    path.write_text("pretrain:\n  source: timm_checkpoint\n")
    with pytest.raises(ConfigError, match="source is 'timm_checkpoint' but checkpoint is not set"):
        load_settings(path)
    path.write_text("pretrain:\n  source: timm\n")
    with pytest.raises(ConfigError, match=r"'pretrain\.source' has value 'timm'; allowed: one of "
                                          r"'imagenet', 'timm_checkpoint', 'none'"):
        load_settings(path)
    path.write_text("pretrain:\n  source: timm_checkpoint\n  checkpoint: /w/vit_small.safetensors\n"
                    "  epochs: 0\n")
    with pytest.raises(ConfigError, match=r"section 'pretrain': epochs must be in 1\.\.100000, got 0"):
        load_settings(path)
    path.write_text("loss:\n  margin: 1.5\n")
    with pytest.raises(ConfigError, match=r"margin must be 'auto' or a probability margin in \[0, 1\), got 1.5"):
        load_settings(path)


def test_pretraining_stops_on_a_non_finite_loss(tmp_path, capsys):
    """The shared recipe's guard in pretraining: exit 2, one line, and no backbone (not even an older one)."""
    from au_ttt.cli import main
    from au_ttt.train.pretrain import write_digits_imagefolder

    write_digits_imagefolder(tmp_path / "digits", size=32, val_fraction=0.5)
    cfg = tmp_path / "pt.yaml"
    cfg.write_text(f"model: {{img_size: 32, embed_dim: 32, depth: 1, num_heads: 2}}\n"
                   f"heatmaps: {{input_size: 32, crop_size: 36, target_size: 2}}\n"
                   f"pretrain: {{data_root: {tmp_path / 'digits'}, batch_size: 64, num_workers: 0, max_steps: 6, "
                   f"auto_augment: null, lr: 1e12, warmup_epochs: 0, mixup: 0, cutmix: 0}}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "backbone.safetensors").write_bytes(b"an older backbone")
    capsys.readouterr()
    assert main(["pretrain", "--config", str(cfg), "--out", str(out), "--device", "cpu"]) == 2
    (err,) = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "error" in line]
    assert err.startswith("au-ttt pretrain: error: pretraining epoch 1, step ")  # one line (above: the progress bar)
    assert err.endswith("lower pretrain.lr (now 1e+12), or check the inputs")
    assert list(out.iterdir()) == []
