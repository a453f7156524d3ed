"""Helpers for training tests: the toy run's settings, data-product stand-ins and run key.

The toy datasets (tests/toydata.py) live in memory, but a run key hashes files: ``toy_inputs`` writes small
stand-ins for the index, crop store, heatmap cache and a pretrained backbone whose bytes the tests change.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, replace
from pathlib import Path

from au_ttt.settings import Settings, load_settings
from au_ttt.train.records import RunSpec
from au_ttt.train.runkey import RunKey, run_key

REPO = Path(__file__).resolve().parents[1]
SPEC = RunSpec("bp4d", 3)


def toy_settings(epochs: int = 4, **train) -> Settings:
    s = load_settings(REPO / "config/config.yaml")
    values = dict(epochs=epochs, batch_size=16, num_workers=0, lr=1e-3, warmup_epochs=0.5, threads=1, eval_every=1)
    return replace(s, train=replace(s.train, **{**values, **train}))


def toy_inputs(root: Path) -> dict[str, Path]:
    """Index file, crop folder, heatmap folder (small real files) under ``root``; created once."""
    root.mkdir(parents=True, exist_ok=True)
    index, crops, heatmaps = root / "index.parquet", root / "crops", root / "heatmaps"
    if not index.exists():
        index.write_bytes(b"PAR1 toy index")
        for i in range(3):
            (crops / "images" / "F001").mkdir(parents=True, exist_ok=True)
            (crops / "images" / "F001" / f"{i}.jpg").write_bytes(bytes([i]) * 100)
        (crops / "aligned.npz").write_bytes(b"toy aligned")
        heatmaps.mkdir()
        (heatmaps / "au_centres.npz").write_bytes(b"toy centres")
    return {"index": index, "crops": crops, "heatmaps": heatmaps}


def toy_key(settings: Settings, root: Path, spec: RunSpec = SPEC, **overrides: Path | None) -> RunKey:
    inputs = {**toy_inputs(root), "pretrained": settings.train.pretrained, **overrides}
    return run_key(settings.resolved(spec.variant), asdict(spec), inputs)


# --- processes (Linux /proc): fault-injection tests -------------------------------------------------------
def sigint_default() -> None:
    """``preexec_fn`` for a child a test interrupts with SIGINT: a shell that starts a command in the background
    (``make test &``) hands it SIGINT ignored, children inherit that, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[3])


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a process started with start_new_session=True and its descendants,
    orphaned ones included: a dead parent does not change a child's session)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[2] == sid and st[0] != "Z":
            out.append(int(entry.name))
    return sorted(out)


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (torchrun puts its workers in sessions of their own: follow parents)."""
    parent = {int(e.name): st[1] for e in Path("/proc").iterdir()
              if e.name.isdigit() and (st := _stat(int(e.name))) and st[0] != "Z"}
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return sorted(out)


def state(pid: int) -> str | None:
    st = _stat(pid)
    return st[0] if st else None


def wait_for(condition, timeout: float, what: str, poll: float = 0.05):
    """Poll ``condition()`` until it is truthy; fail naming ``what`` after ``timeout`` s (a bound, not a speed
    assertion: the condition is expected to become true)."""
    import time

    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(poll)
    return value


def listening_sockets(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets in LISTEN state held by ``pids`` (from /proc/net/tcp{,6})."""
    import ipaddress

    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # the process is gone
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:  # closed meanwhile (e.g. the descriptor of this very listing)
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # kernel words are little-endian
            ip = ipaddress.ip_address(raw)
            out.append((str(getattr(ip, "ipv4_mapped", None) or ip), int(port, 16)))
    return out


# --- data products: a small BP4D-format SynthAU replica ------------------------------------------------
def synth_bp4d(root: Path, config: Path, bp4d_frames: int = 8, disfa_frames: int = 5,
               subjects_per_part: int = 2) -> Path:
    """SynthAU BP4D frames (``subjects_per_part`` per part, 3 tasks; 144 frames at the defaults) through index →
    landmarks → crops → heatmaps under ``root``; returns the folder holding index.parquet, crops/ and heatmaps/
    (the default is the smallest replica every AU has positives in)."""
    from au_ttt.cli import main

    d = root / "bp4d"

    def au_ttt(*args):
        assert main([*map(str, args)]) == 0, args

    au_ttt("synth", "--out", root / "synth", "--subjects-per-part", subjects_per_part, "--bp4d-tasks", 3,
           "--bp4d-frames", bp4d_frames, "--disfa-frames", disfa_frames, "--no-progress")
    au_ttt("data", "index", "--dataset", "bp4d", "--root", root / "synth/BP4D", "--out", d / "index.parquet",
           "--no-progress")
    au_ttt("landmarks", "--config", config, "--backend", "provided", "--index", d / "index.parquet",
           "--dataset-root", root / "synth/BP4D", "--out", d / "landmarks.npz", "--no-progress")
    au_ttt("crops", "--config", config, "--index", d / "index.parquet", "--landmarks", d / "landmarks.npz",
           "--out", d / "crops", "--no-progress")
    au_ttt("heatmaps", "--config", config, "--index", d / "index.parquet", "--crops", d / "crops",
           "--out", d / "heatmaps", "--no-progress")
    return d
