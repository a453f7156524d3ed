"""Dataset preparation: check a licensed copy, decode DISFA videos to frames, build the frame index and folds.

  au-ttt data frames --root DISFA_ROOT --out FRAMES_DIR [--subjects SN001 …] [--force] [--missing-ok]
  au-ttt data index --dataset {bp4d,disfa} --root DIR [--frames DIR] --out index.parquet
  au-ttt data check --dataset {bp4d,disfa} --root DIR [--frames DIR] [--full] [--sample N] [--out report.json]

``frames`` builds each subject folder beside its target and renames it into place (a killed run leaves
the previous complete folder or none; its temporaries are swept by the next run). ``index`` writes the
index, ``<name>.report.json`` (every exclusion counted; zero-byte frame files excluded and named) and
``folds.json`` (folds named by test part, with training occurrence rates and class weights) into the
folder of ``--out``. ``check`` compares a licensed copy with the published protocol before any compute
(exit 0 = matches, 1 = mismatches; rules in :mod:`au_ttt.data.check`).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from au_ttt.data.check_report import DEFAULT_SAMPLE, DEFAULT_TOLERANCE
from au_ttt.data.protocol import DATASETS

HELP = "prepare datasets: check a licensed copy, decode DISFA frames, build the frame index and folds"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="<step>", required=True)
    frames = sub.add_parser("frames", help="decode DISFA left-camera videos into SN###/{t}.jpg (t 0-based)",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    frames.add_argument("--root", type=Path, required=True, help="DISFA folder containing Videos_LeftCamera/")
    frames.add_argument("--out", type=Path, required=True, help="frames folder (one SN### folder per video)")
    frames.add_argument("--subjects", nargs="+", default=None, help="only these subjects (default: all)")
    frames.add_argument("--force", action="store_true", help="re-decode subjects that are already done")
    frames.add_argument("--missing-ok", action="store_true",
                        help="a --subjects entry without a video becomes a 0-frame subject (counted by `data "
                             "index`) instead of an error")
    frames.add_argument("--no-progress", action="store_true", help="hide progress bars")

    index = sub.add_parser("index", help="build THE FRAME INDEX (parquet) plus report and folds.json",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    index.add_argument("--dataset", choices=DATASETS, required=True)
    index.add_argument("--root", type=Path, required=True,
                       help="BP4D folder with AUCoding/AU_OCC/, or DISFA folder with ActionUnit_Labels/")
    index.add_argument("--frames", type=Path, default=None,
                       help="image root: BP4D {subject}/{task}/{frame}.jpg (default: --root); DISFA: the "
                            "--out of `au-ttt data frames` (required)")
    index.add_argument("--out", type=Path, required=True,
                       help="index path, e.g. results/data/bp4d/index.parquet")
    index.add_argument("--allow-unknown-subjects", action="store_true",
                       help="exclude (and count) subjects outside the published parts instead of failing")
    index.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_check(sub)


def _add_check(sub) -> None:
    check = sub.add_parser(
        "check", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="pre-flight: compare a licensed copy with the published protocol (exit 1 on a mismatch)",
        description="Compare a BP4D or DISFA copy with the published protocol before hours of compute: subjects, "
                    "sequences, labelled-frame counts, AU columns, label values, DISFA video frame counts, image "
                    "readability. Prints one line per mismatch (ERROR or WARNING, code, where, what) and a "
                    "summary; exit 0 when the copy matches (warnings allowed), 1 when there is an error, 2 on a "
                    "usage error. Count differences within --tolerance are warnings, larger ones errors.")
    check.add_argument("--dataset", choices=DATASETS, required=True)
    check.add_argument("--root", type=Path, required=True,
                       help="BP4D folder with AUCoding/AU_OCC/, or DISFA folder with ActionUnit_Labels/ and "
                            "Videos_LeftCamera/")
    check.add_argument("--frames", type=Path, default=None,
                       help="BP4D: image root with {subject}/{task}/{frame}.jpg (default: --root); DISFA: the "
                            "folder written by `au-ttt data frames` (optional: checks the decoded frames too)")
    check.add_argument("--expect", choices=("published", "structure"), default="published",
                       help="published: also compare absolute counts (BP4D tasks T1-T8 and frames per part, "
                            "DISFA 4,845 lines per subject); structure: only structural facts (format replicas, "
                            "SynthAU)")
    check.add_argument("--subjects", nargs="+", default=None,
                       help="check only these published subjects (default: all must be present; BP4D frame "
                            "counts per part are then not compared)")
    check.add_argument("--full", action="store_true",
                       help="decode every image and every DISFA video frame (default: a sample)")
    check.add_argument("--sample", type=int, default=DEFAULT_SAMPLE,
                       help="images decoded per sequence, evenly spaced, always the same ones")
    check.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                       help="relative count difference reported as a warning rather than an error")
    check.add_argument("--max-lines", type=int, default=20, help="lines printed per kind of mismatch")
    check.add_argument("--out", type=Path, default=None, help="also write the full report as JSON here")
    check.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        return _check(args)
    return _frames(args) if args.data_command == "frames" else _index(args)


def _check(args: argparse.Namespace) -> int:
    from au_ttt.data.check import check_dataset
    from au_ttt.fileio import atomic_write_json

    report = check_dataset(args.dataset, args.root, args.frames, expect=args.expect, sample=args.sample,
                           full=args.full, tolerance=args.tolerance, subjects=args.subjects,
                           progress=not args.no_progress)
    for line in report.lines(per_code=max(args.max_lines, 1)):
        print(line)
    print(report.summary())
    if args.out is not None:
        atomic_write_json(args.out, report.to_dict())
        print(f"report: {args.out}")
    return 0 if report.ok else 1


def _frames(args: argparse.Namespace) -> int:
    from au_ttt.data.disfa import label_path
    from au_ttt.data.protocol import DISFA_AUS
    from au_ttt.data.video import extract_disfa_frames

    result = extract_disfa_frames(args.root, args.out, force=args.force, subjects=args.subjects,
                                  progress=not args.no_progress, missing_ok=args.missing_ok)
    for subject, info in result.items():
        files = [p for au in DISFA_AUS if (p := label_path(args.root, subject, au)).is_file()]
        lines = max((sum(1 for ln in p.read_text().splitlines() if ln.strip()) for p in files), default=None)
        note = "" if lines in (None, info["frames"]) else f"; label files have {lines} lines"
        print(f"{subject}: {info['frames']} frames ({info['status']}{note})")
    print(f"{len(result)} videos, {sum(i['frames'] for i in result.values())} frames in {args.out}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from au_ttt.data.frame_index import write_index
    from au_ttt.datasets import registry
    from au_ttt.errors import InputError

    spec = registry.get(args.dataset)
    if spec.frames_required and args.frames is None:
        raise InputError(f"{spec.title} needs --frames FRAMES_DIR, the folder written by `au-ttt data frames`")
    image_root = args.frames or args.root
    df, report = spec.read(args.root, image_root, args.allow_unknown_subjects, progress=not args.no_progress)
    full = write_index(df, args.out, image_root, report, {"label_root": str(args.root.resolve())})
    print(f"{args.dataset}: {full['rows']} frames, {full['subjects']} subjects, {full['sequences']} "
          f"sequences -> {args.out} (images relative to {full['image_root']})")
    print("frames per part: " + json.dumps(full["frames_per_part"]))
    for line in report.summary():
        print("  " + line)
    for warning in full["warnings"]:
        print("  WARNING: " + warning)
    return 0
