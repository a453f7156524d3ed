"""GPU-slot allocator: exclusive devices across processes, waiting, pre-set devices, CPU fallback, crashes;
and the one device policy built on it (au_ttt.train.runtime)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from au_ttt.errors import InputError
from au_ttt.train.gpu_slots import GpuSlotTimeout, acquire_gpu, acquire_gpus, discover_pool

# A job: take a slot of a fake pool of 4, record what it saw, hold for HOLD_S, release.
WORKER = """
import json, os, sys, time
from au_ttt.train.gpu_slots import acquire_gpu
lock_dir, out, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
with acquire_gpu(pool=["0", "1", "2", "3"], lock_dir=lock_dir, timeout=30, poll=0.02) as slot:
    start = time.time()
    open(out + ".held", "w").write(slot.device)
    seen = os.environ["CUDA_VISIBLE_DEVICES"], os.environ["CUDA_DEVICE_ORDER"]
    time.sleep(hold)
    end = time.time()
json.dump({"id": slot.device, "start": start, "end": end, "cvd": seen[0], "order": seen[1]}, open(out, "w"))
"""

HOLDER = """
import sys, time
from au_ttt.train.gpu_slots import acquire_gpu
slot = acquire_gpu(pool=["0"], lock_dir=sys.argv[1], timeout=10, poll=0.02)
open(sys.argv[2], "w").write(slot.device)
time.sleep(60)
"""


def _wait_for(paths: list[Path], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() and p.stat().st_size > 0 for p in paths):
        assert time.monotonic() < deadline, f"workers did not report: {[p for p in paths if not p.exists()]}"
        time.sleep(0.02)


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    return monkeypatch


def test_four_processes_get_distinct_devices_and_fifth_waits(tmp_path, clean_env):
    hold = 1.5
    outs = [tmp_path / f"w{i}.json" for i in range(5)]
    locks = tmp_path / "locks"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(locks), str(o), str(hold)], env=env)
             for o in outs[:4]]
    # the 5th starts while all four hold a device (each reported it, each holds for `hold` seconds)
    _wait_for([Path(f"{o}.held") for o in outs[:4]])
    launched = time.time()
    procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(locks), str(outs[4]), "0.1"], env=env))
    assert [p.wait(timeout=60) for p in procs] == [0] * 5
    rec = [json.loads(o.read_text()) for o in outs]

    assert {r["id"] for r in rec[:4]} == {"0", "1", "2", "3"}  # four holders, four different devices
    assert all(r["cvd"] == r["id"] and r["order"] == "PCI_BUS_ID" for r in rec)
    # never the same device twice at the same time
    for i, a in enumerate(rec):
        for b in rec[i + 1:]:
            if a["id"] == b["id"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)
    # the fifth got its device only after that device's first holder released it
    assert launched < min(r["end"] for r in rec[:4])  # so it really had to wait
    first = next(r for r in rec[:4] if r["id"] == rec[4]["id"])
    assert rec[4]["start"] >= first["end"]
    assert rec[4]["start"] >= min(r["end"] for r in rec[:4])


def test_in_process_exclusive_and_timeout_message(tmp_path, clean_env):
    a = acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=1, poll=0.01)
    b = acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=1, poll=0.01)
    assert {a.device, b.device} == {"5", "7"}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == b.device
    t0 = time.monotonic()
    with pytest.raises(GpuSlotTimeout, match=r"no free GPU slot among \['5', '7'\].*pid=\d+"):
        acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=0.3, poll=0.05)
    assert time.monotonic() - t0 >= 0.25  # it waited for the timeout (no upper bound: speed is not tested)
    b.release()
    b.release()  # idempotent
    assert os.environ["CUDA_VISIBLE_DEVICES"] == a.device  # b restored what it found: a's value
    with acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=1) as c:
        assert c.device == b.device and c.tags() == {"gpu.physical_id": b.device, "gpu.slot_source": "lock"}
    a.release()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and "CUDA_DEVICE_ORDER" not in os.environ


def test_preset_single_device_is_kept_without_lock(tmp_path, clean_env):
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "3")
    with acquire_gpu(lock_dir=tmp_path) as slot, acquire_gpu(lock_dir=tmp_path) as again:
        assert slot.device == again.device == "3" and slot.source == "preset"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert list(tmp_path.iterdir()) == []  # Slurm gave the job this device: nothing to lock
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_preset_list_is_the_pool(tmp_path, clean_env):
    preset = "GPU-aa:bb, 6"
    clean_env.setenv("CUDA_VISIBLE_DEVICES", preset)
    assert discover_pool() == ["GPU-aa:bb", "6"]
    a = acquire_gpu(lock_dir=tmp_path, timeout=1, poll=0.01)
    # inside the job (and in its subprocesses) the chosen device is now the single pre-set one: kept
    assert acquire_gpu(lock_dir=tmp_path).device == a.device
    clean_env.setenv("CUDA_VISIBLE_DEVICES", preset)  # a second job started with the scheduler's list
    b = acquire_gpu(lock_dir=tmp_path, timeout=1, poll=0.01)
    assert {a.device, b.device} == {"GPU-aa:bb", "6"} and os.environ["CUDA_VISIBLE_DEVICES"] == b.device
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == ["au_ttt-gpu-6.lock", "au_ttt-gpu-GPU-aa_bb.lock"]
    b.release()
    a.release()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == preset  # restored
    clean_env.setenv("SLURM_JOB_ID", "42")  # Slurm renumbers per job: locks are namespaced by job
    with acquire_gpu(lock_dir=tmp_path, timeout=1) as c:
        assert c.lock_path.name.startswith("au_ttt-gpu-slurm42-")


def test_no_gpu_falls_back_to_cpu_with_warning(tmp_path, clean_env, caplog):
    clean_env.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert discover_pool() == []
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.gpu_slots"):
        slot = acquire_gpu(lock_dir=tmp_path / "locks")
    assert slot.is_cpu and slot.device is None and slot.tags()["gpu.physical_id"] == "none"
    assert "running on CPU" in caplog.text
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "")  # explicitly hidden GPUs are "no GPU" too
    assert discover_pool() == [] and acquire_gpu().is_cpu


def test_pool_from_nvidia_smi(tmp_path, clean_env):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 3\n"
                    "echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'\necho '  MIG 1g.10gb Device 0: (UUID: MIG-1)'\n"
                    "echo 'GPU 1: NVIDIA H100 (UUID: GPU-2)'\n")
    fake.chmod(0o755)
    clean_env.setenv("PATH", str(tmp_path))
    assert discover_pool() == ["0", "1"]


def test_killed_holder_frees_its_slot(tmp_path, clean_env):
    marker = tmp_path / "held"
    locks = tmp_path / "locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(locks), str(marker)])
    try:
        _wait_for([marker])
        with pytest.raises(GpuSlotTimeout, match=f"pid={holder.pid}"):
            acquire_gpu(pool=["0"], lock_dir=locks, timeout=0.2, poll=0.05)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        t0 = time.monotonic()
        with acquire_gpu(pool=["0"], lock_dir=locks, timeout=5, poll=0.05) as slot:
            assert slot.device == "0"
        assert time.monotonic() - t0 < 1.0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_refuses_after_cuda_initialised(clean_env):
    class _Cuda:
        @staticmethod
        def is_initialized() -> bool:
            return True

    class _Torch:
        cuda = _Cuda

    clean_env.setitem(sys.modules, "torch", _Torch)
    with pytest.raises(RuntimeError, match=r"before any torch\.cuda use"):
        acquire_gpu(pool=["0"])


def test_acquire_several_for_a_launcher(tmp_path, clean_env, caplog):
    slots = acquire_gpus(2, pool=["0", "1", "2"], lock_dir=tmp_path, timeout=1, poll=0.01)
    assert len({s.device for s in slots}) == 2 and "CUDA_VISIBLE_DEVICES" not in os.environ  # children get them
    other = acquire_gpu(pool=["0", "1", "2"], lock_dir=tmp_path, timeout=1, poll=0.01, set_env=False)
    assert other.device not in {s.device for s in slots}  # the launcher's devices stay locked
    for slot in [*slots, other]:
        slot.release()
    with pytest.raises(InputError, match=r"4 GPUs asked for, 3 available \(0, 1, 2\)"):
        acquire_gpus(4, pool=["0", "1", "2"], lock_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        assert acquire_gpus(2, pool=[], lock_dir=tmp_path) == []
    assert "no GPU found: the 2 processes run on the CPU" in caplog.text


def test_device_policy_without_a_usable_gpu(tmp_path, clean_env, caplog):
    """A slot on a node whose driver does not work (issue: "Found no NVIDIA driver") falls back to the CPU;
    an explicit CUDA request is a clear error; nonsense is refused."""
    import torch

    from au_ttt.train import runtime

    if torch.cuda.is_available():
        pytest.skip("this checks the fallback on a machine where torch finds no CUDA device")
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.runtime"):
        assert runtime.resolve_device("auto") == torch.device("cpu")
    assert "no usable CUDA device: running on the CPU" in caplog.text
    with pytest.raises(InputError, match="--device cuda: torch finds no usable CUDA device"):
        runtime.resolve_device("cuda")
    with pytest.raises(InputError, match="--device 'gpu0': use auto, cpu, cuda or cuda:N"):
        runtime.resolve_device("gpu0")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "0")  # a scheduler gave this job GPU 0
    clean_env.setenv("AU_TTT_GPU_LOCK_DIR", str(tmp_path))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.runtime"), runtime.job_device("auto") as place:
        assert place.device == torch.device("cpu")
        assert place.tags == {"gpu.physical_id": "0", "gpu.slot_source": "preset", "device": "cpu"}
    assert "no usable CUDA device (CUDA_VISIBLE_DEVICES=0): running on the CPU" in caplog.text
