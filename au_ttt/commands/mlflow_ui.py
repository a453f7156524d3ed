"""Browse the tracked runs: start ``mlflow ui`` on the project's SQLite store (local only, one worker).

The store location comes from the ``tracking`` section of the config (``uri_dir``, default
``results/mlflow``). The server listens on 127.0.0.1 with one worker and MLflow's job runner off, which
cuts it from 11 processes to 3 (counted with MLflow 3.17). Stop it with Ctrl-C.

The server never outlives this command, even after kill -9: ``mlflow ui`` runs in a process group of its
own and asks the kernel for SIGTERM when this process dies (prctl PR_SET_PDEATHSIG, through
:func:`au_ttt.data.workers.die_with_parent`); MLflow's server command passes SIGTERM on to its uvicorn
process (``mlflow/server/__init__.py``, ``_run_server``), which with one worker serves in that process.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from au_ttt.data.workers import die_with_parent
from au_ttt.errors import InputError

HELP = "start the MLflow UI on the project's tracking store (127.0.0.1, one worker)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="project config file with a `tracking` section (default: built-in defaults)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind; the UI has no authentication, keep it local")
    parser.add_argument("--print-command", action="store_true",
                        help="print the mlflow command line and exit without starting the server")


def build_command(uri: str, host: str, port: int) -> list[str]:
    """The ``mlflow ui`` command line (the ``mlflow`` script next to this Python, else on PATH)."""
    exe = Path(sys.executable).with_name("mlflow")
    mlflow = str(exe) if exe.exists() else shutil.which("mlflow")
    if mlflow is None:
        raise InputError("the `mlflow` command was not found next to this Python or on PATH; install the "
                         "full package (`pip install mlflow`; mlflow-skinny has no UI)")
    return [mlflow, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from au_ttt.config import load_section
    from au_ttt.train.tracking import TrackingConfig, store_paths, tracking_uri

    cfg = load_section(args.config, "tracking", TrackingConfig) if args.config else TrackingConfig()
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: pick a port between 1 and 65535")
    cmd = build_command(tracking_uri(cfg), args.host, args.port)
    if args.print_command:
        print(" ".join(cmd))
        return 0
    db = store_paths(cfg)[0]
    if not db.exists():
        logger.warning("%s does not exist yet: the UI will show an empty store until a run is logged", db)
        db.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    print(f"MLflow UI for {tracking_uri(cfg)} at http://{args.host}:{args.port}  (Ctrl-C to stop)", flush=True)
    # own process group: Ctrl-C reaches this process only, which stops the server in order (below)
    proc = subprocess.Popen(cmd, env=env, process_group=0,
                            preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGTERM))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill <pid>` must not orphan the server
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()  # SIGTERM to the mlflow CLI takes its workers down too
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever of the server's group is left
            os.killpg(proc.pid, signal.SIGKILL)
