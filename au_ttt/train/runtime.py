"""Where and how a training job runs: the one device policy, autocast, seeding, DDP, worker lifetime.

Device policy (:func:`job_device`, used by ``au-ttt train``, ``pretrain`` and ``evaluate``; ``predict`` and
``bench`` take no GPU slot and call :func:`resolve_device` directly — no other module decides a device):

* ``auto`` in a single process takes a GPU slot first (:mod:`au_ttt.train.gpu_slots`: lock files and
  ``CUDA_VISIBLE_DEVICES``, before anything initialises CUDA), then uses CUDA if torch can reach it and the
  CPU otherwise, with a warning. A slot handed over by a scheduler whose node has no working driver therefore
  falls back to the CPU instead of dying in CUDA initialisation.
* ``auto`` under ``torchrun`` uses ``cuda:LOCAL_RANK`` (the launcher chose the devices) or the CPU.
* ``cpu`` is the CPU; ``cuda`` / ``cuda:N`` must be usable, else an :class:`InputError` says so.

DDP on one node (:func:`torchrun_command`): ``torchrun --standalone`` hosts its rendezvous and the workers'
store in ``TCPStore`` servers, and those bind every interface whatever host they are given (measured with
/proc/net/tcp: two listeners on ``::``). The launcher here keeps everything local instead: the c10d
rendezvous and the process-group store are ``FileStore`` files in a private folder (torchrun's
``--rdzv-conf store_type=file``; ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` so the agent hosts no store), and
gloo/NCCL peer sockets are put on the loopback interface (``GLOO_SOCKET_IFNAME``/``NCCL_SOCKET_IFNAME=lo``).
No socket of the job listens beyond 127.0.0.1 (tested with two gloo processes).

References: PyTorch ``torch.distributed.elastic.rendezvous.c10d_rendezvous_backend`` (``store_type``) and
``dynamic_rendezvous`` (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE``); gloo's ``GLOO_SOCKET_IFNAME``; prctl(2).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from au_ttt.errors import InputError

__all__ = ["ENV_PG_STORE", "ENV_STOP_AT", "DistInfo", "Placement", "autocast_for", "die_with_parent",
           "distributed", "failpoint", "interrupt_on_sigterm", "job_device", "launch_torchrun", "resolve_device",
           "seed_epoch", "seed_process", "set_threads", "torchrun_command", "worker_init"]

log = logging.getLogger(__name__)

ENV_PG_STORE = "AU_TTT_PG_STORE"          # FileStore of the process group, set by torchrun_command
ENV_DIE_WITH_PARENT = "AU_TTT_DIE_WITH_PARENT"
ENV_STOP_AT = "AU_TTT_STOP_AT"            # fault injection: stop (SIGSTOP) at this named point
_PR_SET_PDEATHSIG = 1                     # <linux/prctl.h>


# --- devices ---------------------------------------------------------------------------------------------
def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (device ``local_rank``) when usable, else the CPU with a warning; ``cpu``; ``cuda[:N]``."""
    req = str(requested).strip().lower()
    if req == "cpu":
        return torch.device("cpu")
    if req not in ("auto", "cuda") and not (req.startswith("cuda:") and req[5:].isdigit()):
        raise InputError(f"--device {requested!r}: use auto, cpu, cuda or cuda:N")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    if not torch.cuda.is_available():
        if req == "auto":
            log.warning("no usable CUDA device%s: running on the CPU", where)
            return torch.device("cpu")
        raise InputError(f"--device {requested}: torch finds no usable CUDA device{where}; check the driver "
                         "(nvidia-smi), or use --device auto to fall back to the CPU")
    index = local_rank if req in ("auto", "cuda") else int(req[5:])
    if index >= torch.cuda.device_count():
        raise InputError(f"--device {requested}: CUDA device {index} does not exist here "
                         f"({torch.cuda.device_count()} visible{where})")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Placement:
    """The device a job computes on and the tracking tags that say where that was."""

    device: torch.device
    tags: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def job_device(requested: str = "auto") -> Iterator[Placement]:
    """The device of this job under the policy in the module docstring; holds its GPU slot while open."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if str(requested).strip().lower() == "auto" and world == 1:
        from au_ttt.train.gpu_slots import acquire_gpu

        with acquire_gpu() as slot:
            device = torch.device("cpu") if slot.is_cpu else resolve_device("auto")
            yield Placement(device, {**slot.tags(), "device": str(device)})
        return
    device = resolve_device(requested, int(os.environ.get("LOCAL_RANK", "0")))
    yield Placement(device, {"device": str(device)})


def autocast_for(device: torch.device, amp: str):
    """bf16 autocast on CUDA when amp is 'auto'/'bf16'; the TTT inner state stays fp32 regardless."""
    use = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)


def set_threads(threads: int) -> None:
    """Torch CPU threads of this process (0 = leave torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


# --- seeding ---------------------------------------------------------------------------------------------
def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    """Reseed Python, NumPy and torch from (seed, epoch); returns the shuffling generator of that epoch.

    Every epoch starts from a state that depends only on its number, so a run resumed after a kill replays
    the lost epochs exactly (the nanoGPT habit: fixed order, explicit seeds).
    """
    s = seed * 100_003 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def seed_process(seed: int, rank: int = 0) -> None:
    """Seed a (DDP) process: identical model initialisation, rank-specific augmentation draws."""
    random.seed(seed + rank)          # timm's random-resized crop draws from Python's RNG
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed)


