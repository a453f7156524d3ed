"""Shared by the predict/export tests: a run directory made from a random tiny model, without training.

The run directory has what ``au-ttt train`` writes and ``predict``/``export``/``evaluate`` read: run.json,
model.safetensors, metrics.json and tracking.json (written by the real RunLogger, so the preprocessing
settings are recovered from its logged params). The AU heads are scaled up so that probabilities spread
over (0, 1) and differ from frame to frame: an equality test on near-constant 0.5 outputs could not fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from au_ttt.config import to_dict
from au_ttt.data.protocol import AUS
from au_ttt.model.au_ttt import AUTTT, save_weights
from au_ttt.settings import load_settings
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
    info = {"spec": {"dataset": dataset, "test_part": test_part, "variant": None}, "aus": list(aus),
            "model": to_dict(cfg), "train": to_dict(settings.train), "train_frames": 0, "test_frames": 0,
            "device": "cpu"}
    with RunLogger(tracking or TrackingConfig(enabled=False), out, run_name=f"{dataset}-test{test_part}-model",
                   config=settings.resolved(), manifest=manifest, device="cpu") as run:
        save_weights(model, out / "model.safetensors", {"run": json.dumps(info)})
        (out / "run.json").write_text(json.dumps(info))
        f1 = {f"AU{a}": 0.5 for a in aus}
        (out / "metrics.json").write_text(json.dumps({
            "run": f"{dataset}-test{test_part}-model", "dataset": dataset, "test_part": test_part, "aus": list(aus),
            "epoch_policy": "last epoch", "f1": f1, "f1_mean": 0.5, "all_positive_f1_mean": 0.4,
            "test_frames": 0}))
        run.log_metrics({"final_f1_mean": 0.5})
    return out
