"""Fetching a model from MLflow (``--model runs:/…``, ``models:/…``) without side effects and without hanging.

* The store is ``--tracking-uri``, else ``--config``'s tracking section, else ``$MLFLOW_TRACKING_URI`` (or a
  URI a Python caller set with ``mlflow.set_tracking_uri``). With none of them MLflow 3 falls back to
  ``sqlite:///mlflow.db`` in the current folder: it would create an empty store there and then report the
  run missing. That is refused instead, naming the three ways to give the store.
* A local store (``sqlite:///…``, ``file:…`` or a plain path) must exist: opening a missing one creates it.
* An HTTP store is asked with ``MLFLOW_HTTP_REQUEST_TIMEOUT`` = 15 s and ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
  = 2 (backoff factor 1) unless the user set those variables: MLflow's defaults (120 s, 7 retries, backoff
  ×2) keep a command waiting for minutes on a server that is down.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from au_ttt.errors import InputError

__all__ = ["HTTP_LIMITS", "MLFLOW_SCHEMES", "download_model", "resolve_tracking_uri"]

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
# set for the download when the user has not set them (MLflow reads them at each request)
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_HOW = ("pass --tracking-uri (e.g. sqlite:////abs/path/results/mlflow/mlflow.db or http://host:5000), --config "
        "with the tracking section the model was logged under, or set MLFLOW_TRACKING_URI")


def resolve_tracking_uri(uri: str, tracking_uri: str | None) -> str:
    """The store ``uri`` is looked up in; an :class:`InputError` if none is configured or it does not exist."""
    import mlflow

    if not tracking_uri:
        if not mlflow.is_tracking_uri_set():
            raise InputError(f"{uri}: no MLflow tracking store is configured (MLflow would create an empty "
                             f"mlflow.db in the current folder); {_HOW}")
        tracking_uri = mlflow.get_tracking_uri()
    _check_local_store(tracking_uri)
    return tracking_uri


def _check_local_store(tracking_uri: str) -> None:
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        path = tracking_uri[len("sqlite:///"):] if tracking_uri.startswith("sqlite:///") else ""
        if path and path != ":memory:" and not Path(path).is_file():
            raise InputError(f"tracking URI {tracking_uri}: no MLflow store at {path} (opening it would create an "
                             f"empty one); {_HOW}")
    elif parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else tracking_uri
        if not Path(path).is_dir():
            raise InputError(f"tracking URI {tracking_uri}: no MLflow store folder at {path}; {_HOW}")


@contextmanager
def _http_limits() -> Iterator[None]:
    """:data:`HTTP_LIMITS` in the environment for the duration, where the user has not set them."""
    added = [k for k in HTTP_LIMITS if k not in os.environ]
    os.environ.update({k: HTTP_LIMITS[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def download_model(uri: str, tracking_uri: str | None) -> Path:
    """The local folder of MLflow model ``uri`` (downloaded from the store if remote)."""
    import mlflow

    store = resolve_tracking_uri(uri, tracking_uri)
    # runs:/ resolves through the run's logged model with the *global* tracking URI (MLflow 3), so set it
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(store)
    try:
        with _http_limits():
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=store))
    except Exception as err:  # mlflow raises its own exception types for unknown runs, stores, paths
        text = str(err)
        if urlparse(store).scheme in ("http", "https") and any(
                s in text for s in ("Max retries exceeded", "Connection refused", "timed out", "Failed to resolve")):
            raise InputError(f"{uri}: cannot reach the MLflow tracking server at {store} ({text[:200]}); check that "
                             "it runs and the URI, or pass another --tracking-uri") from None
        raise InputError(f"{uri}: cannot fetch the MLflow model from {store} ({type(err).__name__}: {text[:300]}); "
                         "check the run id and --tracking-uri (or --config)") from None
    finally:
        mlflow.set_tracking_uri(previous)
