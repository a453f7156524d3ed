"""The cost plan as a Markdown table (readable in a terminal and in docs) or a JSON-ready dict."""

from __future__ import annotations

from dataclasses import asdict

from au_ttt.planning.gpu_model import CALIBRATION, GPUS, LAUNCH_RANGE_S, TOLERANCE, CostModel
from au_ttt.planning.stages import Resources, StageEstimate

__all__ = ["plan_dict", "render_gpu_model", "render_table"]


def _hours(h: float) -> str:
    if h == 0:
        return "0"
    if h < 0.01:
        return f"{h * 3600:.0f} s"
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h:,.0f} h ({h / 24:,.1f} d)"


def _device_time(e: StageEstimate) -> str:
    if e.device == "-":
        return "0"
    unit = "GPU" if e.device == "gpu" else "core"
    days = f" ({e.device_h / 24:,.1f} {unit}-days)" if e.device_h >= 48 else ""
    return f"{e.device_h:,.{2 if e.device_h < 10 else 1}f} {unit}-h{days}"


def _per_item(e: StageEstimate) -> str:
    if e.device == "-":
        return "-"
    who = "GPU" if e.device == "gpu" else "core"
    if e.unit == "jobs":
        return f"{e.per_item_s:.0f} s/job"
    if e.per_item_s >= 0.1:
        return f"{e.per_item_s:.2f} s/{e.unit[:-1]}/{who}"
    if e.per_item_s >= 1e-4:
        return f"{e.per_item_s * 1000:.2f} ms/{e.unit[:-1]}/{who}"
    return f"{e.per_item_s * 1e6:.0f} µs/{e.unit[:-1]}/{who}"


def render_table(estimates: list[StageEstimate], resources: Resources, rate_files: list[str] | None = None,
                 pretrain_gpu_days: float | None = None) -> str:
    """Markdown: one row per stage, numbered sources below, the totals and the pretraining comparison."""
    sources: list[str] = []
    rows = []
    for e in estimates:
        ref = ""
        if e.source:
            if e.source not in sources:
                sources.append(e.source)
            ref = f" [{sources.index(e.source) + 1}]"
        runs_on = {"gpu": "GPU", "cpu": "CPU", "-": "-"}[e.device]
        rows.append(f"| {e.stage} | {e.jobs} | {e.work} | {_per_item(e)}{ref} | {runs_on} x {e.slots} | "
                    f"{_hours(e.wall_h)} | {_device_time(e)} |" + (f" {e.note} |" if e.note else " |"))
    nodes = f" x {resources.nodes} nodes" if resources.nodes > 1 else ""
    lines = [f"Resources: {resources.cores} cores and {resources.gpus} GPUs per node{nodes}.", "",
             "| stage | jobs | work | assumed cost per item | runs on x parallel | wall | device time | note |",
             "|---|---:|---|---|---|---:|---:|---|", *rows, ""]
    wall = sum(e.wall_h for e in estimates)
    core_h = sum(e.device_h for e in estimates if e.device == "cpu")
    gpu_h = sum(e.device_h for e in estimates if e.device == "gpu")
    lines.append(f"Total if the stages ran one after another: {_hours(wall)} wall, {core_h:,.1f} core-hours, "
                 f"{gpu_h:,.1f} GPU-hours (the DAG overlaps pretraining with preprocessing, so the real wall "
                 "time is lower).")
    if pretrain_gpu_days is not None:
        lines.append(f"ImageNet-1K pretraining of this model (pretrain.epochs x 1,281,167 images) costs "
                     f"{pretrain_gpu_days:,.{1 if pretrain_gpu_days >= 1 else 3}f} GPU-days "
                     f"({pretrain_gpu_days * 24:,.1f} GPU-hours) at the GPU rates assumed here; "
                     "`pretrain.source: timm_checkpoint` costs 0.")
    lines += ["", "Sources:"] + [f"[{i}] {s}" for i, s in enumerate(sources, 1)]
    if rate_files:
        lines.append("Measured files used: " + ", ".join(rate_files))
    else:
        lines.append("No measured file given (--bench, --timings): built-in defaults above.")
    return "\n".join(lines)


def plan_dict(estimates: list[StageEstimate], resources: Resources, rate_files: list[str] | None = None,
              pretrain_gpu_days: float | None = None) -> dict:
    return {"resources": asdict(resources), "stages": [asdict(e) for e in estimates],
            "total_wall_h_sequential": sum(e.wall_h for e in estimates),
            "core_h": sum(e.device_h for e in estimates if e.device == "cpu"),
            "gpu_h": sum(e.device_h for e in estimates if e.device == "gpu"),
            "imagenet_pretraining_gpu_days": pretrain_gpu_days, "rate_files": rate_files or []}


_STEP_LABEL = {"train": "training step", "infer": "evaluation forward", "pretrain": "ImageNet pretraining step"}


def _pct(x: float) -> str:
    return f"{100 * x:+.0f} %"


