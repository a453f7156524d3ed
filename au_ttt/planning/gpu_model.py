"""GPU step time from a profiled op list: a roofline per op, a launch cost per kernel, one fitted efficiency.

Why: AU-TTT's training step (batch 64) runs 4,625 kernels with the Triton scan (13,025 on the fused PyTorch
loop, 32,585 before it) — a TTT scan over 14-token mini-batches with 64-wide heads, many small fp32 ops — where
timm's ViT-S/16 step runs 1,774 large kernels at batch 384, so ViT-S's GPU speed times a speed ratio measured
on CPU (where launches are cheap) misjudges AU-TTT's GPU time. The model, for one step whose op list
:mod:`au_ttt.planning.op_profile` recorded:

    device time = Σ_ops max(FLOPs / (peak_dtype × e), bytes / (bandwidth × e))      (a roofline per op)
    host time   = kernels × L                                 (the CPU issuing one eager kernel after another)
    step time   = max(device time, host time)     (kernels are queued asynchronously, so the two overlap)

``peak_dtype`` is the GPU's dense tensor-core rate for fp16/bf16 matmuls and convolutions, its TF32 rate for
fp32 convolutions (cuDNN's default) and its plain FP32 rate for fp32 matmuls (PyTorch's default since 1.12:
``torch.backends.cuda.matmul.allow_tf32 = False``); ops without FLOPs are bandwidth-bound.

Free parameters: one efficiency ``e`` (the fraction of both peaks reached), fitted to ONE published timm
figure (:data:`CALIBRATION`), and the launch cost ``L``, which no timm figure can fix (their large batches
are device-bound), so it is an assumption with a range (:data:`LAUNCH_S`). :func:`validate` predicts the
published figures the fit did not see (:data:`VALIDATION`); the plan prints them and a test requires each
within :data:`TOLERANCE`. Step time at another batch: the device time scales with the batch, the host
time does not (:meth:`StepTime.img_per_s`). Forms tried on the same figures (largest validation error):
this one 20 %; host + device time added instead of overlapped 21 %; e for FLOPs only with the bandwidth
at 100 % 25 % (overlapped) or 20 % (added). timm's figures are device-bound and cannot tell overlap from
addition apart; the overlap form is kept because eager PyTorch enqueues kernels while the GPU works (the
two ``.item()`` syncs of :func:`au_ttt.train.recipe.update` only end the forward and the backward), but
added, AU-TTT's launch-bound training step would take 1.6× as long. Float16 convolutions in NCHW layout
are outside the model (:data:`KNOWN_GAPS`).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from au_ttt.errors import InputError

__all__ = ["CALIBRATION", "DEFAULT_GPU", "DEFAULT_PATH", "GPU", "GPUS", "KNOWN_GAPS", "LAUNCH_RANGE_S", "LAUNCH_S",
           "PROFILE_DIR", "TOLERANCE", "VALIDATION", "Check", "CostModel", "Figure", "OpProfile", "StepTime",
           "calibrate", "cost_model", "load_profiles", "step_time", "validate"]

PROFILE_DIR = Path(__file__).with_name("profiles")
PROFILE_FORMAT = "au-ttt op profile 1"
TOLERANCE = 0.25
T = 1e12


@dataclass(frozen=True)
class GPU:
    """Published dense peaks (FLOP/s) and memory bandwidth (bytes/s) of one GPU, with their source."""

    label: str
    fp32: float
    tf32: float
    half: float          # fp16/bf16 tensor cores, fp32 accumulate, dense (no sparsity)
    bandwidth: float
    source: str


_A100 = ("NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TFLOPS, TF32 156 and BF16/FP16 312 TFLOPS dense "
         "(the doubled figures are with sparsity), memory bandwidth")
GPUS: dict[str, GPU] = {
    "A100-40GB-SXM": GPU("A100 40GB SXM", 19.5 * T, 156 * T, 312 * T, 1555e9, f"{_A100} 1,555 GB/s (40GB)"),
    "A100-80GB-SXM": GPU("A100 80GB SXM", 19.5 * T, 156 * T, 312 * T, 2039e9, f"{_A100} 2,039 GB/s (80GB SXM)"),
    "H100-SXM": GPU("H100 SXM", 67 * T, 494.5 * T, 989.5 * T, 3350e9,
                    "NVIDIA H100 Tensor Core GPU datasheet (SXM): FP32 67 TFLOPS, TF32 989 and BF16/FP16 1,979 "
                    "TFLOPS with sparsity (half that dense), memory bandwidth 3.35 TB/s"),
    "RTX-3090": GPU("RTX 3090", 35.6 * T, 35.6 * T, 71 * T, 936e9,
                    "NVIDIA Ampere GA102 GPU Architecture whitepaper, GeForce RTX 3090: FP32 35.6 TFLOPS, TF32 "
                    "tensor 35.6, FP16 tensor with FP32 accumulate 71 TFLOPS, memory bandwidth 936 GB/s"),
    "RTX-4090": GPU("RTX 4090", 82.6 * T, 82.6 * T, 165.2 * T, 1008e9,
                    "NVIDIA Ada GPU Architecture whitepaper, GeForce RTX 4090: FP32 82.6 TFLOPS, TF32 tensor "
                    "82.6, FP16/BF16 tensor with FP32 accumulate 165.2 TFLOPS, memory bandwidth 1,008 GB/s"),
}
DEFAULT_GPU = "A100-80GB-SXM"
# AU-TTT's scan path on a GPU by default: ``backend="auto"`` runs the Triton scan kernels on CUDA
# (au_ttt.model.ttt_fast.resolve_backend); "eager" is the fused PyTorch loop, the path without Triton.
DEFAULT_PATH = "triton"

# Host time per kernel of an eager step: everything the CPU does between two launches (Python, the view
# ops, the dispatcher, autograd bookkeeping, cudaLaunchKernel itself). Assumed: 8 µs, in a 5–10 µs range
# (the CUDA driver's launch alone takes a few µs; eager PyTorch adds its dispatch on top). No timm figure
# constrains it: at batch 384 ViT-S/16's 1,774 kernels take ~14 ms of host time against a 365 ms step.
LAUNCH_S = 8e-6
LAUNCH_RANGE_S = (5e-6, 10e-6)


@dataclass(frozen=True)
class OpProfile:
    """One step's op list: rows (op, dtype, count, FLOPs per call, bytes per call) at ``batch``."""

    name: str
    model: str
    mode: str
    batch: int
    path: str
    ops: tuple[tuple[str, str, int, int, int], ...]
    file: str
    views: int = 0

    @property
    def kernels(self) -> int:
        return sum(r[2] for r in self.ops)

    @property
    def matmuls(self) -> int:
        return sum(r[2] for r in self.ops if r[3] > 0)

    @property
    def flops(self) -> int:
        return sum(r[2] * r[3] for r in self.ops)

    @classmethod
    def load(cls, path: str | Path) -> OpProfile:
        """Read a profile written by ``au-ttt bench --profile-ops`` (format in :mod:`au_ttt.planning.op_profile`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != PROFILE_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {PROFILE_FORMAT!r}")
            ops = tuple((str(o), str(d), int(n), int(f), int(b)) for o, d, n, f, b in data["ops"])
            if any(n < 1 or f < 0 or b < 0 for _, _, n, f, b in ops) or int(data["batch"]) < 1:
                raise ValueError("counts and batch must be positive, FLOPs and bytes non-negative")
            return cls(str(data["name"]), str(data["model"]), str(data["mode"]), int(data["batch"]),
                       str(data.get("path", "eager")), ops, str(path), int(data.get("totals", {}).get("view_ops", 0)))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path}: not an op profile ({err}); rewrite it with `au-ttt bench --profile-ops`"
                             ) from None


def load_profiles(folder: str | Path = PROFILE_DIR) -> dict[str, OpProfile]:
    """Every ``*.json`` op profile in ``folder``, by name."""
    return {p.name: p for p in (OpProfile.load(f) for f in sorted(Path(folder).glob("*.json")))}


@dataclass(frozen=True)
class StepTime:
    """One step on one GPU: device (roofline) and host (launch) seconds at the profiled batch."""

    batch: int
    kernels: int
    device_s: float
    host_s: float

    @property
    def step_s(self) -> float:
        return max(self.device_s, self.host_s)

    @property
    def bound(self) -> str:
        return "launch-bound" if self.host_s > self.device_s else "device-bound"

    def img_per_s(self, batch: int | None = None) -> float:
        """Images per second at ``batch`` (default: the profiled one): device time ∝ batch, host time fixed."""
        b = batch or self.batch
        return b / max(self.device_s * b / self.batch, self.host_s)


def step_time(profile: OpProfile, gpu: GPU, efficiency: float, launch_s: float = LAUNCH_S) -> StepTime:
    """The module's rule: Σ per-op roofline on the device, kernels × L on the host."""
    device = 0.0
    bandwidth = gpu.bandwidth * efficiency
    for op, dtype, count, flops, moved in profile.ops:
        seconds = moved / bandwidth
        if flops:
            peak = gpu.half if dtype in ("f16", "bf16") else gpu.tf32 if "convolution" in op else gpu.fp32
            seconds = max(seconds, flops / (peak * efficiency))
        device += count * seconds
    return StepTime(profile.batch, profile.kernels, device, profile.kernels * launch_s)


