"""Fault injection on the data stages with real processes and real signals: kill -9 (and SIGTERM) at several
points of `crops`, `heatmaps`, `landmarks --workers 2`, `data frames` and `synth`, then rerun.

Each killed run leaves the previous complete output untouched (or none), never a mix; the rerun sweeps
the killed run's temporaries and writes exactly the bytes of an uninterrupted run; no worker process
survives its parent. The stages are slowed from outside (tests/slow_cli.py), so the kill lands where
intended; nothing here measures time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from replicas import tiny_synthau, tree_bytes
from runkit import sigint_default

from au_ttt.cli import main

REPO = Path(__file__).resolve().parents[1]
SLOW = Path(__file__).with_name("slow_cli.py")
WAIT = 180  # seconds a killed stage may take to reach its kill point on a loaded machine (a bound, not a test)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("faults")
    synth = tiny_synthau(base / "synth", bp4d_frames=3, disfa_frames=3)
    index = base / "index.parquet"
    assert main(["data", "index", "--dataset", "bp4d", "--root", str(synth / "BP4D"), "--out", str(index),
                 "--no-progress"]) == 0
    lm = base / "landmarks.npz"
    assert main(["landmarks", "--index", str(index), "--backend", "provided", "--dataset-root",
                 str(synth / "BP4D"), "--out", str(lm), "--no-progress"]) == 0
    return {"base": base, "synth": synth, "index": index, "landmarks": lm}


def ok(*argv: str) -> None:
    assert main([*argv, "--no-progress"]) == 0, argv


def temporaries(target: Path) -> list[Path]:
    return sorted(p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def kill_at(tmp: Path, argv: list[str], slow: str, delay: float,
            ready: Callable[[psutil.Process], bool] | None = None,
            sig: int = signal.SIGKILL) -> tuple[int, list[psutil.Process]]:
    """Run `au-ttt ARGV` with SLOW delayed and send SIG once READY(the command's process) holds (default:
    once SLOW has been entered); returns (exit status, the command's child processes at that moment)."""
    mark = tmp / f"slow-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "SLOW_CLI_MARK": str(mark)}
    with open(mark.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen([sys.executable, str(SLOW), slow, str(delay), "--", *argv, "--no-progress"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=sigint_default)
        cli = psutil.Process(proc.pid)
        try:
            deadline = time.monotonic() + WAIT
            while not (mark.exists() and (ready is None or ready(cli))):
                assert proc.poll() is None, f"{argv[0]} ended (status {proc.returncode}) before the kill point"
                assert time.monotonic() < deadline, f"{argv[0]} never reached the kill point"
                time.sleep(0.02)
            children = cli.children(recursive=True)
            proc.send_signal(sig)
            return proc.wait(timeout=WAIT), children
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def assert_no_orphans(children: list[psutil.Process]) -> None:
    """Every worker of a killed command is gone (they are SIGKILLed by the kernel when it dies)."""
    _, still = psutil.wait_procs(children, timeout=30)
    orphans = alive(still)
    for p in orphans:                                  # do not leave them running when the test fails
        p.kill()
    assert not orphans, [p.pid for p in orphans]


def test_crops_killed_three_ways_then_rerun(data, tmp_path) -> None:
    out, ref = tmp_path / "crops", tmp_path / "reference"
    args = ["crops", "--index", str(data["index"]), "--landmarks", str(data["landmarks"])]
    ok(*args, "--size", "80", "--out", str(ref))                       # uninterrupted run
    ok(*args, "--size", "64", "--out", str(out))                       # an older complete store to replace
    old = tree_bytes(out)

    def jpgs() -> int:
        return sum(len(list(t.rglob("*.jpg"))) for t in temporaries(out))

    points = [("au_ttt.data.align:align_face", 0.4, lambda _: bool(temporaries(out))),   # just started
              ("au_ttt.data.align:align_face", 0.4, lambda _: jpgs() >= 3),             # mid-way
              ("au_ttt.data.align:save_aligned", 5.0, lambda _: jpgs() == 9)]           # crops done, npz not
    for slow, delay, ready in points:
        status, _ = kill_at(tmp_path, [*args, "--size", "80", "--out", str(out)], slow, delay, ready)
        assert status == -signal.SIGKILL
        assert tree_bytes(out) == old                                  # the old store, complete and alone
        assert temporaries(out)                                        # the killed run's leftovers
    ok(*args, "--size", "80", "--out", str(out))
    assert tree_bytes(out) == tree_bytes(ref) and not temporaries(out)


def test_heatmaps_killed_then_rerun(data, tmp_path) -> None:
    crops = tmp_path / "crops"
    ok("crops", "--index", str(data["index"]), "--landmarks", str(data["landmarks"]), "--out", str(crops))
    args = ["heatmaps", "--index", str(data["index"]), "--crops", str(crops)]
    ok(*args, "--out", str(tmp_path / "reference"))
    out = tmp_path / "heatmaps"
    ok(*args, "--sigma-frac", "0.1", "--out", str(out))                # older cache, other parameters
    old = tree_bytes(out)

    def npz_in_temp() -> bool:
        return any((t / "au_centres.npz").is_file() for t in temporaries(out))

    status, _ = kill_at(tmp_path, [*args, "--out", str(out)], "au_ttt.data.heatmaps:build_centre_cache", 5.0)
    assert status == -signal.SIGKILL and tree_bytes(out) == old
    status, _ = kill_at(tmp_path, [*args, "--out", str(out)], "au_ttt.data.heatmaps:atomic_write_json", 5.0,
                        lambda _: npz_in_temp())
    assert status == -signal.SIGKILL and tree_bytes(out) == old and temporaries(out)
    ok(*args, "--out", str(out))
    assert tree_bytes(out) == tree_bytes(tmp_path / "reference") and not temporaries(out)


def test_landmarks_workers_die_with_their_parent(data, tmp_path) -> None:
    out = tmp_path / "landmarks.npz"
    args = ["landmarks", "--index", str(data["index"]), "--backend", "dlib", "--workers", "2"]
    ok(*args, "--out", str(tmp_path / "reference.npz"))
    ok("landmarks", "--index", str(data["index"]), "--backend", "provided", "--dataset-root",
       str(data["synth"] / "BP4D"), "--out", str(out))                 # an older landmark file
    old = out.read_bytes(), out.with_suffix(".report.json").read_bytes()

    def workers_busy(cli: psutil.Process) -> bool:     # a worker is in read_image and both workers exist
        return len(cli.children()) == 2

    expected = {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 128 + signal.SIGTERM,   # SystemExit(143)
                signal.SIGINT: 128 + signal.SIGINT}             # KeyboardInterrupt: au-ttt's CLI exits 130
    for sig, status_after in expected.items():
        status, children = kill_at(tmp_path, [*args, "--out", str(out)], "au_ttt.data.landmarks:read_image", 30.0,
                                   workers_busy, sig)
        assert status == status_after
        assert len(children) == 2
        assert_no_orphans(children)
        assert (out.read_bytes(), out.with_suffix(".report.json").read_bytes()) == old
    # killed while the new file is being written: the old file stays, the temporary is swept by the rerun
    status, children = kill_at(tmp_path, [*args, "--out", str(out)], "numpy.lib.format:write_array", 5.0,
                               lambda _: bool(temporaries(out)))
    assert status == -signal.SIGKILL and (out.read_bytes(), out.with_suffix(".report.json").read_bytes()) == old
    assert_no_orphans(children)
    ok(*args, "--out", str(out))
    assert out.read_bytes() == (tmp_path / "reference.npz").read_bytes() and not temporaries(out)


def test_disfa_frames_and_synth_killed_then_rerun(data, tmp_path) -> None:
    raw = data["synth"] / "DISFA"
    ok("data", "frames", "--root", str(raw), "--out", str(tmp_path / "reference"))
    frames = tmp_path / "frames"
    target = frames / "SN002"
    status, _ = kill_at(tmp_path, ["data", "frames", "--root", str(raw), "--out", str(frames), "--subjects", "SN002"],
                        "cv2:imwrite", 0.5, lambda _: any(t.glob("1.jpg") for t in temporaries(target)))
    assert status == -signal.SIGKILL and not target.exists() and temporaries(target)
    ok("data", "frames", "--root", str(raw), "--out", str(frames))
    assert tree_bytes(frames) == tree_bytes(tmp_path / "reference") and not temporaries(target)
    # synth: a killed first run leaves only a hidden temporary; the rerun sweeps it and makes the same tree
    out = tmp_path / "synth"
    synth = ["synth", "--out", str(out), "--subjects-per-part", "1", "--bp4d-tasks", "1", "--bp4d-frames", "3",
             "--disfa-frames", "3"]
    status, _ = kill_at(tmp_path, synth, "au_ttt.data.synth.generate:_disfa_subject", 5.0)
    assert status == -signal.SIGKILL and not out.exists() and temporaries(out)
    ok(*synth)
    assert tree_bytes(out) == tree_bytes(data["synth"]) and not temporaries(out)


def test_sweep_removes_only_dead_writers_temporaries(tmp_path) -> None:
    from au_ttt.fileio import building_dir, sweep_stale

    proc = subprocess.Popen(["true"])
    proc.wait()
    dead = proc.pid                                                    # reaped: no process has this pid now
    live = os.getpid()
    target = tmp_path / "crops"
    names = {f".crops.tmp-{dead}-abcd1234": True, f".crops.old.{dead}": True, f".crops.{dead}.x1y2z3w4.tmp": True,
             f".crops.tmp-{live}-abcd1234": False,                     # a running writer's: kept
             f".crops.5.tmp-{dead}-abcd1234": False,                   # another target's ("crops.5")
             ".crops.tmp-abcd1234": False, "crops.tmp-1-abcd1234": False}  # not our naming: never touched
    for name in names:
        (tmp_path / name).mkdir()
    removed = sweep_stale(target)
    assert sorted(p.name for p in removed) == sorted(n for n, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, gone in names.items() if not gone)
    # the state a kill between swap_in_dir's two renames leaves: no target, the old one aside, the new one
    # complete in its temporary. The next writer sweeps both and builds the target.
    (tmp_path / f".crops.tmp-{dead}-zzzz9999").mkdir()
    (tmp_path / f".crops.old.{dead}").mkdir()
    with building_dir(target) as tmp:
        (tmp / "a").write_text("new")
    assert (target / "a").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((f".crops.tmp-{dead}", f".crops.old.{dead}"))]
