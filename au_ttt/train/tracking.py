"""Run tracking: a local ``tracking.json`` always, mirrored to an MLflow SQLite store when it works.

One child run per fold, nested under its table row's parent run (:mod:`au_ttt.train.mlflow_store`: the
store, the experiment, the parents) with the ``mlflow.parentRunId`` tag, which the UI nests by and which
works across processes (``start_run(parent_run_id=...)`` needs the parent active in the same process).
A job killed mid-run is continued by its resumed job (same run key: the same MLflow run, reopened) or,
when the run restarts, closed as KILLED and kept in ``tracking.json`` under ``previous_runs``.

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

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write_json
from au_ttt.train.mlflow_store import (
    PARENT_TAG,
    TrackingConfig,
    check_name,
    chunks,
    ensure_experiment,
    get_or_create_parent,
    log_parent_metrics,
    store_paths,
    tracking_uri,
)
from au_ttt.train.mlflow_store import mlflow_client as _client
from au_ttt.train.provenance import flatten, run_tags

# the store helpers are re-exported: callers import tracking as one module
__all__ = ["PARENT_TAG", "RUN_KEY_TAG", "RunLogger", "TrackingConfig", "ensure_experiment", "get_or_create_parent",
           "log_parent_metrics", "store_paths", "tracking_uri"]

logger = logging.getLogger(__name__)

RUN_KEY_TAG = "au_ttt.run_key"  # au_ttt.train.runkey digest: a job continues a tracked run only under the same key
_MAX_PARAM = 6000  # MLflow's MAX_PARAM_VAL_LENGTH (mlflow/utils/validation.py)


def _param(value: Any) -> str:
    """Params are strings: JSON for lists, dicts, booleans and null (``true``, not ``True``)."""
    return json.dumps(value) if isinstance(value, list | dict | bool | None) else str(value)


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

        continue_run: this job resumes a killed job of the same run (same ``au_ttt.run_key`` tag, the caller
            resumed its checkpoint): the previous record and MLflow run are reopened (status RUNNING) and
            extended, not replaced. Otherwise a previous record in ``tracking.json`` is kept under
            ``previous_runs`` and its MLflow run, if a kill left it RUNNING, is marked KILLED.

    Use as a context manager: a clean exit finishes the run as FINISHED, an exception as FAILED, an
    interruption (Ctrl-C, SIGTERM turned into KeyboardInterrupt/SystemExit) as KILLED.
    """

    def __init__(self, cfg: TrackingConfig, out_dir: str | Path, *, run_name: str, parent: str | None = None,
                 tags: Mapping[str, Any] | None = None, config: Any = None, manifest: str | Path | None = None,
                 device: str | None = None, continue_run: bool = False) -> None:
        self.cfg = cfg
        self.continue_run = continue_run
        self.path = Path(out_dir) / "tracking.json"
        self.parent = check_name(parent) if parent is not None else None  # a typo must fail, not just warn
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

    def _reopen_mirror(self, run_id: str) -> None:
        """Continue the MLflow run of a killed job: status back to RUNNING, the new tags added."""
        try:
            client = _client(self.cfg)
            client.update_run(run_id, status="RUNNING")
            from mlflow.entities import RunTag

            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in self.record["tags"].items()])
        except Exception as err:
            self._disable(f"reopening MLflow run {run_id}", err)
            return
        self._client, self._run_id = client, run_id
        self.record["mlflow"]["error"] = None

    def _replay(self) -> None:
        """Copy the JSON record's params and metrics into a freshly created MLflow run (continued records
        whose first job could not mirror)."""
        from mlflow.entities import Metric, Param

        params = [Param(k, v[:_MAX_PARAM]) for k, v in self.record["params"].items()]
        for chunk in chunks(params, 100):
            self._mirror("log_params", self._client.log_batch, self._run_id, (), chunk)
        metrics = [Metric(k, float(v), int(t), int(step)) for k, rows in self.record["metrics"].items()
                   for step, v, t in rows]
        for chunk in chunks(metrics, 1000):
            if self._client is not None:
                self._mirror("log_metrics", self._client.log_batch, self._run_id, chunk)

    def _save(self) -> None:
        atomic_write_json(self.path, self.record, indent=1)

    def _previous(self) -> dict[str, Any] | None:
        """The record a former job left in ``tracking.json``; an unreadable one is moved aside, not fatal."""
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
            if isinstance(data, dict) and isinstance(data.get("metrics"), dict) and isinstance(data.get("tags"), dict):
                return data
            problem = "not a tracking record"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            problem = f"{type(err).__name__}: {err}"
        aside = self.path.with_name(f"tracking.unreadable-{int(time.time())}.json")
        os.replace(self.path, aside)
        logger.warning("%s: %s; moved to %s, starting a new record", self.path, problem, aside)
        return None

    def _same_store(self, record: dict[str, Any]) -> bool:
        ml = record.get("mlflow") or {}
        return bool(self.cfg.enabled and ml.get("run_id") and ml.get("tracking_uri") == tracking_uri(self.cfg))

    def _close_killed(self, record: dict[str, Any]) -> None:
        """A job that died without finishing left its run RUNNING: mark it KILLED (JSON and MLflow)."""
        if record.get("status") != "RUNNING":
            return
        record.update(status="KILLED", end_time=record.get("end_time") or time.time())
        if self._same_store(record):
            try:
                client, run_id = _client(self.cfg), record["mlflow"]["run_id"]
                client.set_tag(run_id, "au_ttt.superseded_by", "a restarted job (see tracking.json)")
                client.set_terminated(run_id, "KILLED")
            except Exception as err:
                logger.warning("could not mark the killed MLflow run %s KILLED: %s", record["mlflow"]["run_id"], err)

    # -- public API -----------------------------------------------------------------------------------
    def __enter__(self) -> RunLogger:
        previous = self._previous()
        key = self.record["tags"].get(RUN_KEY_TAG)
        if (self.continue_run and previous is not None and key is not None
                and previous["tags"].get(RUN_KEY_TAG) == key and previous.get("run_name") == self.record["run_name"]):
            self._continue(previous)
            return self
        if previous is not None:
            self._close_killed(previous)
            self.record["previous_runs"] = [*previous.pop("previous_runs", []), previous]
        self._start_mirror()
        self._save()
        if self._config is not None:
            self.log_params(flatten(self._config))
        return self

    def _continue(self, previous: dict[str, Any]) -> None:
        new_tags = self.record["tags"]
        resumes = [*previous.get("resumes", []), time.time()]
        self.record = {**previous, "status": "RUNNING", "end_time": None, "resumes": resumes,
                       "tags": {**previous["tags"], **new_tags}}
        self.record.setdefault("mlflow", {}).update(enabled=self.cfg.enabled,
                                                    tracking_uri=tracking_uri(self.cfg) if self.cfg.enabled else None)
        if self._same_store(previous):
            self._reopen_mirror(previous["mlflow"]["run_id"])
        elif self.cfg.enabled:
            self._start_mirror()
            if self._client is not None:
                self._replay()
        self._save()
        if self._config is not None:  # values that changed without changing the run key (threads, workers)
            flat = flatten(self._config)
            self.log_params({k: v for k, v in flat.items() if k not in self.record["params"]})
            changed = {k: v for k, v in flat.items() if k in self.record["params"] and _param(v) !=
                       self.record["params"][k]}
            if changed:  # MLflow refuses to change a logged param: keep the new values in the JSON only
                self.record["params"].update({k: _param(v) for k, v in changed.items()})
                self._save()
        logger.info("continuing tracked run %s (MLflow run %s)", self.record["run_name"], self._run_id)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        else:
            self.finish("KILLED" if issubclass(exc_type, KeyboardInterrupt | SystemExit) else "FAILED")

    @property
    def run_id(self) -> str | None:
        """MLflow run id, or None when not mirrored."""
        return self._run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log config values; nested mappings are flattened to dotted keys. Values are stored as strings."""
        flat = {k: _param(v) for k, v in flatten(params).items()}
        self.record["params"].update(flat)
        self._save()
        if self._client is not None:
            from mlflow.entities import Param

            # MLflow refuses values over 6000 characters; the JSON keeps the full value
            cut = " …[see tracking.json]"
            items = [Param(k, v if len(v) <= _MAX_PARAM else v[:_MAX_PARAM - len(cut)] + cut)
                     for k, v in flat.items()]
            for chunk in chunks(items, 100):  # MLflow's per-batch limit on params
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

    def log_metrics_once(self, metrics: Mapping[str, float], step: int) -> None:
        """Log only the metrics not yet recorded at ``step`` (a resumed job replaying its history)."""
        done = {k for k, rows in self.record["metrics"].items() if any(r[0] == int(step) for r in rows)}
        todo = {k: v for k, v in metrics.items() if k not in done}
        if todo:
            self.log_metrics(todo, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add or overwrite tags (e.g. the GPU slot's physical id)."""
        flat = {k: str(v) for k, v in tags.items()}
        self.record["tags"].update(flat)
        self._save()
        if self._client is not None:
            from mlflow.entities import RunTag

            items = [RunTag(k, v) for k, v in flat.items()]
            self._mirror("set_tags", self._client.log_batch, self._run_id, (), (), items)

    def log_inputs(self, records: list[dict[str, str]], entities: Any) -> None:
        """Record the run's datasets in ``tracking.json`` (``inputs``) and mirror them as MLflow dataset inputs;
        ``entities()`` builds the ``DatasetInput`` list only when mirroring (it imports mlflow)."""
        self.record["inputs"] = records
        self._save()
        if self._client is not None:
            self._mirror("log_inputs", lambda: self._client.log_inputs(self._run_id, entities()))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or directory into the run's artifacts; the JSON records its absolute path."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: artifact to log does not exist; write it before calling log_artifact")
        if str(path.resolve()) not in self.record["artifacts"]:  # a continued run logs the same files again
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
