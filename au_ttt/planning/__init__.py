"""The cost plan: per DAG stage the work, the cost per item assumed (with its source) and the hours on given
resources. Pure and torch-free, so the Snakemake DAG can print it at start-up (``au-ttt plan`` on the CLI)."""

from au_ttt.planning.rates import RateBook, discover_bench
from au_ttt.planning.render import plan_dict, render_table
from au_ttt.planning.stages import Resources, StageEstimate, data_sizes, estimate, pretraining_gpu_days

__all__ = ["RateBook", "Resources", "StageEstimate", "data_sizes", "discover_bench", "estimate", "plan_dict",
           "pretraining_gpu_days", "render_table"]
