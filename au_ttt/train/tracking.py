"""Run tracking: a local ``tracking.json`` always, mirrored to an MLflow SQLite store when it works.

Layout: one experiment (created once, under a file lock: concurrent ``create_experiment`` calls race,
mlflow issue #4123), one *parent* run per table row (found again by its ``au_ttt.parent`` tag) and one
*child* run per fold, linked with the ``mlflow.parentRunId`` tag, which the UI nests by and which works
across processes (``start_run(parent_run_id=...)`` needs the parent to be active in the same process).
The store is ``sqlite:////<abs uri_dir>/mlflow.db`` with artifacts in ``<uri_dir>/artifacts``: absolute,
so results do not depend on each job's working directory; SQLite's 20 s busy timeout (set by MLflow)
absorbs concurrent writes from the few local GPU jobs. Keep the store on local disk, not NFS.

The JSON file is the record of truth: if MLflow is missing, the store is unwritable or any MLflow call
raises, :class:`RunLogger` warns once, stops mirroring, and training goes on. ``mlflow`` is imported
lazily (it costs about 1.5 s).

Typical fold job::

    slot = acquire_gpu()  # au_ttt.train.gpu_slots: before any CUDA use
    with RunLogger(cfg, out_dir, run_name="bp4d-fold1", parent="bp4d/au_ttt_full",
                   tags={**slot.tags(), "dataset": "BP4D", "fold": 1}, config=resolved,
                   manifest="results/index/bp4d.parquet") as run:
        for epoch in ...:
            run.log_metrics({"train.loss": loss, "val.f1": f1}, step=epoch)
        run.log_artifact(out_dir / "metrics.json")

``tracking.json`` holds ``run_name, parent, status, start_time, end_time, tags, params`` (dotted keys,
string values), ``metrics`` (key → list of ``[step, value, unix_ms]``), ``artifacts`` (absolute paths)
and ``mlflow`` (uri, experiment/run/parent ids, the error that stopped mirroring or null).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write_json
from au_ttt.train.provenance import flatten, run_tags

__all__ = ["PARENT_TAG", "RunLogger", "TrackingConfig", "ensure_experiment", "get_or_create_parent",
           "log_parent_metrics", "store_paths", "tracking_uri"]

logger = logging.getLogger(__name__)

PARENT_TAG = "au_ttt.parent"  # name tag that makes get_or_create_parent idempotent
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/ +=-]{1,200}$")
_LOCK_TIMEOUT_S = 120.0
_MAX_PARAM = 6000  # MLflow's MAX_PARAM_VAL_LENGTH (mlflow/utils/validation.py)


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking`` section of the project config."""

    # store directory, relative to the project root (cwd of Snakemake jobs); results/ per the Snakemake
    # layout (workflow.md §1.1); holds mlflow.db and artifacts/
    uri_dir: str = "results/mlflow"
    experiment: str = "au-ttt"  # one experiment for the whole reproduction (workflow.md §4.3)
    enabled: bool = True  # False: only tracking.json is written (e.g. quick CPU checks)


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


def _client(cfg: TrackingConfig) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(cfg))


def ensure_experiment(cfg: TrackingConfig) -> str:
    """Create the experiment once (file-locked, idempotent) and return its id."""
    _, artifacts, lock = store_paths(cfg)
    with _file_lock(lock):
        client = _client(cfg)
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is None:
            artifacts.mkdir(parents=True, exist_ok=True)
            return str(client.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri()))
        if exp.lifecycle_stage == "deleted":
            raise InputError(f"{tracking_uri(cfg)}: experiment {cfg.experiment!r} is deleted; restore it in the "
                             "MLflow UI, purge it with `mlflow gc`, or set tracking.experiment to a new name")
        return str(exp.experiment_id)