@dataclass(frozen=True)
class Figure:
    """A published timm throughput: the profile of the step it timed, the GPU, img/s, the results file."""

    profile: str
    gpu: str
    img_per_s: float
    file: str

    @property
    def label(self) -> str:
        model, mode, software = self.profile.split("-")[1:4]
        layout = ", channels-last" if "nhwc" in self.file else ""
        return f"timm {model} {mode}, {GPUS[self.gpu].label}, {_PYTORCH[software]}{layout}"


# huggingface/pytorch-image-models results/ (benchmark.py, AMP float16, img/s): the training file and the
# pt240 files are in the repository today; the pt112 inference file was removed in commit ef570e26 (2024-09)
# and is read at commit c865028c (2022-07-27).
_TRAIN112 = "results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv"
_TRAIN112_NHWC = "results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv"
_INFER112 = "results/benchmark-infer-amp-nchw-pt112-cu113-rtx3090.csv (commit c865028c)"
_INFER112_NHWC = "results/benchmark-infer-amp-nhwc-pt112-cu113-rtx3090.csv (commit c865028c)"
_INFER240 = "results/benchmark-infer-amp-nchw-pt240-cu124-{}.csv"
_PYTORCH = {"pt112": "PyTorch 1.12", "pt240": "PyTorch 2.4"}   # the files' software, by profile suffix
_VIT = ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224")