def render_gpu_model(model: CostModel, gpu: str, path: str, batches: dict[str, int], config_path: str,
                     other_geometry: str | None = None) -> str:
    """The cost model's calibration, its validation against published figures, and AU-TTT's steps on ``gpu``:
    why the GPU rates above are what they are, and how far to trust them. ``other_geometry``: the config's
    model when it is not the profiled ViT-S/16 at 224 px."""
    cal = CALIBRATION
    lo, hi = LAUNCH_RANGE_S
    worst = max(model.checks, key=lambda c: abs(c.error))
    lines = ["GPU cost model (au_ttt/planning/gpu_model.py): per op max(FLOPs / (peak x e), bytes / (bandwidth x e)) "
             f"on the GPU, {model.launch_s * 1e6:.0f} µs of host time per kernel launch (assumed; {lo * 1e6:.0f}-"
             f"{hi * 1e6:.0f} µs), a step takes the longer of the two.",
             f"Calibration: {cal.label}, {cal.img_per_s:,.1f} img/s (timm {cal.file}) -> e = {model.efficiency:.3f}.",
             "Validation on published figures the fit did not see:", "",
             "| figure | published img/s | predicted | error |", "|---|---:|---:|---:|"]
    lines += [f"| {c.figure.label} | {c.figure.img_per_s:,.0f} | {c.predicted:,.0f} | {_pct(c.error)} |"
              for c in model.checks]
    verdict = "yes" if model.passed else "NO"
    lines += ["", f"All {len(model.checks)} within {TOLERANCE:.0%}: {verdict} (largest error {_pct(worst.error)}, "
              f"{worst.figure.label}). Sources: timm repository (huggingface/pytorch-image-models) results files "
              f"named in au_ttt/planning/gpu_model.py; GPU peaks: {', '.join(g.label for g in GPUS.values())} "
              "datasheets and architecture whitepapers (same file)."]
    if model.gaps:
        gaps = "; ".join(f"{c.figure.label} {c.figure.img_per_s:,.0f} img/s, predicted {_pct(c.error)}"
                         for c in model.gaps)
        lines.append(f"Not modelled (outside the check): float16 convolutions in NCHW layout, which cuDNN runs "
                     f"with layout transforms the op list does not show ({gaps}); AU-TTT's only dense "
                     "convolution is its patch embedding.")
    profiled = "AU-TTT ViT-S/16 at 224 px (the profiled model)"
    if other_geometry:
        profiled += (f"; this config's model is {other_geometry}: its GPU rates above are scaled from these by "
                     "FLOPs, which ignores launch time (optimistic)")
    lines += ["", f"{profiled}, on one {GPUS[gpu].label}, {path} path ({config_path}):", "",
              "| step | kernels (views) per step | device | host | bound | img/s per GPU | at "
              f"{lo * 1e6:.0f} / {hi * 1e6:.0f} µs per launch |", "|---|---:|---:|---:|---|---:|---:|"]
    for mode in ("train", "infer", "pretrain"):
        profile = model.au_ttt(mode, path) or model.au_ttt(mode, "eager")
        if profile is None:
            continue
        b = batches.get(mode, profile.batch)
        step = model.step(profile, gpu)
        scale = b / step.batch
        rates = [model.step(profile, gpu, s).img_per_s(b) for s in (lo, hi)]
        lines.append(f"| {_STEP_LABEL[mode]}, batch {b} ({profile.path}) | {step.kernels:,} ({profile.views:,}) | "
                     f"{step.device_s * scale * 1e3:,.0f} ms | {step.host_s * 1e3:,.0f} ms | "
                     f"{'launch' if step.host_s > step.device_s * scale else 'device'} | {step.img_per_s(b):,.0f} | "
                     f"{rates[0]:,.0f} / {rates[1]:,.0f} |")
    train = model.au_ttt("train", path) or model.au_ttt("train", "eager")
    if train is not None:
        b = batches.get("train", train.batch)
        per_gpu = ", ".join(f"{g.label} {model.step(train, key).img_per_s(b):,.0f}" for key, g in GPUS.items())
        step = model.step(train, gpu)
        launch_bound = step.host_s > step.device_s * b / step.batch
        lines += ["", f"AU-TTT training img/s per GPU, batch {b}: {per_gpu}"
                  + (" (a launch-bound step barely gains from a faster GPU)." if launch_bound else ".")]
    return "\n".join(lines)


def gpu_model_dict(model: CostModel, gpu: str, path: str, batches: dict[str, int]) -> dict:
    """The cost model's fit, checks and AU-TTT steps, JSON-ready (the plan's ``gpu_model`` entry)."""
    steps = {}
    for mode in ("train", "infer", "pretrain"):
        profile = model.au_ttt(mode, path) or model.au_ttt(mode, "eager")
        if profile is not None:
            step = model.step(profile, gpu)
            b = batches.get(mode, profile.batch)
            steps[mode] = {"profile": profile.name, "path": profile.path, "batch": b, "kernels": step.kernels,
                           "device_s": step.device_s * b / step.batch, "host_s": step.host_s,
                           "img_per_s": step.img_per_s(b)}
    return {"gpu": gpu, "path": path, "efficiency": model.efficiency, "launch_s": model.launch_s,
            "calibration": {"figure": CALIBRATION.label, "img_per_s": CALIBRATION.img_per_s, "file": CALIBRATION.file},
            "validation": [{"figure": c.figure.label, "published": c.figure.img_per_s, "predicted": c.predicted,
                            "error": c.error, "file": c.figure.file} for c in model.checks],
            "all_within_tolerance": model.passed, "tolerance": TOLERANCE, "au_ttt": steps}
