"""Log a finished run as an MLflow ``pyfunc`` model: the tracking layer's half of the MLflow model.

The model itself (what ``predict`` does when MLflow loads it) is :mod:`au_ttt.predict.mlflow_model`; MLflow
finds it through ``predict/pyfunc_entry.py`` ("models from code"), named here only as a file. Training logs
its model from here without climbing into ``predict/``; ``au-ttt export --mlflow-run`` uses the same function.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from au_ttt.errors import InputError
from au_ttt.sections import TrackingConfig

__all__ = ["MODEL_NAME", "log_pyfunc_model", "pip_requirements"]

log = logging.getLogger(__name__)
MODEL_NAME = "model"
# "models from code": MLflow stores and runs this file instead of unpickling a Python object
ENTRY = Path(__file__).resolve().parents[1] / "predict" / "pyfunc_entry.py"
# what the model needs at serving time; versions are taken from the installed distributions
_REQUIREMENTS = ("torch", "timm", "numpy", "pandas", "scipy", "pillow", "opencv-python", "dlib-bin",
                 "face_recognition_models", "facenet-pytorch", "safetensors", "pyyaml", "scikit-learn", "tqdm",
                 "mlflow")


def pip_requirements() -> list[str]:
    """Pinned requirements of the serving environment (only the distributions installed here)."""
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "path")]))


def _store(run_dir: Path, tracking_cfg: TrackingConfig | str | None, run_id: str | None) -> tuple[str, str]:
    """(tracking URI, run id): given, else what ``run_dir/tracking.json`` recorded."""
    from au_ttt.train.tracking import tracking_uri

    tracking = run_dir / "tracking.json"
    recorded = (json.loads(tracking.read_text()).get("mlflow") or {}) if tracking.is_file() else {}
    run_id = run_id or recorded.get("run_id")
    if not run_id:
        raise InputError(f"{run_dir}: no MLflow run recorded in tracking.json; pass the run id explicitly")
    if tracking_cfg is None:
        uri = recorded.get("tracking_uri")
        if not uri:
            raise InputError(f"{run_dir}: tracking.json records no tracking URI; pass the config (--config)")
    else:
        uri = tracking_cfg if isinstance(tracking_cfg, str) else tracking_uri(tracking_cfg)
    return uri, run_id


def log_pyfunc_model(run_dir: str | Path, tracking_cfg: TrackingConfig | str | None = None,
                     run_id: str | None = None, *, bundle: str | Path | None = None,
                     config: str | Path | None = None, linked_metrics: dict[str, float] | None = None,
                     step: int = 0, dataset: dict[str, str] | None = None, register_as: str | None = None,
                     alias: str | None = None) -> str:
    """Log ``run_dir``'s bundle (exported now unless ``bundle`` is given) as pyfunc model ``model`` to the
    existing MLflow run ``run_id``; returns its ``runs:/<id>/model`` URI. ``linked_metrics`` are logged against
    the new logged model (MLflow 3 ``LoggedModel``; with ``dataset``, a :mod:`au_ttt.train.mlflow_inputs` record,
    against the dataset they were scored on too), so the model carries its scores. ``register_as`` also registers
    it in the store's model registry under that name (a new version), with ``alias`` pointing at that version.

    ``tracking_cfg`` (a TrackingConfig, or a tracking URI) names the store; ``run_id`` the run. Either
    defaults to what ``run_dir/tracking.json`` recorded. The run's status is left as it was (a finished
    run stays FINISHED, a running one RUNNING).
    """
    import mlflow
    from mlflow import MlflowClient

    import au_ttt
    from au_ttt.predict.bundle import export_bundle  # the bundle format is predict's; exporting needs no model

    run_dir = Path(run_dir)
    uri, run_id = _store(run_dir, tracking_cfg, run_id)
    client = MlflowClient(tracking_uri=uri)
    try:
        status = client.get_run(run_id).info.status
    except Exception as err:  # mlflow raises MlflowException (and store errors) for an unknown id
        raise InputError(f"MLflow run {run_id} not found in {uri} ({type(err).__name__})") from None
    previous_uri = mlflow.get_tracking_uri()
    with tempfile.TemporaryDirectory(prefix="au-ttt-bundle-") as tmp:
        if bundle is None:
            bundle = export_bundle(run_dir, Path(tmp) / "bundle", config)
        code = Path(tmp) / "code" / "au_ttt"     # the package without caches
        shutil.copytree(Path(au_ttt.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        mlflow.set_tracking_uri(uri)
        try:
            mlflow.start_run(run_id=run_id)
            try:
                with warnings.catch_warnings():
                    # MLflow suggests type hints / an input example; the explicit signature covers the input
                    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.pyfunc.*")
                    info = mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=str(ENTRY),
                                                   artifacts={"bundle": str(bundle)}, code_paths=[str(code)],
                                                   pip_requirements=pip_requirements(), signature=_signature())
                if linked_metrics and getattr(info, "model_id", None):
                    from au_ttt.train.mlflow_inputs import link_model_metrics

                    link_model_metrics(uri, run_id, info.model_id, linked_metrics, step, dataset)
                if register_as:
                    _register(client, run_id, register_as, alias)
            finally:
                mlflow.end_run()
                client.update_run(run_id, status=status)
        finally:
            mlflow.set_tracking_uri(previous_uri)
    return f"runs:/{run_id}/{MODEL_NAME}"


def _register(client, run_id: str, name: str, alias: str | None) -> None:
    """A new version of registered model ``name`` from the run's model, ``alias`` pointing at it."""
    import mlflow

    version = mlflow.register_model(f"runs:/{run_id}/{MODEL_NAME}", name).version
    if alias:
        client.set_registered_model_alias(name, alias, str(version))
    log.info("registered %s as model %r version %s%s", run_id, name, version, f" (alias {alias!r})" if alias else "")
