"""Build the AU heatmap cache (aligned FG-Net AU centres, one file per crop store).

  au-ttt heatmaps --index index.parquet --crops CROPS_DIR [--subjects S1 …] --out CACHE_DIR [--config config.yaml]

Writes ``CACHE_DIR/au_centres.npz`` (centres of every AU with a rule, so one cache serves both datasets'
AU sets, e.g. cross-domain RoI masks) and ``CACHE_DIR/manifest.json``. Location masks and signed targets
are rendered per sample from these centres after the sample's crop/flip (see au_ttt.data.heatmaps). The
cache key covers the aligned landmarks, centre rules and heatmap parameters; the Dataset refuses a stale
cache. The folder is built aside and renamed into place; ``--subjects`` makes one shard (it must match the
crop store's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from au_ttt.commands.landmarks import add_common, load_shard_index, section_with_overrides

HELP = "AU heatmap cache (FG-Net centres) keyed by aligned landmarks + parameters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--crops", type=Path, required=True, help="crop store of `au-ttt crops`")
    parser.add_argument("--out", type=Path, required=True, help="cache directory")
    parser.add_argument("--sigma-frac", type=float, default=None, help="Gaussian σ / crop side (20/128)")
    parser.add_argument("--target-size", type=int, default=None, help="signed-target resolution (14)")


def run(args: argparse.Namespace) -> int:
    from au_ttt.data.align import load_aligned
    from au_ttt.data.heatmaps import HeatmapConfig, write_centre_cache
    from au_ttt.data.landmarks import index_hash

    cfg = section_with_overrides(args.config, "heatmaps", HeatmapConfig, sigma_frac=args.sigma_frac,
                                 target_size=args.target_size)
    index = load_shard_index(args)
    aligned = load_aligned(args.crops, index)
    manifest = write_centre_cache(args.out, aligned.points, aligned.valid, cfg, index_hash(index),
                                  subjects=index.attrs.get("subjects"))
    print(json.dumps({k: v for k, v in manifest.items() if k != "params"}, indent=2))
    return 0