CALIBRATION = Figure("timm-vit_small_patch16_224-train-pt112", "RTX-3090", 1052.92, _TRAIN112)   # batch 384
VALIDATION: tuple[Figure, ...] = (
    Figure(f"timm-{_VIT[0]}-train-pt112", "RTX-3090", 2293.54, _TRAIN112),          # batch 512
    Figure(f"timm-{_VIT[2]}-train-pt112", "RTX-3090", 390.86, _TRAIN112),           # batch 192
    Figure("timm-resnet50-train-pt112", "RTX-3090", 1218.01, _TRAIN112_NHWC),       # batch 512, channels-last
    Figure(f"timm-{_VIT[0]}-infer-pt112", "RTX-3090", 6769.81, _INFER112),          # batch 1024 (all inference)
    Figure(f"timm-{_VIT[1]}-infer-pt112", "RTX-3090", 3000.37, _INFER112),
    Figure(f"timm-{_VIT[2]}-infer-pt112", "RTX-3090", 1132.21, _INFER112),
    Figure("timm-resnet50-infer-pt112", "RTX-3090", 3676.35, _INFER112_NHWC),
    *(Figure(f"timm-{m}-infer-pt240", gpu, v, _INFER240.format(gpu.lower().replace("-", ""))) for m, gpu, v in (
        (_VIT[0], "RTX-4090", 17666.09), (_VIT[1], "RTX-4090", 7693.38), (_VIT[2], "RTX-4090", 2787.15),
        ("resnet50", "RTX-4090", 4217.6), (_VIT[0], "RTX-3090", 10231.54), (_VIT[1], "RTX-3090", 4584.86),
        (_VIT[2], "RTX-3090", 1570.66), ("resnet50", "RTX-3090", 3219.06))),
)
# Outside the model: float16 convolutions in NCHW layout, which cuDNN runs with layout transforms the op
# list does not show (the same ResNet-50 step trains at 1,218 img/s channels-last). AU-TTT's only dense
# convolution is its patch embedding.
KNOWN_GAPS: tuple[Figure, ...] = (
    Figure("timm-resnet50-train-pt112", "RTX-3090", 826.06, _TRAIN112),
    Figure("timm-resnet50-infer-pt112", "RTX-3090", 2733.34, _INFER112),
)


