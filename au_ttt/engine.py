"""The engine: train and score one fold from Python, with typed settings, as the commands do.

A notebook trains a fold in three lines::

    from au_ttt import engine
    settings = engine.load("config/config.yaml")
    metrics = engine.train(settings, engine.DataPaths(index, crops, heatmaps), "bp4d", 1, "runs/bp4d-1")

``au-ttt train``, ``au-ttt evaluate`` and ``au-ttt pretrain`` parse their arguments, call these functions and
print; the run directory, run key, train.log, MLflow run and logged model are the same either way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from au_ttt.settings import Settings, load_settings
from au_ttt.train.data import DataPaths

if TYPE_CHECKING:
    from au_ttt.train.records import CrossMetrics, FoldMetrics, PretrainResult
    from au_ttt.train.tracking import RunLogger

__all__ = ["DataPaths", "evaluate", "load", "pretrain", "train", "with_overrides"]

log = logging.getLogger("au_ttt.engine")
load = load_settings


def with_overrides(settings: Settings, *, pretrained: str | None = None, threads: int | None = None,
                   seed: int | None = None) -> Settings:
    """``settings`` with the command line's train overrides (``pretrained='none'``: train from scratch)."""
    train = settings.train
    if pretrained:
        train = replace(train, pretrained=None if pretrained.lower() == "none" else pretrained)
    if threads is not None:
        train = replace(train, threads=threads)
    if seed is not None:  # a training repeat of the same fold: its own run key
        train = replace(train, seed=seed)
    return replace(settings, train=train)


def train(settings: Settings, paths: DataPaths, dataset: str, test_part: int, out: str | Path, *,
          variant: str | None = None, resume: bool = False, device: str = "auto", parent: str | None = None,
          progress: bool = True, seed_tag: bool = False) -> FoldMetrics:
    """Train the fold testing on ``test_part`` into the run directory ``out`` and return its metrics.

    ``seed_tag`` names the MLflow run ``<run>-seed<N>`` (a repeat of the fold under another ``train.seed``).

    Everything a user can get wrong (pretrained file, variant, data sizes, missing inputs) fails here before
    any data is loaded; a second process on the same ``out`` is refused (run-directory lock).
    """
    from au_ttt.locks import run_dir_lock
    from au_ttt.train.data import check_compatible
    from au_ttt.train.weights import weights_kind

    if settings.train.pretrained:
        weights_kind(settings.train.pretrained)  # missing/unreadable file → error now, not after data loading
    settings.model_for(variant)              # unknown variant → error now
    check_compatible(settings, variant)
    paths.check()
    out = Path(out)
    with run_dir_lock(out):  # a second train on this out would mix both runs' records: refused here
        return _train_locked(settings, paths, dataset, test_part, out, variant=variant, resume=resume,
                             device=device, parent=parent, progress=progress, seed_tag=seed_tag)


@contextmanager
def _run_log(out: Path) -> Iterator[None]:
    """``out/train.log`` receives every log record of the run (and only of the run: removed afterwards)."""
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _train_locked(settings: Settings, paths: DataPaths, dataset: str, test_part: int, out: Path, *,
                  variant: str | None, resume: bool, device: str, parent: str | None,
                  progress: bool, seed_tag: bool) -> FoldMetrics:
    """The run itself, with ``out`` held by this process."""
    from au_ttt.train.data import load_split
    from au_ttt.train.loop import RunSpec, plan_resume, train_run
    from au_ttt.train.mlflow_inputs import log_fold_dataset
    from au_ttt.train.runkey import run_key
    from au_ttt.train.runtime import interrupt_on_sigterm, job_device
    from au_ttt.train.tracking import RUN_KEY_TAG, RunLogger

    spec = RunSpec(dataset, test_part, variant)
    key = run_key(settings.resolved(variant), asdict(spec),
                  {"index": paths.index, "crops": paths.crops, "heatmaps": paths.heatmaps,
                   "pretrained": settings.train.pretrained})
    train_ds = load_split(settings, paths, dataset, test_part, "train")
    test_ds = load_split(settings, paths, dataset, test_part, "test")
    with _run_log(out):
        plan = plan_resume(out, key, resume)
        log.info("%s: run key %s; %s", spec.name, key.digest[:16], plan.message)
        interrupt_on_sigterm()
        # the device (and GPU slot) is chosen before anything touches CUDA
        with job_device(device) as place:
            tags = {"dataset": dataset, "test_part": test_part, "variant": variant or "model", "kind": "train",
                    "seed": settings.train.seed, RUN_KEY_TAG: key.digest, **place.tags}
            run_name = f"{spec.name}-seed{settings.train.seed}" if seed_tag else spec.name
            with RunLogger(settings.tracking, out, run_name=run_name,
                           parent=parent or f"{dataset}/{variant or 'model'}", tags=tags,
                           config=settings.resolved(variant), manifest=paths.index, device=str(place.device),
                           continue_run=plan.resumed) as run:
                data = log_fold_dataset(run, paths.index, dataset, test_part)
                metrics = train_run(settings, spec, train_ds, test_ds, out, key=key, device=place.device,
                                    plan=plan, tracker=run, progress=progress)
                _record_final(settings, out, run, metrics, data)
    return metrics


