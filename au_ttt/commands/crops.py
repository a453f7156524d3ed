"""Similarity-aligned face crops (256×256 by default) for every index row that has landmarks.

  au-ttt crops --index index.parquet [--root IMAGES] --landmarks landmarks.npz [--subjects S1 …] --out CROPS_DIR

Store layout: ``CROPS_DIR/images/<index image path>.jpg`` (JPEG), ``CROPS_DIR/aligned.npz`` (aligned
landmarks, validity, transforms, per-row status and the index hash, row-aligned with the index) and
``CROPS_DIR/crops.report.json`` (written / skipped counts; every frame whose image is missing, empty,
truncated or not an image, by name). Frames without landmarks or with a bad image are skipped and
counted, never cropped grey and never a stop. The store is built beside ``CROPS_DIR`` and renamed into
place, so a killed run leaves the previous complete store (or none). ``--subjects`` makes one shard.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from au_ttt.commands.landmarks import add_common, load_shard_index, print_report, section_with_overrides

HELP = "aligned face crops + aligned landmarks from a landmark file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--root", type=Path, default=None, help="image root (default: index image_root)")
    parser.add_argument("--landmarks", type=Path, required=True, help="output of `au-ttt landmarks`")
    parser.add_argument("--out", type=Path, required=True, help="crop store directory")
    parser.add_argument("--size", type=int, default=None, help="crop side in px (config crops.size, 256)")


def run(args: argparse.Namespace) -> int:
    from au_ttt.data.align import AlignConfig, write_crops
    from au_ttt.data.landmarks import load_landmarks
    from au_ttt.errors import InputError

    cfg = section_with_overrides(args.config, "crops", AlignConfig, size=args.size)
    index = load_shard_index(args)
    root = args.root or index.attrs.get("image_root")
    if root is None:
        raise InputError(f"{args.index} records no image_root; pass --root")
    report = write_crops(index, root, load_landmarks(args.landmarks, index), args.out, cfg,
                         progress=not args.no_progress)
    print_report(report)
    return 0
