"""What a fold run was trained and tested on, as an MLflow dataset input, and its model's metrics linked.

Why: a run's params say how it was trained, not on what. ``mlflow.log_input`` puts the frame index beside the
run in the UI (Run → Inputs) with its content digest, where it came from and its schema, so two runs
with the same digest provably saw the same frames and labels. The digest is the index file's SHA-256 (the
run key's index component, :func:`au_ttt.train.runkey.file_digest`), not MLflow's digest of a sample; the
fold (training parts, test part) is an input tag. The final scores are also logged against the logged
model (MLflow 3 ``LoggedModel``), so the Models tab shows them with the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["DIGEST_CHARS", "fold_dataset_record", "link_model_metrics", "log_fold_dataset"]

DIGEST_CHARS = 32  # MLflow stores a dataset digest in 36 characters at most


def fold_dataset_record(index: str | Path, dataset: str, test_part: int) -> dict[str, str]:
    """The dataset input of one fold run, as written to ``tracking.json``."""
    from au_ttt.data.protocol import train_parts
    from au_ttt.train.runkey import file_digest

    return {"name": f"{dataset}-frame-index", "digest": file_digest(index)[:DIGEST_CHARS],
            "source": str(Path(index).resolve()), "context": "training",
            "fold": f"train parts {'+'.join(map(str, train_parts(test_part)))}, test part {test_part}"}


def _entities(index: Path, record: dict[str, str]) -> list[Any]:
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from au_ttt.data.frame_index import load_index

    data = mlflow.data.from_pandas(load_index(index), source=record["source"], name=record["name"],
                                   digest=record["digest"])
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, record["context"]), InputTag("au_ttt.fold", record["fold"])]
    return [DatasetInput(data._to_mlflow_entity(), tags=tags)]


def log_fold_dataset(run: Any, index: str | Path, dataset: str, test_part: int) -> dict[str, str]:
    """Log the frame index as the dataset input of ``run`` (a :class:`~au_ttt.train.tracking.RunLogger`)."""
    record = fold_dataset_record(index, dataset, test_part)
    run.log_inputs([record], lambda: _entities(Path(index), record))
    return record


def link_model_metrics(tracking_uri: str, run_id: str, model_id: str, metrics: dict[str, float], step: int,
                       dataset: dict[str, str] | None = None) -> None:
    """Log ``metrics`` on ``run_id`` against the logged model ``model_id`` (and the dataset they were scored on)."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    extra = {"dataset_name": dataset["name"], "dataset_digest": dataset["digest"]} if dataset else {}
    MlflowClient(tracking_uri=tracking_uri).log_batch(
        run_id, metrics=[Metric(k, float(v), now, step, model_id=model_id, **extra) for k, v in metrics.items()])
