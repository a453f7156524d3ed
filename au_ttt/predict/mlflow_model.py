"""An exported bundle as an MLflow ``pyfunc`` model: DataFrame of image paths in, AU probabilities out.

``mlflow.pyfunc.load_model("runs:/<id>/model").predict(pd.DataFrame({"path": [...]}))`` returns the rows
``au-ttt predict`` writes for those files (one per face; ``success = 0`` rows for images without a face),
the same columns and the same probabilities, plus ``error`` (empty, or why a path could not be read). The
model carries the bundle as an artifact and the ``au_ttt`` package as code, and is built at load time by
``pyfunc_entry.py`` (MLflow's "models from code": no pickled object is stored), so ``mlflow models serve -m
runs:/<id>/model --env-manager local`` serves it from the current environment (bound to 127.0.0.1).

Loading any pyfunc model runs the Python code stored with it (here ``pyfunc_entry.py`` and the copied
``au_ttt`` package): load or serve only models you logged yourself or trust. A served model reads files on
the server, so only paths inside one folder are read: ``$AU_TTT_SERVE_ROOT``, else the server's current
folder at the time of the request; relative paths are taken from that folder. Any other path gets one
message (:data:`au_ttt.predict.expand.OUTSIDE_ROOT`) whether it exists or not, so a client cannot probe which
files the server has.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from au_ttt.errors import InputError

__all__ = ["MODEL_NAME", "SERVE_ROOT_ENV", "AUTTTPyfunc", "log_pyfunc_model", "pip_requirements", "serve_root"]

log = logging.getLogger(__name__)
MODEL_NAME = "model"
SERVE_ROOT_ENV = "AU_TTT_SERVE_ROOT"    # the folder a loaded/served model may read inputs from
# "models from code": MLflow stores and runs this file instead of unpickling a Python object
_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
# what the model needs at serving time; versions are taken from the installed distributions
_REQUIREMENTS = ("torch", "timm", "numpy", "pandas", "scipy", "pillow", "opencv-python", "dlib-bin",
                 "face_recognition_models", "facenet-pytorch", "safetensors", "pyyaml", "scikit-learn", "tqdm",
                 "mlflow")


def pip_requirements() -> list[str]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def serve_root() -> Path:
    """The folder the model reads inputs from: ``$AU_TTT_SERVE_ROOT``, else the current folder."""
    configured = os.environ.get(SERVE_ROOT_ENV)
    root = Path(configured).expanduser() if configured else Path.cwd()
    if not root.is_dir():
        raise InputError(f"{SERVE_ROOT_ENV}={configured}: not a folder; set it to the folder whose images the "
                         "model may read")
    return root.resolve()


def _paths(model_input: Any) -> list[str]:
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] == 0:
            raise InputError("the input DataFrame has no column; give one column 'path' of image paths")
        col = "path" if "path" in model_input.columns else model_input.columns[0]
        return [str(p) for p in model_input[col].tolist()]
    if isinstance(model_input, pd.Series):
        return [str(p) for p in model_input.tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(p) for p in model_input]


# MLflow warns at class creation that predict has no type hints; the logged signature states the input
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.pyfunc.*")

    class AUTTTPyfunc(mlflow.pyfunc.PythonModel):
        """Loads the bundle artifact once; ``predict`` scores image (or video) paths like ``au-ttt predict``."""

        def load_context(self, context) -> None:
            from au_ttt.predict.bundle import load_bundle

            self.loaded = load_bundle(context.artifacts["bundle"])
            self._predictor = None

        def predict(self, context, model_input, params: dict[str, Any] | None = None):
            from au_ttt.predict.job import PredictOptions, make_predictor, score_paths

            if self._predictor is None:
                self._predictor = make_predictor(self.loaded, PredictOptions(progress=False))
            return score_paths(_paths(model_input), self.loaded, predictor=self._predictor, root=serve_root())


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "path")]))


def log_pyfunc_model(run_dir: str | Path, tracking_cfg=None, run_id: str | None = None, *,
                     bundle: str | Path | None = None, config: str | Path | None = None,
                     linked_metrics: dict[str, float] | None = None, step: int = 0,
                     dataset: dict[str, str] | None = None, register_as: str | None = None,
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
    from au_ttt.predict.bundle import export_bundle
    from au_ttt.train.tracking import tracking_uri

    run_dir = Path(run_dir)
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
                    info = mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=str(_ENTRY),
                                                   artifacts={"bundle": str(bundle)}, code_paths=[str(code)],
                                                   pip_requirements=pip_requirements(), signature=_signature())
                if linked_metrics and getattr(info, "model_id", None):
                    from au_ttt.train.mlflow_inputs import link_model_metrics

                    link_model_metrics(uri, run_id, info.model_id, linked_metrics, step, dataset)
                if register_as:
                    version = mlflow.register_model(f"runs:/{run_id}/{MODEL_NAME}", register_as).version
                    if alias:
                        client.set_registered_model_alias(register_as, alias, str(version))
                    log.info("registered %s as model %r version %s%s", run_id, register_as, version,
                             f" (alias {alias!r})" if alias else "")
            finally:
                mlflow.end_run()
                client.update_run(run_id, status=status)
        finally:
            mlflow.set_tracking_uri(previous_uri)
    return f"runs:/{run_id}/{MODEL_NAME}"
