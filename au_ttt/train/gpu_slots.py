"""GPU-slot allocator: one physical GPU per local job, via lock files and ``CUDA_VISIBLE_DEVICES``.

Snakemake's ``--resources gpu=4`` only caps how many GPU jobs run at once; it never tells a job which
device to use, so every job would land on GPU 0 (snakemake issue #281). Each training job therefore
calls :func:`acquire_gpu` first: it takes a non-blocking ``fcntl.flock`` on
``<lock_dir>/au_ttt-gpu-<id>.lock`` for one id of the pool, holds it for the life of the job (the kernel
drops it if the process dies, even by SIGKILL), and exports ``CUDA_VISIBLE_DEVICES=<id>`` with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers devices like ``nvidia-smi`` does.

**Call it before anything initialises CUDA** (before the first ``torch.cuda`` call or ``.to("cuda")``):
CUDA reads ``CUDA_VISIBLE_DEVICES`` once, at initialisation; later changes have no effect, and
:func:`acquire_gpu` raises if it sees that torch already initialised CUDA.

The pool is, in order: the ``pool`` argument (tests, explicit lists); the entries of a pre-set
``CUDA_VISIBLE_DEVICES`` (Slurm sets it; a single entry is kept as is, without a lock, because Slurm
already gave that device to this job alone); the ``nvidia-smi -L`` device count; else nothing, and the
job runs on the CPU with a warning. Lock files live on local disk (flock over NFS is unreliable): in
``$AU_TTT_GPU_LOCK_DIR``, else ``$XDG_RUNTIME_DIR``, else the temp dir.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from au_ttt.errors import InputError
from au_ttt.locks import try_flock

__all__ = ["ENV_LOCK_DIR", "GpuSlot", "GpuSlotTimeout", "acquire_gpu", "acquire_gpus", "default_lock_dir",
           "discover_pool"]

logger = logging.getLogger(__name__)

ENV_LOCK_DIR = "AU_TTT_GPU_LOCK_DIR"
# Waiting only happens when more GPU jobs run than devices exist (e.g. --resources gpu=N above the pool
# size); a waiting job may need a whole fold's training time, so the default is long but finite.
DEFAULT_TIMEOUT_S = 24 * 3600.0
DEFAULT_POLL_S = 2.0


class GpuSlotTimeout(TimeoutError):
    """No slot of the pool became free within the timeout."""


def default_lock_dir() -> Path:
    """``$AU_TTT_GPU_LOCK_DIR``, else ``$XDG_RUNTIME_DIR`` (per-user tmpfs), else the system temp dir."""
    for var in (ENV_LOCK_DIR, "XDG_RUNTIME_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir())


def _split_visible(value: str) -> list[str]:
    # "" and "-1" hide every GPU; entries may be indices, GPU-UUIDs or MIG ids
    entries = [v.strip() for v in value.split(",") if v.strip()]
    return [] if entries in ([], ["-1"]) else entries


def discover_pool() -> list[str]:
    """Device ids jobs may use: pre-set ``CUDA_VISIBLE_DEVICES`` entries, else ``nvidia-smi -L`` indices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _split_visible(visible)
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        res = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        logger.warning("nvidia-smi -L failed (%s); treating this machine as having no GPU", err)
        return []
    if res.returncode != 0:
        logger.warning("nvidia-smi -L exited with %d (%s); treating this machine as having no GPU",
                       res.returncode, res.stderr.strip()[:200])
        return []
    # lines look like "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"; MIG lines are indented and skipped
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", res.stdout, flags=re.MULTILINE)]


def _cuda_already_initialised() -> bool:
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_initialized())
    except AttributeError:
        return False