def _check_name(name: str) -> str:
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
    _check_name(name)
    _, _, lock = store_paths(cfg)
    with _file_lock(lock):
        client = _client(cfg)
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
    _client(cfg).log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])
    return run_id


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class RunLogger:
    """One child run (one fold): writes ``<out_dir>/tracking.json`` on every call, mirrors to MLflow.

    Args:
        cfg: tracking section; ``enabled=False`` keeps only the JSON file.
        out_dir: the run's output directory (gets ``tracking.json``).
        run_name: e.g. ``"bp4d-fold1"``.
        parent: name of the parent run (table row) to nest under, created if needed; None = top level.
        tags: caller tags (dataset, fold, variant, gpu...), added to the provenance tags.
        config: the full resolved config; its hash is tagged and its flattened keys are logged as params.
        manifest: data manifest file/dir whose hash is tagged.
        device: device description for the tag (default: from ``CUDA_VISIBLE_DEVICES``).

    Use as a context manager: a clean exit finishes the run as FINISHED, an exception as FAILED.
    """

    def __init__(self, cfg: TrackingConfig, out_dir: str | Path, *, run_name: str, parent: str | None = None,
                 tags: Mapping[str, Any] | None = None, config: Any = None, manifest: str | Path | None = None,
                 device: str | None = None) -> None:
        self.cfg = cfg
        self.path = Path(out_dir) / "tracking.json"
        self.parent = _check_name(parent) if parent is not None else None  # a typo must fail, not just warn
        tags = {**run_tags(config, manifest, device), **{k: str(v) for k, v in (tags or {}).items()}}
        self.record: dict[str, Any] = {
            "run_name": run_name, "parent": parent, "status": "RUNNING",
            "start_time": time.time(), "end_time": None,
            "tags": tags, "params": {}, "metrics": {}, "artifacts": [],
            "mlflow": {"enabled": cfg.enabled, "tracking_uri": tracking_uri(cfg) if cfg.enabled else None,
                       "experiment_id": None, "run_id": None, "parent_run_id": None, "error": None},
        }
        self._client: Any = None
        self._broken_client: Any = None  # set when mirroring stopped mid-run
        self._run_id: str | None = None
        self._config = config
        self._finished = False

    # -- mirror ---------------------------------------------------------------------------------------
    def _mirror(self, what: str, fn: Any, *args: Any) -> None:
        """Call ``fn`` on the MLflow client; on the first failure warn once and stop mirroring."""
        if self._client is None:
            return
        try:
            fn(*args)
        except Exception as err:  # any store problem: keep training, keep the JSON record
            self._disable(what, err)

    def _disable(self, what: str, err: BaseException) -> None:
        msg = f"{what}: {type(err).__name__}: {err}"
        self.record["mlflow"]["error"] = msg[:2000]
        self._broken_client, self._client = self._client, None
        logger.warning("MLflow tracking disabled for run %r (%s); everything is kept in %s",
                       self.record["run_name"], msg[:300], self.path)

    def _start_mirror(self) -> None:
        if not self.cfg.enabled:
            return
        try:
            exp_id = ensure_experiment(self.cfg)
            parent_id = get_or_create_parent(self.cfg, self.parent) if self.parent else None
            tags = dict(self.record["tags"])
            if parent_id:
                tags["mlflow.parentRunId"] = parent_id
            client = _client(self.cfg)
            run = client.create_run(exp_id, tags=tags, run_name=self.record["run_name"])
        except Exception as err:
            self._disable("starting the MLflow run", err)
            return
        self._client, self._run_id = client, run.info.run_id
        self.record["mlflow"].update(experiment_id=exp_id, run_id=self._run_id, parent_run_id=parent_id)

    def _save(self) -> None:
        atomic_write_json(self.path, self.record, indent=1)

    # -- public API -----------------------------------------------------------------------------------
    def __enter__(self) -> RunLogger:
        self._start_mirror()
        self._save()
        if self._config is not None:
            self.log_params(flatten(self._config))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.finish("FINISHED" if exc_type is None else "FAILED")

    @property
    def run_id(self) -> str | None:
        """MLflow run id, or None when not mirrored."""
        return self._run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log config values; nested mappings are flattened to dotted keys. Values are stored as strings."""
        flat = {k: json.dumps(v) if isinstance(v, list | dict | bool | None) else str(v)
                for k, v in flatten(params).items()}
        self.record["params"].update(flat)
        self._save()
        if self._client is not None:
            from mlflow.entities import Param

            # MLflow refuses values over 6000 characters; the JSON keeps the full value
            cut = " …[see tracking.json]"
            items = [Param(k, v if len(v) <= _MAX_PARAM else v[:_MAX_PARAM - len(cut)] + cut)
                     for k, v in flat.items()]
            for chunk in _chunks(items, 100):  # MLflow's per-batch limit on params
                if self._client is not None:  # a failed chunk stops the rest
                    self._mirror("log_params", self._client.log_batch, self._run_id, (), chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics at ``step`` (epoch or iteration); the JSON keeps the whole history."""
        now = int(time.time() * 1000)
        step = int(step) if step is not None else 0
        for key, value in metrics.items():
            self.record["metrics"].setdefault(key, []).append([step, float(value), now])
        self._save()
        if self._client is not None:
            from mlflow.entities import Metric

            items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
            self._mirror("log_metrics", self._client.log_batch, self._run_id, items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add or overwrite tags (e.g. the GPU slot's physical id)."""
        flat = {k: str(v) for k, v in tags.items()}
        self.record["tags"].update(flat)
        self._save()
        if self._client is not None:
            from mlflow.entities import RunTag

            items = [RunTag(k, v) for k, v in flat.items()]
            self._mirror("set_tags", self._client.log_batch, self._run_id, (), (), items)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or directory into the run's artifacts; the JSON records its absolute path."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: artifact to log does not exist; write it before calling log_artifact")
        self.record["artifacts"].append(str(path.resolve()))
        self._save()
        if self._client is not None:
            fn = self._client.log_artifacts if path.is_dir() else self._client.log_artifact
            self._mirror("log_artifact", fn, self._run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run (``FINISHED``, ``FAILED`` or ``KILLED``); later calls do nothing."""
        if self._finished:
            return
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"run status must be FINISHED, FAILED or KILLED, got {status!r}")
        self._finished = True
        self.record.update(status=status, end_time=time.time())
        self._save()
        if self._client is not None:
            self._mirror("finish", self._client.set_terminated, self._run_id, status)
            self._save()  # record a failure of the last mirror call too
        elif self._broken_client is not None:
            # best effort: mark the partial MLflow run so the UI points to the JSON record
            try:
                self._broken_client.set_tag(self._run_id, "au_ttt.mirror", f"incomplete, see {self.path}")
                self._broken_client.set_terminated(self._run_id, status)
            except Exception as err:
                logger.debug("could not close the partial MLflow run %s: %s", self._run_id, err)
