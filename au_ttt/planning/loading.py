"""The data-loading row of the cost plan: the CPU cores that keep a node's GPUs fed during training.

The training row assumes every GPU runs at its measured rate (images per second per GPU). That holds only
if the loader workers decode and augment images at least as fast:

    cores needed per node = GPUs per node x GPU training rate x loader seconds per image per core

The loader's cost per image is the ``loader`` stage rate (:mod:`au_ttt.planning.rates`; measured with
``au-ttt loader-bench --device-photometric`` as images per CPU-second, which a shared machine's load does
not change; a ``--timings`` file replaces it). When the configured cores fall short, training is
loader-bound and its wall time grows by needed / available; the row's wall column is that extra time.
Evaluation passes need more images per second than training (a forward pass only) but read them without
augmentation; the note gives their need too. The cores that drive the GPU processes themselves are not
counted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from au_ttt.planning.rates import VIT_S16, RateBook

__all__ = ["data_loading", "feeding_cores"]


def feeding_cores(loader_img_per_core_s: float, gpus: tuple[int, ...] = (1, 4),
                  rates: RateBook | None = None) -> dict:
    """Cores that keep ``gpus`` GPUs busy at the plan's ViT-S/16 training and evaluation rates."""
    rates = rates or RateBook()
    train, train_src = rates.model(VIT_S16, "gpu", "train")
    evaluate, _ = rates.model(VIT_S16, "gpu", "eval")
    return {"loader_images_per_core_s": round(loader_img_per_core_s, 1),
            "gpu_train_images_per_s": round(train, 1), "gpu_eval_images_per_s": round(evaluate, 1),
            "gpu_rate_source": train_src,
            **{f"cores_for_{g}_gpu_training": round(g * train / loader_img_per_core_s, 2) for g in gpus},
            **{f"cores_for_{g}_gpu_evaluation": round(g * evaluate / loader_img_per_core_s, 2) for g in gpus}}


def data_loading(stages: Sequence[Any], resources: Any, rates: RateBook) -> dict[str, Any]:
    """The row's fields (a ``StageEstimate``'s, which :func:`au_ttt.planning.stages.estimate` builds) for the plan
    so far — ``stages`` with its training and cross-domain rows — on ``resources`` (cores, gpus, nodes)."""
    per_image, source = rates.stage("loader")
    training = next(e for e in stages if e.stage == "training")
    evaluation = next((e for e in stages if e.stage == "cross-domain evaluation"), None)
    images = training.items + (evaluation.items if evaluation else 0.0)
    row = {"stage": "data loading", "jobs": training.jobs, "items": images, "unit": "images", "device": "cpu",
           "per_item_s": per_image, "source": source, "slots": resources.cores * resources.nodes,
           "work": f"{images:,.0f} images decoded and augmented by loader workers",
           "device_h": images * per_image / 3600}
    if training.device != "gpu" or not resources.gpus:
        return {**row, "wall_h": 0.0, "note": "no GPU: loading shares the training jobs' cores"}
    train_rate = 1 / training.per_item_s
    need = resources.gpus * train_rate * per_image
    need_eval = resources.gpus * (1 / evaluation.per_item_s if evaluation else 0.0) * per_image
    short = need > resources.cores
    verdict = (f"short: training is loader-bound, {need / resources.cores:.2f}x its GPU wall time" if short
               else f"suffice ({resources.cores - need:.1f} cores to spare)")
    note = (f"{need:.1f} cores per node feed {resources.gpus} GPUs training at {train_rate:,.0f} img/s each "
            f"({need_eval:.1f} for evaluation passes); {resources.cores} configured: {verdict}")
    return {**row, "wall_h": training.wall_h * (need / resources.cores - 1) if short else 0.0, "note": note}
