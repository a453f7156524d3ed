"""Detect (or read) 68-point landmarks for every row of a frame index.

  au-ttt landmarks --backend {dlib,face_alignment,provided} --index index.parquet [--root IMAGES]
                   [--dataset-root RAW] [--subjects S1 S2 …] --out landmarks.npz [--compare-to provided.npz]

Writes ``--out`` (points (N, 68, 2), score, success, per-row image error, the index hash: a later step
refuses a file made for another index or shard) and ``<out>.report.json`` (detection rate, counts, every
frame whose image is missing/empty/truncated/not an image by name; with ``--compare-to``, the detection
rate and NME against that reference, normalised by the outer-eye-corner distance |p36 − p45|). A bad
image is an excluded frame, never a stop. With ``--subjects`` only those subjects' rows are processed
(one shard; merge shards with ``au-ttt gather``). Worker processes (``--workers``) die with the command.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, TypeVar

HELP = "68-point landmarks per frame (dlib, face_alignment or dataset-provided) + detection report"
log = logging.getLogger(__name__)
T = TypeVar("T")


def section_with_overrides(config: Path | None, section: str, cls: type[T], **overrides: Any) -> T:
    """Config section (defaults without --config) with the CLI flags that were given applied on top."""
    from au_ttt.config import from_dict, load_section, to_dict

    base = load_section(config, section, cls) if config is not None else cls()
    given = {k: v for k, v in overrides.items() if v is not None}
    return from_dict(cls, {**to_dict(base), **given}, source=f"{config or '<defaults>'} + command line",
                     prefix=f"{section}.")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, required=True, help="frame index parquet (`au-ttt data index`)")
    parser.add_argument("--config", type=Path, default=None, help="config.yaml (given flags override it)")
    parser.add_argument("--subjects", nargs="+", default=None, metavar="SUBJECT",
                        help="process only these subjects' index rows (one shard; `au-ttt gather` merges "
                             "shards); subjects without rows give valid empty outputs")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def load_shard_index(args: argparse.Namespace):
    """The frame index of ``--index``, restricted to ``--subjects`` when given."""
    from au_ttt.data.frame_index import load_index
    from au_ttt.data.shards import select_subjects

    return select_subjects(load_index(args.index), args.subjects)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--backend", choices=("dlib", "face_alignment", "provided"), default=None,
                        help="landmark source (default: config landmarks.backend, else dlib)")
    parser.add_argument("--root", type=Path, default=None, help="image root (default: index image_root)")
    parser.add_argument("--dataset-root", type=Path, default=None,
                        help="raw dataset folder with the shipped landmark files (backend provided)")
    parser.add_argument("--out", type=Path, required=True, help="landmark file, e.g. results/landmarks/x.npz")
    parser.add_argument("--upsample", type=int, default=None, help="dlib HOG upsampling")
    parser.add_argument("--fa-detector", choices=("sfd", "dlib"), default=None,
                        help="face_alignment box source: S3FD or the dlib HOG box")
    parser.add_argument("--device", default=None, help="face_alignment device (cpu, cuda)")
    parser.add_argument("--workers", type=int, default=0,
                        help="detector processes (0 or 1: in this process); they die with this command")
    parser.add_argument("--compare-to", type=Path, default=None,
                        help="reference landmark file of the same index (e.g. --backend provided output)")


def print_report(report: dict[str, Any]) -> None:
    """The report on stdout without the long per-frame list (it stays in the JSON file)."""
    frames = report.get("bad_image_frames") or []
    short = {k: v for k, v in report.items() if k not in ("config", "bad_image_frames")}
    if frames:
        short["bad_image_frames"] = [f"{f['image']} ({f['reason']})" for f in frames[:10]] + (
            [f"… {len(frames) - 10} more in the report file"] if len(frames) > 10 else [])
    print(json.dumps(short, indent=2))


def run(args: argparse.Namespace) -> int:
    from au_ttt.data.landmarks import (
        LandmarkConfig,
        compare_landmarks,
        config_json,
        detect_index,
        landmarks_report,
        load_landmarks,
        provided_landmarks,
        save_landmarks,
    )
    from au_ttt.errors import InputError
    from au_ttt.fileio import atomic_write_json

    cfg = section_with_overrides(args.config, "landmarks", LandmarkConfig, backend=args.backend,
                                 dlib_upsample=args.upsample, fa_detector=args.fa_detector,
                                 device=args.device)
    index = load_shard_index(args)
    if cfg.backend == "provided":
        if args.dataset_root is None:
            raise InputError("--backend provided needs --dataset-root (the raw BP4D/DISFA folder)")
        lms = provided_landmarks(index, args.dataset_root, progress=not args.no_progress,
                                 settings=config_json(cfg))
    else:
        root = args.root or index.attrs.get("image_root")
        if root is None:
            raise InputError(f"{args.index} records no image_root; pass --root")
        lms = detect_index(index, root, cfg, args.workers, progress=not args.no_progress)
    save_landmarks(args.out, lms)
    report: dict[str, Any] = {**landmarks_report(lms, index), "index": str(args.index)}
    if args.compare_to is not None:
        report["comparison"] = {"reference": str(args.compare_to),
                                **compare_landmarks(lms, load_landmarks(args.compare_to, index))}
    atomic_write_json(args.out.with_suffix(".report.json"), report)
    print_report(report)
    if report["bad_images"]:
        log.warning("%d frames excluded for a bad image file (named in %s)", report["bad_images"],
                    args.out.with_suffix(".report.json"))
    if lms.success.sum() < len(lms.success):
        log.warning("%d of %d frames have no landmarks: crops will skip them (counted)",
                    len(lms.success) - int(lms.success.sum()), len(lms.success))
    return 0
