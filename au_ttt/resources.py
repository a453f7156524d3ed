"""What each DAG job asks the scheduler for: threads, memory, run time and GPUs, per rule.

One table of defaults sized for the paper-scale run (a shard is one subject's frames, a fold is one
training job on one GPU), overridden per rule by ``workflow.resources`` in the config. Snakemake reads it
when it parses the workflow (so local ``--cores``/``--resources`` and the Slurm executor schedule every
job without hand-written ``--set-resources``), and ``au-ttt plan`` reads it to estimate hours.
Torch-free: it is imported at DAG parse time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from au_ttt.config import ConfigError

__all__ = ["DEFAULTS", "RuleResources", "resolve_resources", "visible_gpus"]


@dataclass(frozen=True)
class RuleResources:
    threads: int = 1       # CPU cores of the job (Slurm: --cpus-per-task)
    mem_mb: int = 2000     # memory (Slurm: --mem)
    runtime: int = 60      # wall-time limit in minutes (Slurm: --time)
    gpus: int = 0          # GPUs of the job (Snakemake resource `gpu`; Slurm: --gpus); pretrain: processes


# Sizes for the paper-scale run; the demo config lowers threads and GPUs. Light rules are cheap on purpose:
# on a cluster they run on the submit host (see `localrules` in workflow/rules/common.smk).
DEFAULTS: dict[str, RuleResources] = {
    "synthau": RuleResources(1, 2000, 30),
    "data_check": RuleResources(1, 4000, 120),       # reads every label file, samples images
    "disfa_frames": RuleResources(1, 2000, 60),      # one video (4,845 frames) per job
    "frame_index": RuleResources(1, 8000, 60),
    "landmarks": RuleResources(1, 3000, 360),        # one subject shard: dlib is single-threaded, ~90 ms/frame
    "crops": RuleResources(1, 2000, 120),
    "heatmaps": RuleResources(1, 2000, 30),
    "gather": RuleResources(1, 16000, 120),          # hard-links the crops of every shard into one store
    "pretrain_digits": RuleResources(1, 1000, 10),
    "pretrain": RuleResources(32, 128000, 4320, 4),  # ImageNet-1K, DDP over 4 GPUs (8 loader cores each)
    "train": RuleResources(8, 32000, 720, 1),
    "cross_domain": RuleResources(4, 16000, 120, 1),
    "tables": RuleResources(1, 2000, 10),
}


def resolve_resources(overrides: Mapping[str, Any] | None, source: str = "workflow.resources"
                      ) -> dict[str, RuleResources]:
    """The defaults with ``overrides`` ({rule: {threads, mem_mb, runtime, gpus}}) applied; bad input is named."""
    out = dict(DEFAULTS)
    allowed = {f.name for f in fields(RuleResources)}
    for rule, values in (overrides or {}).items():
        if rule not in DEFAULTS:
            raise ConfigError(f"{source}: unknown rule {rule!r}; rules with resources: {', '.join(DEFAULTS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}.{rule}: must map threads/mem_mb/runtime/gpus to integers")
        for key, value in values.items():
            if key not in allowed:
                raise ConfigError(f"{source}.{rule}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
            low = 0 if key == "gpus" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{source}.{rule}.{key} is {value!r}; it must be an integer >= {low}")
        out[rule] = replace(DEFAULTS[rule], **values)
    return out


def visible_gpus() -> int:
    """GPUs visible here (CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`), without importing torch: what `au-ttt plan`
    assumes and what `au-ttt dvc-stage` offers the DAG as `--resources gpu=N`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())
