"""Every folder writer builds through ``fileio.building_dir``: kill -9 in the middle of each one, then show that
the next run sweeps what the killed one left and succeeds.

The kill point is exact and needs no clock: the writer runs in a child process in which one function it calls
is wrapped to stop the process (SIGSTOP) on its Nth call; the test waits for that stop with
``waitpid(WUNTRACED)`` (the kernel reports it), looks at the disk, then sends SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# argv: MODULE ATTR N CODE — wrap MODULE.ATTR so that its Nth call stops the process first, then exec CODE
_STOPPER = textwrap.dedent("""
    import functools, importlib, os, signal, sys
    module, attr, nth, code = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    mod = importlib.import_module(module)
    real = getattr(mod, attr)
    calls = [0]

    @functools.wraps(real)
    def stop_first(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            os.kill(os.getpid(), signal.SIGSTOP)
        return real(*args, **kwargs)

    setattr(mod, attr, stop_first)
    exec(code)
""")


def kill_at(point: str, nth: int, code: str) -> None:
    """Run ``code`` in a child whose ``point`` (MODULE:ATTR) stops it on call ``nth``; kill -9 it there."""
    module, attr = point.split(":")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _STOPPER, module, attr, str(nth), code], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)           # returns when it stops (or ends)
        if not os.WIFSTOPPED(status):
            proc.returncode = os.waitstatus_to_exitcode(status)
            pytest.fail(f"the writer ended ({proc.returncode}) before {point} #{nth}: "
                        f"{proc.stderr.read().decode()[-3000:]}")
    finally:
        proc.kill()                                               # SIGKILL: no cleanup code runs
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def temporaries(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith("."))


def hidden_anywhere(root: Path) -> list[Path]:
    return list(root.rglob(".*"))


def _points(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(10, 500, size=(n, 68, 2))


def test_disfa_landmark_writer_killed_then_rerun(tmp_path: Path) -> None:
    from au_ttt.data.landmark_files import disfa_landmark_dir, read_disfa_landmarks, write_disfa_landmarks

    np.save(tmp_path / "pts.npy", _points(3))
    target = write_disfa_landmarks(tmp_path, "SN001", [0, 1], _points(2))     # an older complete set
    old = sorted(p.name for p in target.iterdir())
    code = (f"import numpy as np\nfrom au_ttt.data.landmark_files import write_disfa_landmarks\n"
            f"write_disfa_landmarks({str(tmp_path)!r}, 'SN001', [0, 1, 2], np.load({str(tmp_path / 'pts.npy')!r}))")
    kill_at("scipy.io:savemat", 2, code)                                      # one of three files written
    assert sorted(p.name for p in target.iterdir()) == old                    # the old set, untouched
    left = temporaries(target)
    assert len(left) == 1 and left[0].startswith(".tmp_frame_lm.tmp-")
    (target.parent / ".tmp_frame_lm.abcd1234").mkdir()                        # an older version's leftover
    assert write_disfa_landmarks(tmp_path, "SN001", [0, 1, 2], _points(3)) == disfa_landmark_dir(tmp_path, "SN001")
    assert temporaries(target) == [] and sorted(read_disfa_landmarks(tmp_path, "SN001")) == [0, 1, 2]


def test_bundle_export_killed_then_rerun(tmp_path: Path) -> None:
    from predict_support import make_run

    from au_ttt.predict.bundle import export_bundle, load_bundle

    run = make_run(tmp_path / "run", REPO / "config/config.yaml")
    out = tmp_path / "bundle"
    code = f"from au_ttt.predict.bundle import export_bundle\nexport_bundle({str(run)!r}, {str(out)!r})"
    kill_at("au_ttt.predict.bundle:atomic_write_text", 1, code)              # weights and record in, card not
    assert not out.exists()
    left = temporaries(out)
    assert len(left) == 1 and left[0].startswith(".bundle.tmp-")
    assert (out.parent / left[0] / "model.safetensors").is_file()
    (out.parent / ".bundle.tmp.abcd1234").mkdir()                             # an older version's leftover
    export_bundle(run, out)
    assert temporaries(out) == [] and sorted(p.name for p in out.iterdir()) == [
        "README.md", "bundle.json", "model.safetensors"]
    assert load_bundle(out).aus


def test_synthau_killed_inside_a_nested_writer_then_rerun(tmp_path: Path) -> None:
    from au_ttt.data.synth import generate_synthau

    out = tmp_path / "synth"
    sizes = dict(seed=0, subjects_per_part=1, bp4d_tasks=1, bp4d_frames=2, disfa_frames=2, progress=False)
    code = f"from au_ttt.data.synth import generate_synthau\ngenerate_synthau({str(out)!r}, **{sizes!r})"
    kill_at("au_ttt.fileio:swap_in_dir", 1, code)       # the first DISFA landmark folder, inside SynthAU's build
    assert not out.exists()
    left = temporaries(out)
    assert len(left) == 1 and left[0].startswith(".synth.tmp-")
    assert [p.name[:18] for p in hidden_anywhere(tmp_path / left[0])] == [".tmp_frame_lm.tmp-"]
    manifest = generate_synthau(out, **sizes)
    assert temporaries(out) == [] and hidden_anywhere(out) == []
    assert manifest["disfa"]["frames"] == 3 * 2 and (out / "DISFA").is_dir()
