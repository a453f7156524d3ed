"""The one place ``predict``/``export`` read a training run directory (``au-ttt train --out``).

:func:`read_run` is the single adapter to the training package: it calls
:func:`au_ttt.train.cross.load_run` for (run.json, model) and gathers what the run directory says about
preprocessing, quality and provenance. The preprocessing sections (``crops``, ``heatmaps``,
``landmarks``) come, in this order, from an explicit ``--config``, a resolved config inside ``run.json``
(key ``config``), or the params the run logged to ``tracking.json`` (the full resolved config, flattened).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from au_ttt.config import from_dict
from au_ttt.data.align import AlignConfig
from au_ttt.data.heatmaps import HeatmapConfig
from au_ttt.data.landmarks import LandmarkConfig
from au_ttt.errors import InputError
from au_ttt.metrics import f1_per_au

__all__ = ["DECISION_THRESHOLD", "TrainedRun", "autocast", "read_run"]

# the threshold every F1 of the project is computed at (au_ttt.metrics.f1_per_au's default), read from there
DECISION_THRESHOLD: float = float(inspect.signature(f1_per_au).parameters["threshold"].default)
_SECTIONS = {"crops": AlignConfig, "heatmaps": HeatmapConfig, "landmarks": LandmarkConfig}


@dataclass
class TrainedRun:
    run_dir: Path
    info: dict[str, Any]               # run.json
    model: Any                         # AUTTT with the run's final weights
    weights: Path                      # model.safetensors
    sections: dict[str, Any]           # crops / heatmaps / landmarks configs
    sections_source: str
    metrics: dict[str, Any] = field(default_factory=dict)   # metrics.json (test part of the fold)
    tags: dict[str, str] = field(default_factory=dict)      # tracking.json provenance tags
    mlflow_run_id: str | None = None


def _load_run(run_dir: Path):
    """(run.json as a plain dict, model with the final weights), through the training side's one loader."""
    from au_ttt.train.cross import load_run

    info, model = load_run(run_dir)
    return info.to_json(), model


def autocast(device, amp: str):
    """The autocast context ``evaluate`` scores under (bf16 on CUDA when the run's amp says so)."""
    from au_ttt.train.runtime import autocast_for

    return autocast_for(device, amp)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: unreadable JSON ({err}); re-run the step that wrote it") from err


def _unflatten(params: dict[str, str], section: str) -> dict[str, Any]:
    """``{"crops.size": "72"}`` → ``{"size": 72}`` (values were logged as text; YAML reads them back)."""
    prefix = f"{section}."
    return {k[len(prefix):]: yaml.safe_load(v) for k, v in params.items() if k.startswith(prefix) and "." not in
            k[len(prefix):]}


def _sections(run_dir: Path, info: dict, tracking: dict | None, config: Path | None) -> tuple[dict, str]:
    if config is not None:
        from au_ttt.settings import load_settings

        settings = load_settings(config)
        return {name: getattr(settings, name) for name in _SECTIONS}, str(config)
    if all(isinstance(info.get(n), dict) for n in _SECTIONS):  # run.json records its preprocessing
        src = str(run_dir / "run.json")
        return {n: from_dict(c, info[n], source=src, prefix=f"{n}.") for n, c in _SECTIONS.items()}, src
    params = (tracking or {}).get("params") or {}
    if any(k.startswith("heatmaps.") for k in params):
        src = str(run_dir / "tracking.json")
        return {n: from_dict(c, _unflatten(params, n), source=src, prefix=f"{n}.") for n, c in _SECTIONS.items()}, src
    raise InputError(f"{run_dir}: the run records no preprocessing settings (crops, heatmaps); pass the "
                     "config it was trained with: --config config/config.yaml")


def read_run(run_dir: str | Path, config: str | Path | None = None) -> TrainedRun:
    """Everything ``export`` and ``predict`` need from a finished run directory."""
    run_dir = Path(run_dir)
    info, model = _load_run(run_dir)
    tracking_path = run_dir / "tracking.json"
    tracking = _read_json(tracking_path) if tracking_path.is_file() else None
    sections, source = _sections(run_dir, info, tracking, Path(config) if config is not None else None)
    metrics_path = run_dir / "metrics.json"
    metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
    return TrainedRun(run_dir, info, model, run_dir / "model.safetensors", sections, source, metrics,
                      dict((tracking or {}).get("tags") or {}), ((tracking or {}).get("mlflow") or {}).get("run_id"))
