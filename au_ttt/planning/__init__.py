"""The cost plan: per DAG stage the work, the cost per item assumed (with its source) and the hours on given
resources. Pure and torch-free, so the Snakemake DAG can print it at start-up (``au-ttt plan`` on the CLI);
GPU rates come from the cost model in :mod:`au_ttt.planning.gpu_model` (op profiles are read, not made, here)."""

from au_ttt.planning.gpu_model import CostModel, cost_model
from au_ttt.planning.rates import RateBook, discover_bench
from au_ttt.planning.render import gpu_model_dict, plan_dict, render_gpu_model, render_table
from au_ttt.planning.stages import (
    Resources,
    StageEstimate,
    data_sizes,
    estimate,
    model_geometry,
    pretrain_batch,
    pretraining_gpu_days,
    scan_path,
    train_batch,
)

__all__ = ["CostModel", "RateBook", "Resources", "StageEstimate", "cost_model", "data_sizes", "discover_bench",
           "estimate", "gpu_model_dict", "model_geometry", "plan_dict", "pretrain_batch", "pretraining_gpu_days",
           "render_gpu_model", "render_table", "scan_path", "train_batch"]