def _predict(profiles: dict[str, OpProfile], fig: Figure, efficiency: float, launch_s: float) -> float:
    if fig.profile not in profiles:
        raise InputError(f"no op profile '{fig.profile}' in {PROFILE_DIR}; run `au-ttt bench --profile-ops`")
    return step_time(profiles[fig.profile], GPUS[fig.gpu], efficiency, launch_s).img_per_s()


def calibrate(profiles: dict[str, OpProfile], figure: Figure = CALIBRATION, launch_s: float = LAUNCH_S) -> float:
    """The efficiency at which the model reproduces ``figure`` exactly (bisection; img/s rises with e)."""
    lo, hi = 1e-3, 1.0
    if _predict(profiles, figure, hi, launch_s) < figure.img_per_s:
        raise InputError(f"{figure.label}: {figure.img_per_s} img/s is above the model's peak-rate prediction")
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _predict(profiles, figure, mid, launch_s) < figure.img_per_s else (lo, mid)
    return math.sqrt(lo * hi)


@dataclass(frozen=True)
class Check:
    """A published figure and the model's prediction of it."""

    figure: Figure
    predicted: float

    @property
    def error(self) -> float:
        return self.predicted / self.figure.img_per_s - 1


def validate(profiles: dict[str, OpProfile], efficiency: float, figures: tuple[Figure, ...] = VALIDATION,
             launch_s: float = LAUNCH_S) -> list[Check]:
    """Predict each figure at ``efficiency``; the figures must not include the calibration one."""
    return [Check(f, _predict(profiles, f, efficiency, launch_s)) for f in figures]


@dataclass(frozen=True)
class CostModel:
    """The calibrated model with its evidence; prices AU-TTT's profiles on any GPU of :data:`GPUS`."""

    efficiency: float
    launch_s: float
    checks: tuple[Check, ...]
    gaps: tuple[Check, ...]
    profiles: dict[str, OpProfile]

    @property
    def passed(self) -> bool:
        return all(abs(c.error) <= TOLERANCE for c in self.checks)

    def au_ttt(self, mode: str, path: str = "eager") -> OpProfile | None:
        """AU-TTT's profile of ``mode`` (train, infer, pretrain) on ``path`` (eager, triton, …), if recorded."""
        found = [p for p in self.profiles.values() if p.model == "au_ttt" and p.mode == mode and p.path == path]
        return found[0] if found else None

    def paths(self) -> list[str]:
        """The AU-TTT execution paths with a profile (eager, triton; others once their profiles are dropped in)."""
        return sorted({p.path for p in self.profiles.values() if p.model == "au_ttt"})

    def step(self, profile: OpProfile, gpu: str = DEFAULT_GPU, launch_s: float | None = None) -> StepTime:
        """``profile``'s step on ``gpu`` (a key of :data:`GPUS`), at this model's or another launch cost."""
        return step_time(profile, GPUS[gpu], self.efficiency, self.launch_s if launch_s is None else launch_s)

    def describe(self) -> str:
        c = CALIBRATION
        return (f"GPU cost model (au_ttt/planning/gpu_model.py: roofline per op at {self.efficiency:.2f} of peak, "
                f"{self.launch_s * 1e6:.0f} µs host time per kernel) calibrated on {c.label} "
                f"{c.img_per_s:,.1f} img/s (timm {c.file})")


@functools.cache
def _cached(folder: str, launch_s: float) -> CostModel:
    profiles = load_profiles(folder)
    e = calibrate(profiles, launch_s=launch_s)
    return CostModel(e, launch_s, tuple(validate(profiles, e, launch_s=launch_s)),
                     tuple(validate(profiles, e, KNOWN_GAPS, launch_s)), profiles)


def cost_model(folder: str | Path = PROFILE_DIR, launch_s: float = LAUNCH_S) -> CostModel:
    """The model calibrated on the profiles in ``folder`` (cached per folder and launch cost)."""
    return _cached(str(Path(folder).resolve()), launch_s)
