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

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from au_ttt.errors import InputError
from au_ttt.train.model_log import MODEL_NAME, log_pyfunc_model, pip_requirements  # re-exported

__all__ = ["MODEL_NAME", "SERVE_ROOT_ENV", "AUTTTPyfunc", "log_pyfunc_model", "pip_requirements", "serve_root"]

log = logging.getLogger(__name__)
SERVE_ROOT_ENV = "AU_TTT_SERVE_ROOT"    # the folder a loaded/served model may read inputs from


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