@dataclass
class GpuSlot:
    """A held device (``device=None``: CPU). Releasing closes the lock and restores the environment."""

    device: str | None
    lock_path: Path | None = None
    source: str = "cpu"  # "lock" | "preset" | "cpu": how the device was chosen
    _fd: int | None = field(default=None, repr=False)
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def is_cpu(self) -> bool:
        return self.device is None

    def tags(self) -> dict[str, str]:
        """Tracking tags naming the physical device (MLflow's GPU monitor ignores CUDA_VISIBLE_DEVICES)."""
        return {"gpu.physical_id": self.device or "none", "gpu.slot_source": self.source}

    def release(self) -> None:
        """Drop the lock (idempotent) and put back the environment variables this slot changed."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def __enter__(self) -> GpuSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_name(device: str) -> str:
    # Slurm renumbers devices inside each job's cgroup, so "0" in two jobs can be two different GPUs:
    # namespace the lock by job id there. Ids may be UUIDs; keep the file name to safe characters.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", device)
    job = os.environ.get("SLURM_JOB_ID")
    return f"au_ttt-gpu-slurm{job}-{safe}.lock" if job else f"au_ttt-gpu-{safe}.lock"


def _try_lock(path: Path) -> int | None:
    """Open ``path`` and take a non-blocking exclusive flock; the descriptor, or None if it is held."""
    return try_flock(path, f"pid={os.getpid()} host={socket.gethostname()} since={time.time():.0f}\n")


def _holders(paths: list[Path]) -> str:
    out = []
    for p in paths:
        try:
            out.append(f"{p.name}: {p.read_text().strip() or '?'}")
        except OSError:
            out.append(f"{p.name}: ?")
    return "; ".join(out)


def _set_env(slot: GpuSlot, device: str) -> None:
    for name, value in (("CUDA_DEVICE_ORDER", "PCI_BUS_ID"), ("CUDA_VISIBLE_DEVICES", device)):
        slot._saved_env[name] = os.environ.get(name)
        os.environ[name] = value


def acquire_gpu(pool: list[str] | None = None, lock_dir: str | Path | None = None,
                timeout: float = DEFAULT_TIMEOUT_S, poll: float = DEFAULT_POLL_S, set_env: bool = True) -> GpuSlot:
    """Hold one device of the pool for this process and point ``CUDA_VISIBLE_DEVICES`` at it.

    Call before any CUDA use (see the module docstring). Use as a context manager, or keep the returned
    slot alive for the whole job: the lock lasts as long as the slot's file descriptor.

    Args:
        pool: device ids to choose from; default :func:`discover_pool`. An empty pool means CPU.
        lock_dir: where the ``au_ttt-gpu-<id>.lock`` files live; default :func:`default_lock_dir`.
        timeout: seconds to wait for a free slot before :class:`GpuSlotTimeout`.
        poll: mean seconds between attempts (jittered ±50 % so waiting jobs do not retry in lockstep).
        set_env: point this process's ``CUDA_VISIBLE_DEVICES`` at the device (False: only hold the lock,
            for a launcher that hands the device to child processes).
    """
    if _cuda_already_initialised():
        raise RuntimeError("acquire_gpu() called after torch initialised CUDA: CUDA_VISIBLE_DEVICES would be "
                           "ignored; call it at the start of the job, before any torch.cuda use")
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pool is None:
        pool = discover_pool()
        if preset is not None and len(pool) == 1:
            logger.info("using pre-set CUDA_VISIBLE_DEVICES=%s (assigned by the scheduler)", pool[0])
            return GpuSlot(device=pool[0], source="preset")
    if not pool:
        logger.warning("no GPU found (CUDA_VISIBLE_DEVICES unset/empty and no nvidia-smi devices): running on CPU")
        return GpuSlot(device=None, source="cpu")
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    paths = {device: lock_dir / _lock_name(device) for device in pool}
    rng = random.Random()  # seeded from os.urandom: concurrent jobs try slots in different orders
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        order = list(pool)
        rng.shuffle(order)
        for device in order:
            fd = _try_lock(paths[device])
            if fd is not None:
                slot = GpuSlot(device=device, lock_path=paths[device], source="lock", _fd=fd)
                if set_env:
                    _set_env(slot, device)
                logger.info("GPU slot %s acquired (lock %s)", device, paths[device])
                return slot
        if time.monotonic() >= deadline:
            raise GpuSlotTimeout(
                f"no free GPU slot among {pool} after {timeout:.0f} s (locks in {lock_dir}: "
                f"{_holders(list(paths.values()))}); lower Snakemake's --resources gpu=N to the number of "
                f"GPUs, wait for the holders to finish, or set {ENV_LOCK_DIR} if the locks are stale")
        if not waited:
            logger.info("all %d GPU slots busy; waiting up to %.0f s", len(pool), timeout)
            waited = True
        time.sleep(min(poll * rng.uniform(0.5, 1.5), max(deadline - time.monotonic(), 0.0)))


def acquire_gpus(n: int, pool: list[str] | None = None, **kwargs) -> list[GpuSlot]:
    """Hold ``n`` devices of the pool for child processes (a torchrun launch); ``[]`` on a machine without GPUs.

    The environment of this process is left alone: the caller passes ``CUDA_VISIBLE_DEVICES`` (the ids of
    the returned slots) to the children. Fewer devices than asked for is an error naming both numbers.
    """
    pool = discover_pool() if pool is None else pool
    if not pool:
        logger.warning("no GPU found: the %d processes run on the CPU", n)
        return []
    if len(pool) < n:
        raise InputError(f"{n} GPUs asked for, {len(pool)} available ({', '.join(pool)}); lower the process count "
                         "or give the job more GPUs")
    slots: list[GpuSlot] = []
    try:
        for _ in range(n):
            slots.append(acquire_gpu(pool, set_env=False, **kwargs))
    except BaseException:
        for slot in slots:
            slot.release()
        raise
    return slots
