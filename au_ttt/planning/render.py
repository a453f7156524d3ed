"""The cost plan as a Markdown table (readable in a terminal and in docs) or a JSON-ready dict."""

from __future__ import annotations

from dataclasses import asdict

from au_ttt.planning.stages import Resources, StageEstimate

__all__ = ["plan_dict", "render_table"]


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