# --- processes -------------------------------------------------------------------------------------------
def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (prctl PR_SET_PDEATHSIG).

    A kill -9 of the main process then takes its DataLoader workers and DDP workers with it instead of
    leaving them orphaned. No-op elsewhere than Linux.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return
    if os.getppid() == 1:  # the parent died before the call above: nobody would signal us
        os.kill(os.getpid(), sig)


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers die with the training process (seeding stays torch's own)."""
    die_with_parent()


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM (Slurm's scancel, Snakemake's stop) into KeyboardInterrupt, so cleanup runs and the tracked
    run is closed as KILLED instead of staying RUNNING."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def failpoint(name: str) -> None:
    """Fault injection for tests: when ``$AU_TTT_STOP_AT`` equals ``name`` the process stops itself here
    (SIGSTOP), so a test can inspect it and kill -9 it at an exact point (e.g. ``epoch2.step3``)."""
    if os.environ.get(ENV_STOP_AT) == name:
        os.kill(os.getpid(), signal.SIGSTOP)


# --- DDP -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[DistInfo]:
    """Join the process group of a ``torchrun`` launch (nothing to do for one process), leave it at the end.

    The group's store is the launcher's FileStore (:data:`ENV_PG_STORE`) when set, else torchrun's
    ``env://`` (MASTER_ADDR/MASTER_PORT). Backend: NCCL on CUDA, gloo on the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield DistInfo()
        return
    import torch.distributed as dist

    if os.environ.get(ENV_DIE_WITH_PARENT) == "1":
        die_with_parent()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store_path = os.environ.get(ENV_PG_STORE)
    if store_path:
        dist.init_process_group(backend, store=dist.FileStore(store_path, world), rank=rank, world_size=world)
    else:
        dist.init_process_group(backend)
    try:
        yield DistInfo(rank, local_rank, world)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def torchrun_command(nproc: int, args: Sequence[str], rdzv_dir: str | Path, module: str = "au_ttt.cli") -> list[str]:
    """``env … python -m torch.distributed.run …`` launching ``nproc`` local workers of ``python -m module args``.

    Single node, no TCP listener beyond 127.0.0.1 (see the module docstring). ``rdzv_dir`` must be a fresh
    private folder per launch (it holds the rendezvous and process-group FileStores):
    :func:`launch_torchrun` makes and removes one.
    """
    if nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {nproc}")
    rdzv_dir = Path(rdzv_dir)
    env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", "GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo",
           ENV_PG_STORE: str(rdzv_dir / "process-group.store"), ENV_DIE_WITH_PARENT: "1"}
    return ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "torch.distributed.run",
            "--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", "0",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", str(rdzv_dir / "rendezvous.store"),
            "--rdzv-conf", "store_type=file", "--rdzv-id", "au-ttt", "--local-addr", "127.0.0.1",
            "-m", module, *map(str, args)]


def launch_torchrun(nproc: int, args: Sequence[str], devices: Sequence[str] | None = None) -> int:
    """Run :func:`torchrun_command` in a fresh private rendezvous folder; returns torchrun's exit status.

    ``devices`` (GPU ids) become the workers' ``CUDA_VISIBLE_DEVICES``. SIGTERM/SIGINT are passed on to
    torchrun, which stops its workers; a kill -9 of this process takes torchrun (and so the workers) along.
    """
    rdzv = Path(tempfile.mkdtemp(prefix="au_ttt-rdzv-"))
    env = dict(os.environ)
    if devices:
        env.update(CUDA_VISIBLE_DEVICES=",".join(devices), CUDA_DEVICE_ORDER="PCI_BUS_ID")
    proc = subprocess.Popen(torchrun_command(nproc, args, rdzv), env=env, preexec_fn=die_with_parent)
    previous = {s: signal.signal(s, lambda num, _frame: proc.send_signal(num)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(rdzv, ignore_errors=True)
