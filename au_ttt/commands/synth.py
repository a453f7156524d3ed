"""Generate SynthAU: a BP4D-format and a DISFA-format synthetic AU dataset from one seed (docs/synthau.md).

  au-ttt synth --out data/synthau --seed 0 [--subjects-per-part 2] [--bp4d-tasks 3] ...

Writes ``OUT/BP4D`` (AU_OCC CSVs, JPEG frames, 2DFeatures landmarks), ``OUT/DISFA`` (left-camera AVIs,
intensity label files, Landmark_Points) and ``OUT/synthau.json``; the tree appears atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "generate the SynthAU demo dataset in the BP4D and DISFA on-disk formats"
log = logging.getLogger(__name__)


# Defaults of generate_synthau, repeated here so that building the CLI parser does not import cv2
# (tests/test_synth.py checks that the two agree).
DEFAULTS: dict[str, int] = {"subjects_per_part": 2, "bp4d_tasks": 3, "bp4d_frames": 25, "disfa_frames": 100,
                            "unknown_standard": 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="same seed → byte-identical dataset")
    for name, help_ in (("subjects_per_part", "subjects taken from each published part, per dataset"),
                        ("bp4d_tasks", "tasks T1..Tk per BP4D subject"),
                        ("bp4d_frames", "frames per BP4D task"),
                        ("disfa_frames", "frames per DISFA video"),
                        ("unknown_standard", "cells set to 9 (unknown) per BP4D task in the 12 evaluated AUs")):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=DEFAULTS[name], help=help_)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from au_ttt.data.synth import generate_synthau

    manifest = generate_synthau(args.out, seed=args.seed, subjects_per_part=args.subjects_per_part,
                                bp4d_tasks=args.bp4d_tasks, bp4d_frames=args.bp4d_frames,
                                disfa_frames=args.disfa_frames, unknown_standard=args.unknown_standard,
                                overwrite=args.overwrite, progress=not args.no_progress)
    from au_ttt.datasets import registry

    for ds in registry.synth_names():
        m = manifest[ds]
        print(f"{ds.upper()}: {len(m['subjects'])} subjects, {m['frames']} frames → {m['root']}")
        print(f"  occurrence: {json.dumps(m['occurrence_rate'])}")
    return 0