def _record_final(settings: Settings, out: Path, run: RunLogger, metrics: FoldMetrics,
                  data: dict[str, str]) -> None:
    """Final scores, the run's files and (``tracking.log_model``) the model, into the tracked run."""
    final = {"final_f1_mean": metrics.f1_mean, **{f"final_f1_{k}": v for k, v in metrics.f1.items()}}
    run.log_metrics_once(final, step=settings.train.epochs)
    for name in ("metrics.json", "run.json", "curves.png"):
        run.log_artifact(out / name)
    if settings.tracking.log_model and run.run_id:
        _log_model(out, settings, run.run_id, final, data)


def _log_model(out: Path, settings: Settings, run_id: str, final: dict[str, float], data: dict[str, str]) -> None:
    """The run as an MLflow pyfunc model (`au-ttt export` bundle inside) carrying its final scores on the
    dataset they were measured on; tracking never stops training."""
    from au_ttt.train.model_log import log_pyfunc_model

    try:
        uri = log_pyfunc_model(out, settings.tracking, run_id, config=settings.source, linked_metrics=final,
                               step=settings.train.epochs, dataset=data)
        log.info("logged the model to MLflow: %s", uri)
    except Exception as err:  # a store problem must not fail a finished training
        log.warning("could not log the model to MLflow (%s: %s); `au-ttt export %s` makes the same bundle",
                    type(err).__name__, err, out)


def evaluate(settings: Settings, run_dir: str | Path, dataset: str, paths: DataPaths, out: str | Path, *,
             target_part: int | None = None, device: str = "auto") -> CrossMetrics:
    """Score the run in ``run_dir`` on ``dataset`` (its own test part, or cross-domain) into ``out``; an
    `au-ttt probe` fold is scored by its own fit (no device needed)."""
    from au_ttt.train.cross import evaluate_run
    from au_ttt.train.probe import PROBE_FILE, probe_cross
    from au_ttt.train.runtime import job_device

    if (Path(run_dir) / PROBE_FILE).is_file():
        return probe_cross(settings, run_dir, dataset, paths, out, target_part=target_part)
    with job_device(device) as place:
        return evaluate_run(settings, run_dir, dataset, paths.index, paths.crops, paths.heatmaps, out,
                            target_part=target_part, device=place.device)


def pretrain(settings: Settings, out: str | Path, *, data_root: str | Path | None = None,
             max_steps: int | None = None, device: str = "auto") -> PretrainResult:
    """Classification pretraining of the backbone in this process into ``out`` (backbone.safetensors, what
    :func:`train` loads as ``pretrained``, and pretrain.json).

    Started by torchrun (``au-ttt pretrain --nproc N``) this is one DDP worker; the launcher holds ``out``'s lock.
    Otherwise ``out`` is locked for the run: a second pretraining into it stops at once, naming the holder.
    """
    import os

    from au_ttt.locks import run_dir_lock
    from au_ttt.train.pretrain import pretrain as run_pretrain
    from au_ttt.train.runtime import ENV_PG_STORE, interrupt_on_sigterm, job_device

    cfg = settings.pretrain
    if data_root is not None:
        cfg = replace(cfg, data_root=str(data_root))
    if max_steps is not None:
        cfg = replace(cfg, max_steps=max_steps)
    interrupt_on_sigterm()
    worker = ENV_PG_STORE in os.environ or os.environ.get("RANK", "0") != "0"
    with contextlib.nullcontext() if worker else run_dir_lock(out), job_device(device) as place:
        return run_pretrain(settings.model, cfg, Path(out), device=place.device)
