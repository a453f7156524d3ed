"""What one item of work costs, per stage, with the source of every number; measured files override defaults.

Three kinds of numbers feed the cost plan (:mod:`au_ttt.planning.stages`):

* **stage rates** — seconds per item (frame, image, job) on one CPU core, for the preprocessing stages.
  Defaults were measured on the 2-core reference machine as CPU time of one process (``time.process_time``,
  so the shared machine's load does not inflate them), at the frame size stated; the plan scales a
  per-frame cost by the pixel count of the frames it is applied to. A **timings file** (JSON, below)
  replaces any of them with numbers measured on the user's machine.
* **model rates** — images per second for training (forward + backward + step), evaluation (forward) and
  ImageNet pretraining, per GPU or per CPU thread, for a model geometry (input size, patch, width, depth).
  GPU defaults: the GPU cost model (:mod:`au_ttt.planning.gpu_model`, calibrated on one published timm
  figure and validated on others) applied to AU-TTT's own profiled op lists, on a named GPU, at the batch
  the config trains with (launch time per step is fixed, device time grows with the batch). CPU defaults:
  ``au-ttt bench`` on the reference machine. ``au-ttt bench`` JSON files (results/bench/) replace them — a
  CUDA file gives measured GPU rates, a CPU file per-thread CPU rates. Other geometries are scaled by
  depth × width² × tokens (a FLOP proxy; rough, and optimistic for tiny models, which are overhead-bound).
* **dataset sizes** — ImageNet-1K here; BP4D/DISFA in :mod:`au_ttt.data.protocol`.

Timings file format (every key optional; unknown keys are errors)::

    {"source": "what was measured, where",
     "stages": {"landmarks.dlib": {"seconds": 0.09, "pixels": 1447680}, "crops": {"seconds": 0.02}}}

``seconds`` is per item on one core; ``pixels`` the frame size it was measured at (omit: no scaling).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from au_ttt.errors import InputError
from au_ttt.planning.gpu_model import DEFAULT_GPU, DEFAULT_PATH, GPUS, PROFILE_DIR, StepTime, cost_model

__all__ = ["DEFAULT_RATES", "IMAGENET_TRAIN_IMAGES", "IMAGENET_VAL_IMAGES", "STAGE_KEYS", "Geometry", "ModelRate",
           "Rate", "RateBook", "default_model_rates", "discover_bench", "gpu_model_rates", "load_bench",
           "load_timings"]

Device = Literal["cpu", "gpu"]
Mode = Literal["train", "eval", "pretrain"]   # pretrain: ImageNet classification steps (falls back to train)

# ILSVRC-2012 (ImageNet-1K) classification: 1,281,167 training and 50,000 validation images
# (Russakovsky et al., "ImageNet Large Scale Visual Recognition Challenge", IJCV 2015).
IMAGENET_TRAIN_IMAGES = 1_281_167
IMAGENET_VAL_IMAGES = 50_000

_REF = "measured on the 2-core reference machine (CPU time of one process)"


@dataclass(frozen=True)
class Rate:
    """Seconds per item on one CPU core; ``pixels``: the frame size it was measured at (cost ∝ pixels)."""

    seconds: float
    source: str
    pixels: int | None = None


DEFAULT_RATES: dict[str, Rate] = {
    "job_startup": Rate(6.0, f"{_REF}: importing the au_ttt training stack (torch, pandas, cv2), warm file cache"),
    "synthau": Rate(0.016, f"{_REF}: au_ttt.data.synth.generate_synthau, both formats, per frame"),
    "data_check": Rate(0.011, f"{_REF}: read_image of a 1040x1392 JPEG (one sampled image)", 1040 * 1392),
    "disfa_frames": Rate(0.0034, f"{_REF}: decode_video of a 1024x768 XVID AVI incl. JPEG writes", 1024 * 768),
    "index": Rate(0.0006, f"{_REF}: read_bp4d on SynthAU (CSV rows + image listing)"),
    "landmarks.dlib": Rate(0.128, f"{_REF}: dlib HOG + 68-point predictor, upsample 0, on a 1040x1392 JPEG with "
                                  "one real face (skimage astronaut), incl. decoding", 1040 * 1392),
    "landmarks.provided": Rate(0.00011, f"{_REF}: provided_landmarks on SynthAU (BP4D MAT files may be slower)"),
    "landmarks.face_alignment": Rate(1.22, f"{_REF}: 2D FAN (face_alignment FAN(4)) on a 256 px face and its "
                                           "mirror (fa_flip_input, the default), 1 thread, random weights (speed "
                                           "does not depend on them); S3FD face detection not included"),
    "crops": Rate(0.022, f"{_REF}: read_image + similarity warp + 256 px JPEG write, 1040x1392 source",
                  1040 * 1392),
    "heatmaps": Rate(0.00006, f"{_REF}: AU-centre cache from aligned landmarks"),
    "loader": Rate(1 / 210, f"{_REF}: au-ttt loader-bench, batch 32, 256 px crops, 2 workers: 421 img/s on 2 "
                            "cores (about 210 per core), float work in the workers"),
    "tables": Rate(60.0, "assumed: one job reading the run records and rendering tables, figure and report "
                         "(seconds on the demo)"),
}
STAGE_KEYS = tuple(DEFAULT_RATES)


@dataclass(frozen=True)
class Geometry:
    """What sets a ViT-like model's cost per image: input size, patch size, width and depth."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int

    @property
    def tokens(self) -> int:
        return (self.img_size // self.patch_size) ** 2 + 1

    @property
    def proxy(self) -> float:
        """FLOP proxy: depth × width² × tokens (the linear layers dominate at these token counts)."""
        return float(self.depth * self.embed_dim**2 * self.tokens)

    @property
    def label(self) -> str:
        if (self.patch_size, self.embed_dim, self.depth) == (16, 384, 12):
            return f"ViT-S/16 at {self.img_size} px"
        return f"width {self.embed_dim}, depth {self.depth}, patch {self.patch_size}, {self.img_size} px"


VIT_S16 = Geometry(224, 16, 384, 12)
DEMO = Geometry(64, 16, 64, 2)  # config/config.yaml


@dataclass(frozen=True)
class ModelRate:
    """Images per second of AU-TTT at a geometry: per GPU (device gpu) or per CPU thread (device cpu)."""

    geometry: Geometry
    device: Device
    mode: Mode
    img_per_s: float
    source: str
    step: StepTime | None = None    # cost-model rates: the step's device and host time, for other batches

    def at(self, batch: int | None) -> tuple[float, str]:
        """Images/s at ``batch``: rescaled by the step's device/host split when known, else as measured."""
        if self.step is None or batch is None or batch == self.step.batch:
            return self.img_per_s, self.source
        factor = batch / self.step.batch
        return self.step.img_per_s(batch), f"{self.source}; at batch {batch}: device time x{factor:.3g}"


# AU-TTT CPU per-thread rates at 224 px from `au-ttt bench` on the reference machine
# (results/bench/bench-cpu-none-20261124-040752.json: 2 threads, fp32; forward+backward 2.083, forward 5.745 img/s).
_BENCH_FILE = "results/bench/bench-cpu-none-20261124-040752.json"
_CPU_BENCH = {"train": 2.083, "eval": 5.745}
_CPU_THREADS = 2
# plan mode → AU-TTT op profile mode (au_ttt.planning.profile_steps.STANDARD)
_PROFILE_MODES = {"train": "train", "eval": "infer", "pretrain": "pretrain"}


def gpu_model_rates(gpu: str = DEFAULT_GPU, path: str = DEFAULT_PATH, folder: str | Path = PROFILE_DIR
                    ) -> list[ModelRate]:
    """AU-TTT's per-GPU rates at ViT-S/16 from the cost model on its op profiles of ``path`` (else eager)."""
    if gpu not in GPUS:
        raise InputError(f"unknown GPU '{gpu}'; known: {', '.join(GPUS)}")
    model = cost_model(folder)
    out = []
    for mode, pmode in _PROFILE_MODES.items():
        profile = model.au_ttt(pmode, path) or model.au_ttt(pmode, "eager")
        if profile is None:
            raise InputError(f"no AU-TTT {pmode} op profile in {PROFILE_DIR}; run `au-ttt bench --profile-ops au_ttt`")
        step = model.step(profile, gpu)
        missing = "" if profile.path == path else f", no {path} profile"
        where = Path(profile.file)
        shown = f"au_ttt/planning/profiles/{where.name}" if where.parent == PROFILE_DIR.resolve() else str(where)
        out.append(ModelRate(VIT_S16, "gpu", mode, step.img_per_s(),  # type: ignore[arg-type]
                             f"{model.describe()}; AU-TTT {pmode} step {shown} ({profile.path}{missing}: "
                             f"{step.kernels:,} kernels per step at batch {step.batch}, {step.bound}) on "
                             f"{GPUS[gpu].label}", step))
    return out


def default_model_rates(gpu: str = DEFAULT_GPU, path: str = DEFAULT_PATH, folder: str | Path = PROFILE_DIR
                        ) -> list[ModelRate]:
    out = gpu_model_rates(gpu, path, folder)
    for mode, au in _CPU_BENCH.items():
        out.append(ModelRate(VIT_S16, "cpu", mode, au / _CPU_THREADS,  # type: ignore[arg-type]
                             f"{_BENCH_FILE}: {au} img/s on {_CPU_THREADS} threads, fp32"))
    out.append(ModelRate(DEMO, "cpu", "train", 310.0, f"{_REF}: demo model, batch 16, AdamW step, 1 thread; "
                                                      "data loading not included"))
    out.append(ModelRate(DEMO, "cpu", "eval", 887.0, f"{_REF}: demo model, batch 16, 1 thread"))
    return out


@dataclass
class RateBook:
    """The rates one plan uses; later entries (measured files) take precedence over earlier ones."""

    stages: dict[str, Rate] = field(default_factory=lambda: dict(DEFAULT_RATES))
    models: list[ModelRate] = field(default_factory=default_model_rates)
    files: list[str] = field(default_factory=list)
    gpu: str = DEFAULT_GPU      # the GPU the cost-model rates are for

    @classmethod
    def for_gpu(cls, gpu: str = DEFAULT_GPU, path: str = DEFAULT_PATH, folder: str | Path = PROFILE_DIR) -> RateBook:
        """Default rates with the cost model's GPU rates on ``gpu`` for AU-TTT's ``path`` (triton, eager, …)."""
        return cls(models=default_model_rates(gpu, path, folder), gpu=gpu)

    def stage(self, key: str, pixels: int | None = None) -> tuple[float, str]:
        """Seconds per item on one core, scaled to ``pixels`` when the rate was measured at a frame size."""
        rate = self.stages[key]
        if rate.pixels is None or pixels is None or pixels == rate.pixels:
            return rate.seconds, rate.source
        factor = pixels / rate.pixels
        return rate.seconds * factor, f"{rate.source}; x{factor:.3g} for the frame size (cost ∝ pixels)"

    def model(self, geometry: Geometry, device: Device, mode: Mode, batch: int | None = None) -> tuple[float, str]:
        """Images/s per GPU or per CPU thread at ``geometry`` (and ``batch`` where the rate knows its step):
        exact match, else the nearest one scaled. Pretraining falls back to training rates; the last
        entry wins, so a measured training rate overrides a modelled pretraining one."""
        modes = ("pretrain", "train") if mode == "pretrain" else (mode,)
        candidates = [r for r in self.models if r.device == device and r.mode in modes]
        if not candidates:
            raise InputError(f"no {device} {mode} throughput known; pass an `au-ttt bench` JSON with --bench")
        exact = [r for r in candidates if r.geometry == geometry]
        if exact:
            return exact[-1].at(batch)
        best = min(reversed(candidates), key=lambda r: abs(math.log(r.geometry.proxy / geometry.proxy)))
        factor = best.geometry.proxy / geometry.proxy
        return best.img_per_s * factor, (f"{best.source}; x{factor:.3g} from {best.geometry.label} to "
                                         f"{geometry.label} by depth x width² x tokens (rough)")

    def with_bench(self, path: str | Path) -> RateBook:
        return replace(self, models=[*self.models, *load_bench(path)], files=[*self.files, str(path)])

    def with_timings(self, path: str | Path) -> RateBook:
        return replace(self, stages={**self.stages, **load_timings(path)}, files=[*self.files, str(path)])


def _read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a JSON {what} ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a {what} must be a JSON object")
    return data


# `au-ttt bench` mode names (au_ttt.bench.MODES; "forward+backward" in files written before 2026-12) → plan modes
_BENCH_MODES = {"train_step": "train", "forward+backward": "train", "forward": "eval"}


def load_bench(path: str | Path) -> list[ModelRate]:
    """Model rates from an ``au-ttt bench`` JSON: CUDA files give measured per-GPU rates, CPU files
    per-thread CPU rates (GPU rates of a CPU file come from the cost model, not from a CPU speed ratio)."""
    data = _read_json(path, "benchmark file")
    env, rows = data.get("env"), data.get("results")
    if not isinstance(env, dict) or not isinstance(rows, list):
        raise InputError(f"{path}: not an `au-ttt bench` report (needs 'env' and 'results'); rerun `au-ttt bench`")
    cuda = env.get("device_type") == "cuda"
    threads = int(env.get("threads") or 1)
    speed: dict[tuple, float] = {}
    for row in rows:
        try:
            mode = _BENCH_MODES[row["mode"]]
            speed[(row["model"], int(row["img_size"]), mode)] = float(row["img_per_s"])
        except (KeyError, TypeError, ValueError):
            continue  # rows of other kinds (memory-only, other modes) carry no throughput
    out = []
    for (model, size, mode), img_s in sorted(speed.items()):
        if model != "au_ttt_vit_s16" or not img_s > 0:
            continue
        geometry = replace(VIT_S16, img_size=size)
        if cuda:
            out.append(ModelRate(geometry, "gpu", mode, img_s,
                                 f"{path}: {img_s:.1f} img/s measured ({env.get('device')})"))
            continue
        out.append(ModelRate(geometry, "cpu", mode, img_s / threads,
                             f"{path}: {img_s:.3g} img/s on {threads} threads"))
    if not out:
        raise InputError(f"{path}: no AU-TTT throughput (model au_ttt_vit_s16) in this benchmark file")
    return out


def load_timings(path: str | Path) -> dict[str, Rate]:
    """Stage rates from a timings JSON (format in the module docstring); unknown stages are errors."""
    data = _read_json(path, "timings file")
    unknown = sorted(set(data) - {"source", "stages"})
    stages = data.get("stages")
    if unknown or not isinstance(stages, dict):
        raise InputError(f"{path}: a timings file has keys 'source' and 'stages' (a mapping)"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    source = str(data.get("source") or path)
    out = {}
    for key, entry in stages.items():
        if key not in DEFAULT_RATES:
            raise InputError(f"{path}: unknown stage '{key}'; known: {', '.join(STAGE_KEYS)}")
        extra = sorted(set(entry) - {"seconds", "pixels", "source"}) if isinstance(entry, dict) else ["?"]
        seconds = entry.get("seconds") if isinstance(entry, dict) else None
        pixels = entry.get("pixels") if isinstance(entry, dict) else None
        if extra or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0 \
                or not (pixels is None or (isinstance(pixels, int) and pixels > 0)):
            raise InputError(f"{path}: stages.{key} must be {{\"seconds\": number >= 0, \"pixels\": positive "
                             f"integer (optional)}}, got {entry!r}")
        out[key] = Rate(float(seconds), f"{entry.get('source') or source} ({path})", pixels)
    return out


def discover_bench(folder: str | Path = "results/bench") -> list[Path]:
    """The newest ``bench-*.json`` per device type in ``folder`` (by file name, which carries the time)."""
    newest: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("bench-*.json")):
        try:
            kind = json.loads(path.read_text()).get("env", {}).get("device_type", "cpu")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        newest[str(kind)] = path
    return [newest[k] for k in sorted(newest)]
