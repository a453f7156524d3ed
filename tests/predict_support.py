"""Shared by the predict/export tests: a run directory made from a random tiny model, without training.

The run directory has what ``au-ttt train`` writes and ``predict``/``export``/``evaluate`` read: run.json and
metrics.json (the training side's own typed records), model.safetensors and tracking.json (written by the
real RunLogger). The AU heads are scaled up so that probabilities spread
over (0, 1) and differ from frame to frame: an equality test on near-constant 0.5 outputs could not fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from au_ttt.data.protocol import AUS
from au_ttt.model.au_ttt import AUTTT, save_weights
from au_ttt.settings import load_settings
from au_ttt.train.records import FoldMetrics, RunInfo, RunSpec
from au_ttt.train.tracking import RunLogger, TrackingConfig


def make_run(out: Path, config: Path, dataset: str = "bp4d", *, test_part: int = 1, seed: int = 0,
             head_scale: float = 60.0, tracking: TrackingConfig | None = None, manifest: Path | None = None) -> Path:
    settings = load_settings(config)
    cfg = settings.model
    aus = AUS[dataset]
    torch.manual_seed(seed)
    model = AUTTT(cfg, len(aus))
    with torch.no_grad():
        model.head.weight.mul_(head_scale)
        model.heatmap_head.weight.mul_(head_scale)
        model.heatmap_head.bias.normal_(0, 1.0)
    out.mkdir(parents=True, exist_ok=True)
    spec = RunSpec(dataset, test_part, None)
    info = RunInfo(spec=spec, aus=tuple(aus), model=cfg, train=settings.train, loss=settings.loss,
                   heatmaps=settings.heatmaps, train_rates=tuple(0.5 for _ in aus), train_frames=0, test_frames=0,
                   device="cpu", landmarks=settings.landmarks, crops=settings.crops)
    with RunLogger(tracking or TrackingConfig(enabled=False), out, run_name=spec.name,
                   config=settings.resolved(), manifest=manifest, device="cpu") as run:
        save_weights(model, out / "model.safetensors", {"run": json.dumps(info.to_json())})
        info.write(out)
        FoldMetrics(run=spec.name, dataset=dataset, test_part=test_part, variant=None, aus=tuple(aus),
                    f1={f"AU{a}": 0.5 for a in aus}, f1_mean=0.5, all_positive_f1_mean=0.4).write(out)
        run.log_metrics({"final_f1_mean": 0.5})
    return out
