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

# A job: take a slot of a fake pool of 4, record what it saw, hold it until the test creates OUT.release.
# OUT.waiting appears when acquire_gpu reports that every slot is busy (the job really waits).
WORKER = """
import json, logging, os, sys, time
from pathlib import Path
from au_ttt.train.gpu_slots import acquire_gpu, logger

lock_dir, out = sys.argv[1], sys.argv[2]

class Waiting(logging.Handler):
    def emit(self, record):
        if "slots busy" in record.getMessage():
            Path(out + ".waiting").write_text("1")

logger.addHandler(Waiting())
logger.setLevel(logging.INFO)
with acquire_gpu(pool=["0", "1", "2", "3"], lock_dir=lock_dir, timeout=120, poll=0.02) as slot:
    seen = os.environ["CUDA_VISIBLE_DEVICES"], os.environ["CUDA_DEVICE_ORDER"]
    Path(out + ".held").write_text(slot.device)
    while not Path(out + ".release").exists():   # held until the test says so
        time.sleep(0.02)
json.dump({"id": slot.device, "cvd": seen[0], "order": seen[1]}, open(out, "w"))
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
    outs = [tmp_path / f"w{i}.json" for i in range(5)]
    locks = tmp_path / "locks"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    start = lambda out: subprocess.Popen([sys.executable, "-c", WORKER, str(locks), str(out)], env=env)  # noqa: E731
    procs = [start(o) for o in outs[:4]]
    try:
        # four hold a device each; then a fifth starts, reports that every slot is busy and waits
        _wait_for([Path(f"{o}.held") for o in outs[:4]], timeout=120)
        procs.append(start(outs[4]))
        _wait_for([Path(f"{outs[4]}.waiting")], timeout=120)
        held = {Path(f"{o}.held").read_text(): i for i, o in enumerate(outs[:4])}
        assert set(held) == {"0", "1", "2", "3"}            # four holders, four different devices
        assert not Path(f"{outs[4]}.held").exists()
        # one holder lets go: the fifth gets exactly that device
        Path(f"{outs[held['2']]}.release").write_text("1")
        _wait_for([Path(f"{outs[4]}.held")], timeout=120)
        assert Path(f"{outs[4]}.held").read_text() == "2"
        for o in outs:
            Path(f"{o}.release").write_text("1")
        assert [p.wait(timeout=120) for p in procs] == [0] * 5
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    rec = [json.loads(o.read_text()) for o in outs]
    assert all(r["cvd"] == r["id"] and r["order"] == "PCI_BUS_ID" for r in rec)


def test_in_process_exclusive_and_timeout_message(tmp_path, clean_env, caplog):
    a = acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=1, poll=0.01)
    b = acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=1, poll=0.01)
    assert {a.device, b.device} == {"5", "7"}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == b.device
    with caplog.at_level(logging.INFO, logger="au_ttt.train.gpu_slots"), \
            pytest.raises(GpuSlotTimeout, match=r"no free GPU slot among \['5', '7'\].*pid=\d+"):
        acquire_gpu(pool=["5", "7"], lock_dir=tmp_path, timeout=0.3, poll=0.05)
    assert "all 2 GPU slots busy; waiting up to 0 s" in caplog.text   # it waited before giving up
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
        # timeout=0: a single attempt, no waiting — the kernel released the dead holder's lock with its process
        with acquire_gpu(pool=["0"], lock_dir=locks, timeout=0, poll=0.05) as slot:
            assert slot.device == "0"
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
