"""One process per output folder (au_ttt.locks.run_dir_lock): a second one is refused at once, naming the holder;
a holder killed by SIGKILL leaves nothing that blocks the next run. The two-process `au-ttt train` case is in
tests/test_faults_train.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from au_ttt.errors import InputError
from au_ttt.locks import run_dir_lock, run_lock_path

EXE = Path(sys.executable).with_name("au-ttt")
# Holds the folder, says so on stdout, then waits for stdin to close (the test kills it first).
HOLDER = """
import sys
from au_ttt.locks import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_holder_killed_by_sigkill_does_not_block_the_next_run(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"  # written once the lock is held ('' if the holder died)
        with pytest.raises(InputError) as err, run_dir_lock(out):
            pass
        message = str(err.value)
        assert message.startswith(f"{out}: another process is writing this folder (pid {holder.pid} on ")
        assert f"-c {out}" in message and "give this run another --out" in message
        assert run_lock_path(out) == tmp_path / ".run.lock" and not out.exists()  # the folder stays untouched
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait()
    assert f"pid {holder.pid} on " in run_lock_path(out).read_text()  # its record is still there…
    with run_dir_lock(out) as path:  # …and does not block
        assert f"pid {os.getpid()} on " in path.read_text()
    assert not path.exists()  # a holder that ends normally removes its lock file


def test_two_spellings_of_one_folder_share_the_lock(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    with run_dir_lock(Path("real")), pytest.raises(InputError, match="another process is writing this folder"), \
            run_dir_lock(tmp_path / "alias"):
        pass


def test_pretrain_is_refused_while_its_out_is_held(tmp_path):
    out = tmp_path / "pretrain"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with run_dir_lock(out):
        res = subprocess.run([str(EXE), "pretrain", "--config", str(REPO / "config/config.yaml"), "--out", str(out),
                              "--device", "cpu"], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 2, res.stderr[-3000:]
    err = res.stderr.strip()
    assert err.startswith(f"au-ttt pretrain: error: {out}: another process is writing this folder (pid {os.getpid()} ")
    assert "\n" not in err and not out.exists()
