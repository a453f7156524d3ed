"""The MLflow store of the project: where it is, the experiment, and one parent run per table row.

Layout: one experiment (created once, under a file lock: concurrent ``create_experiment`` calls race,
mlflow issue #4123), one *parent* run per table row (found again by its ``au_ttt.parent`` tag) and one
*child* run per fold (:class:`au_ttt.train.tracking.RunLogger`), linked with the ``mlflow.parentRunId``
tag. The store is ``sqlite:////<abs uri_dir>/mlflow.db`` with artifacts in ``<uri_dir>/artifacts``:
absolute, so results do not depend on each job's working directory; SQLite's 20 s busy timeout (set by
MLflow) absorbs concurrent writes from the few local GPU jobs. Keep the store on local disk, not NFS.
``mlflow`` is imported lazily (it costs about 1.5 s).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from au_ttt.errors import InputError
from au_ttt.sections import TrackingConfig  # the section: torch/numpy-free, with the others
from au_ttt.train.provenance import run_tags

__all__ = ["PARENT_TAG", "TrackingConfig", "check_name", "chunks", "ensure_experiment", "get_or_create_parent",
           "log_parent_metrics", "mlflow_client", "store_paths", "tracking_uri"]

PARENT_TAG = "au_ttt.parent"  # name tag that makes get_or_create_parent idempotent
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/ +=-]{1,200}$")
_LOCK_TIMEOUT_S = 120.0


def store_paths(cfg: TrackingConfig) -> tuple[Path, Path, Path]:
    """Absolute ``(database, artifact dir, creation lock)`` paths of the store."""
    root = Path(cfg.uri_dir).expanduser().resolve()
    return root / "mlflow.db", root / "artifacts", root / ".au_ttt-tracking.lock"


def tracking_uri(cfg: TrackingConfig) -> str:
    """``sqlite:////abs/path/mlflow.db`` (four slashes: scheme + absolute path)."""
    return f"sqlite:///{store_paths(cfg)[0].as_posix()}"


@contextmanager
def _file_lock(path: Path, timeout: float = _LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive flock on ``path`` across processes (polls so a dead holder is never waited for)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path}: tracking lock still held after {timeout:.0f} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def mlflow_client(cfg: TrackingConfig) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(cfg))


def ensure_experiment(cfg: TrackingConfig) -> str:
    """Create the experiment once (file-locked, idempotent) and return its id."""
    _, artifacts, lock = store_paths(cfg)
    with _file_lock(lock):
        client = mlflow_client(cfg)
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is None:
            artifacts.mkdir(parents=True, exist_ok=True)
            return str(client.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri()))
        if exp.lifecycle_stage == "deleted":
            raise InputError(f"{tracking_uri(cfg)}: experiment {cfg.experiment!r} is deleted; restore it in the "
                             "MLflow UI, purge it with `mlflow gc`, or set tracking.experiment to a new name")
        return str(exp.experiment_id)


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InputError(f"run name {name!r} has characters MLflow filters cannot quote; use letters, digits "
                         "and _ . : / + = - or spaces (at most 200)")
    return name


def get_or_create_parent(cfg: TrackingConfig, name: str, tags: Mapping[str, str] | None = None) -> str:
    """Run id of the parent run named ``name`` (one per table row), created on first call.

    Idempotent across processes: lookup and creation happen under the store's file lock. The parent is
    marked FINISHED at creation; children link to it by tag and it can still take metrics later.
    """
    exp_id = ensure_experiment(cfg)
    check_name(name)
    _, _, lock = store_paths(cfg)
    with _file_lock(lock):
        client = mlflow_client(cfg)
        found = client.search_runs([exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{name}'", max_results=1)
        if found:
            return str(found[0].info.run_id)
        all_tags = {**run_tags(), **(tags or {}), PARENT_TAG: name}
        run = client.create_run(exp_id, tags={k: str(v) for k, v in all_tags.items()}, run_name=name)
        client.set_terminated(run.info.run_id, "FINISHED")
        return str(run.info.run_id)


def log_parent_metrics(cfg: TrackingConfig, name: str, metrics: Mapping[str, float], step: int = 0) -> str:
    """Log summary metrics (e.g. fold mean and std of F1) on the parent run ``name``; returns its id."""
    run_id = get_or_create_parent(cfg, name)
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    mlflow_client(cfg).log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])
    return run_id


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
