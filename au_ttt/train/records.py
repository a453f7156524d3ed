"""Typed records of a run's JSON files — written by the engines, read by evaluation and the tables.

* :class:`RunInfo` → ``run.json`` (what was trained, on what, under which run key);
* :class:`FoldMetrics` → ``metrics.json`` of ``au-ttt train`` (last-epoch F1; best epoch kept apart);
* :class:`CrossMetrics` → ``metrics.json`` of ``au-ttt evaluate``;
* :class:`PretrainResult` → ``pretrain.json``.

Each record is written atomically with :meth:`write` and read back with :meth:`read`, which turns a missing,
truncated or mistyped file into an :class:`InputError` naming the file and the command that re-creates it.
Reading reuses the strict config converter (:func:`au_ttt.config.from_dict`), so types are checked once.
Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from au_ttt.config import ConfigError, from_dict, to_dict
from au_ttt.data.align import AlignConfig
from au_ttt.data.heatmaps import HeatmapConfig
from au_ttt.data.landmarks import LandmarkConfig
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write_json
from au_ttt.loss_config import LossConfig
from au_ttt.model.config import ModelConfig
from au_ttt.train.config import TrainConfig

__all__ = ["BEST_KEY", "BestEpoch", "CrossMetrics", "FoldMetrics", "PretrainResult", "RunInfo", "RunSpec",
           "load_json_object"]

# JSON name of FoldMetrics.best: the name itself warns that choosing the epoch on the test part is optimistic
BEST_KEY = "best_epoch_on_test (optimistic, not the reported number)"

R = TypeVar("R", bound="_Record")


def load_json_object(path: str | Path, hint: str) -> dict[str, Any]:
    """A JSON object from ``path``; missing/corrupt/non-object files are InputErrors naming ``hint``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found; {hint}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); re-create it: {hint}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror}); {hint}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}; re-create it: {hint}")
    return data


class _Record:
    FILE: ClassVar[str]
    HINT: ClassVar[str]
    _RENAMED: ClassVar[dict[str, str]] = {}  # field name -> JSON name

    def to_json(self) -> dict[str, Any]:
        data = to_dict(self)
        return {self._RENAMED.get(k, k): v for k, v in data.items()}

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any], source: str) -> R:
        back = {v: k for k, v in cls._RENAMED.items()}
        try:
            return from_dict(cls, {back.get(k, k): v for k, v in data.items()}, source=source)
        except ConfigError as err:
            raise InputError(f"{err}; is this a {cls.FILE} of `{cls.HINT}`? re-create it with that command") from None

    def write(self, folder: str | Path) -> Path:
        return atomic_write_json(Path(folder) / self.FILE, self.to_json())

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        """From a folder (its ``FILE``) or the file itself."""
        path = Path(path)
        path = path / cls.FILE if path.is_dir() or path.name != cls.FILE else path
        return cls.from_json(load_json_object(path, f"run `{cls.HINT}` first"), str(path))


@dataclass(frozen=True)
class RunSpec:
    """What one training job is: the dataset, the fold (named by its test part) and the Table III variant."""

    dataset: str
    test_part: int
    variant: str | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset}-test{self.test_part}-{self.variant or 'model'}"


@dataclass(frozen=True)
class RunInfo(_Record):
    FILE: ClassVar[str] = "run.json"
    HINT: ClassVar[str] = "au-ttt train"

    spec: RunSpec
    aus: tuple[int, ...]
    model: ModelConfig        # the variant applied
    train: TrainConfig
    loss: LossConfig
    heatmaps: HeatmapConfig
    train_rates: tuple[float, ...]
    train_frames: int
    test_frames: int
    device: str
    pretrained: str | None = None
    run_key: str | None = None
    run_key_components: dict[str, str] = field(default_factory=dict)
    # how the training frames were prepared, so a trained run can score new images the same way (au-ttt predict)
    landmarks: LandmarkConfig | None = None
    crops: AlignConfig | None = None


@dataclass(frozen=True)
class BestEpoch:
    epoch: int
    f1_mean: float


@dataclass(frozen=True)
class FoldMetrics(_Record):
    """Last-epoch scores of one fold; F1 values are fractions."""

    FILE: ClassVar[str] = "metrics.json"
    HINT: ClassVar[str] = "au-ttt train"
    _RENAMED: ClassVar[dict[str, str]] = {"best": BEST_KEY}

    run: str
    dataset: str
    test_part: int
    variant: str | None
    aus: tuple[int, ...]
    f1: dict[str, float]
    f1_mean: float
    all_positive_f1_mean: float
    test_frames: int = 0
    epoch_policy: str = "last epoch"
    best: BestEpoch | None = None   # best epoch on the test part: optimistic, never the reported number
    run_key: str | None = None

    @classmethod
    def from_result(cls, spec: RunSpec, aus, final: dict[str, Any], history: list[dict], run_key: str | None = None
                    ) -> FoldMetrics:
        """From :func:`au_ttt.train.evaluate.evaluate_model`'s result and the epoch history."""
        scored = [h for h in history if "test_f1" in h]
        best = max(scored, key=lambda h: h["test_f1"]) if scored else None
        return cls(run=spec.name, dataset=spec.dataset, test_part=spec.test_part, variant=spec.variant,
                   aus=tuple(aus), f1={f"AU{a}": float(f) for a, f in zip(aus, final["f1"], strict=True)},
                   f1_mean=float(final["f1_mean"]), all_positive_f1_mean=float(final["all_positive_f1_mean"]),
                   test_frames=int(final["frames"]),
                   best=BestEpoch(int(best["epoch"]), float(best["test_f1"])) if best else None, run_key=run_key)


@dataclass(frozen=True)
class CrossMetrics(_Record):
    """``au-ttt evaluate``: a run scored on a dataset (cross-domain: source ≠ target)."""

    FILE: ClassVar[str] = "metrics.json"
    HINT: ClassVar[str] = "au-ttt evaluate"

    run: str
    source: str
    target: str
    test_set: str
    aus: tuple[int, ...]
    f1: dict[str, float]
    f1_mean: float
    all_positive_f1_mean: float
    trained_on_parts: tuple[int, ...] = ()
    variant: str | None = None
    epoch_policy: str = "last epoch"
    test_frames: int = 0


@dataclass(frozen=True)
class PretrainResult(_Record):
    FILE: ClassVar[str] = "pretrain.json"
    HINT: ClassVar[str] = "au-ttt pretrain"

    steps: int
    world_size: int
    classes: int
    val_top1: float
    data_root: str
    final_loss: float | None = None
    rank_weight_checksums: tuple[float, ...] = ()

