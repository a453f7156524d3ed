"""The config file's sections as frozen dataclasses, together, importing only the standard library.

Why one module: the Snakemake DAG and every job load the settings before any work starts, and the sections
used to live beside the code that uses them (crops in ``data.align``, heatmaps in ``data.heatmaps``,
landmarks in ``data.landmarks``), so loading a config imported numpy and pandas. Those modules re-export
their section from here. :data:`SECTIONS` names every section of a project config and its class; ``model``,
``loss``, ``train`` and ``pretrain`` stay in their own torch-free modules (:mod:`au_ttt.model.config`,
:mod:`au_ttt.loss_config`, :mod:`au_ttt.train.config`), which import nothing heavy either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from au_ttt.loss_config import LossConfig
from au_ttt.model.config import ModelConfig
from au_ttt.train.config import PretrainConfig, TrainConfig

__all__ = ["SECTIONS", "AlignConfig", "Backend", "HeatmapConfig", "LandmarkConfig", "TrackingConfig"]

Backend = Literal["dlib", "face_alignment", "provided"]


@dataclass(frozen=True)
class LandmarkConfig:
    """Section ``landmarks`` of config.yaml."""

    backend: Backend = "dlib"              # dlib: offline weights; face_alignment needs FAN weights placed
    dlib_upsample: int = 1                 # HOG window is 80×80 px; each upsampling halves the smallest face found
    fa_detector: Literal["sfd", "dlib"] = "sfd"  # face_alignment's default detector is S3FD
    fa_flip_input: bool = True             # face_alignment 1.5.0 default (averages a mirrored pass)
    fa_compile: bool = False               # torch.compile costs 55 s on CPU for 8% speed (measured)
    device: str = "cpu"


@dataclass(frozen=True)
class AlignConfig:
    """Section ``crops`` of config.yaml."""

    size: int = 256             # FG-Net and ME-GraphAU crop 256×256 (FG-Net README; ME-GraphAU issue #2)
    eye_to_eye: float = 2.0     # FFHQ image_align: side = 2·max(2.0·|e2e|, 1.8·|e2m|)
    eye_to_mouth: float = 1.8
    em_shift: float = 0.1       # FG-Net's em_scale=0.1: centre moved 0.1·e2m from the eyes to the mouth
    jpeg_quality: int = 95


@dataclass(frozen=True)
class HeatmapConfig:
    """Section ``heatmaps`` of config.yaml."""

    crop_size: int = 256           # aligned crop side (FG-Net README; ME-GraphAU issue #2)
    input_size: int = 224          # random/centre crop given to the model (ME-GraphAU image_train/test)
    patch_size: int = 16           # ViT patch: the RoI mask grid is input_size / patch_size = 14
    sigma_frac: float = 20 / 128   # FG-Net sigma 20 px on its 128 px heatmap of a 256 crop (sigma: 20.0)
    cutoff: float = 0.01           # FG-Net add_noise threshold: values below are set to 0
    target_size: int = 14          # supervision resolution of the signed targets (default: token grid)

    def __post_init__(self) -> None:
        if self.input_size > self.crop_size:
            raise ValueError(f"input_size {self.input_size} exceeds crop_size {self.crop_size}")
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size {self.input_size} is not a multiple of patch {self.patch_size}")
        if not 0 < self.sigma_frac < 1 or self.target_size < 1:
            raise ValueError("sigma_frac must be in (0, 1) and target_size ≥ 1")

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def sigma_px(self) -> float:
        return self.sigma_frac * self.crop_size


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking`` section of the project config."""

    # store directory, relative to the project root (cwd of Snakemake jobs); results/ per the Snakemake
    # layout (snakemake-workflows' template); holds mlflow.db and artifacts/
    uri_dir: str = "results/mlflow"
    experiment: str = "au-ttt"  # one experiment for the whole reproduction
    enabled: bool = True  # False: only tracking.json is written (e.g. quick CPU checks)
    # every finished training run also logs its exported bundle as an MLflow pyfunc model ("runs:/<id>/model",
    # servable with `mlflow models serve`); about 7 s per run on a CPU
    log_model: bool = True


# top-level key of the config file -> its section class
SECTIONS: dict[str, type] = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig,
                             "landmarks": LandmarkConfig, "crops": AlignConfig, "heatmaps": HeatmapConfig,
                             "pretrain": PretrainConfig, "tracking": TrackingConfig}
