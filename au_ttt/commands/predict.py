"""Detect facial action units in your own images and videos with a trained AU-TTT model.

INPUT is any mix of image files, videos, folders (searched recursively), globs ('clips/**/*.mp4', quoted)
and text files listing paths (.txt/.lst/.list, one per line). Every face in every scored frame is found
(MTCNN by default, or dlib HOG), gets 68 dlib landmarks and exactly the alignment, crop, normalisation and RoI
masks of training, and is scored in batches. Writes one OpenFace-style CSV per input (frame, timestamp,
face_id, confidence, success, box, 68 landmarks, AUxx_p probabilities, AUxx_c decisions), predictions.csv
for all inputs and summary.json; --overlay adds a PNG per image and an MP4 per video. A frame without a face
is a row with success 0 (so is an image too small to hold one). An --out that holds an earlier run's outputs
is refused; --overwrite removes those outputs first. Exit status: 0 every input was read; 1 some inputs could
not be read (they are named in the summary; the others were scored); 2 usage, model or configuration error
(nothing scored).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from au_ttt.predict.expand import MAX_INPUTS, MAX_PIXELS

HELP = "detect AUs in images/videos/folders with a trained model: OpenFace-style CSVs, overlays"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="images, videos, folders, globs or list files")
    parser.add_argument("--model", required=True,
                        help="a bundle folder (`au-ttt export`), a run directory (`au-ttt train --out`) or an "
                        "MLflow model URI such as runs:/<run id>/model")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (created if needed); refused if it holds an earlier run's outputs")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may hold an earlier run's outputs: remove them (summary.json, predictions.csv, "
                        "per-input CSVs, overlay/) before scoring; other files stay")
    parser.add_argument("--every", type=int, default=1, help="score frames 0, N, 2N, … of each video")
    parser.add_argument("--batch", type=int, default=32, help="faces per model batch")
    parser.add_argument("--device", default="auto", help="auto (CUDA if visible, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--threshold", type=float, default=None,
                        help="probability at which AUxx_c is 1, for every AU; unset: the model's own thresholds (0.5)")
    parser.add_argument("--overlay", action="store_true", help="also write overlay/<input>.png|.mp4")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    faces = parser.add_argument_group("faces")
    faces.add_argument("--detector", choices=("mtcnn", "dlib"), default="mtcnn",
                       help="face detector: MTCNN (facenet-pytorch; finds more faces) or dlib HOG (the training "
                       "pipeline's `landmarks.backend: dlib` detector)")
    faces.add_argument("--min-confidence", type=float, default=0.9, help="MTCNN: drop boxes below this probability")
    faces.add_argument("--min-face", type=int, default=20,
                       help="MTCNN: smallest face side searched, in pixels; a frame whose shorter side is smaller "
                       "has no face searched (a success-0 row, counted as too small)")
    faces.add_argument("--detect-size", type=int, default=2000,
                       help="the detector sees a frame larger than this (longer side, px) downscaled to it; "
                       "landmarks and crops still come from the full frame (0: detect at full size)")
    faces.add_argument("--upsample", type=int, default=None,
                       help="dlib: HOG upsampling (default: the training config's landmarks.dlib_upsample)")
    faces.add_argument("--landmarks", type=Path, default=None,
                       help="CSV/Parquet of 68-point landmarks (columns input, frame, x_0…x_67, y_0…y_67) to use "
                       "instead of the detector, e.g. the landmarks training used")
    faces.add_argument("--max-missed", type=int, default=5,
                       help="videos: a face unseen for more than this many scored frames gets a new face_id")
    model = parser.add_argument_group("model source")
    model.add_argument("--config", type=Path, default=None,
                       help="run directories only: the config the run was trained with, if the run does not "
                       "record its preprocessing; its tracking section also locates runs:/ URIs")
    model.add_argument("--tracking-uri", default=None,
                       help="MLflow tracking URI for runs:/ and models:/ (default: --config's, else "
                       "$MLFLOW_TRACKING_URI; with neither, runs:/ is refused instead of creating ./mlflow.db). An "
                       "http(s) server gets a 15 s timeout and 2 retries unless MLFLOW_HTTP_REQUEST_* are set")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-pixels", type=float, default=MAX_PIXELS / 1e6, metavar="MP",
                        help="refuse (as unreadable, before decoding) a still image over this many megapixels")
    limits.add_argument("--max-inputs", type=int, default=MAX_INPUTS,
                        help="stop (exit 2) if the INPUTs expand to more files, or walk more folders, than this")


def _tracking_uri(args: argparse.Namespace) -> str | None:
    if args.tracking_uri:
        return args.tracking_uri
    if args.config is not None and args.model.startswith(("runs:/", "models:/")):
        from au_ttt.settings import load_settings
        from au_ttt.train.tracking import tracking_uri

        return tracking_uri(load_settings(args.config).tracking)
    return None


def _print_summary(summary: dict, out: Path) -> None:
    s = summary
    fps = s["stage_frames_per_s"]
    print(f"{s['scored_inputs']} of {s['inputs']} inputs scored ({s['images']} images, {s['videos']} videos): "
          f"{s['frames']} frames, {s['faces']} faces, {s['no_face_frames']} frames without a face"
          + (f" ({s['too_small_frames']} too small to search)" if s["too_small_frames"] else "")
          + (f", {s['unscorable_faces']} faces without an alignment fit" if s["unscorable_faces"] else ""))
    for p in s["outputs"]["per_input"]:
        if p["too_small_frames"]:
            print(f"  too small for a face: {p['input']}")
    if s["replaced_earlier_outputs"]:
        print(f"  --overwrite: removed {s['replaced_earlier_outputs']} outputs of an earlier run from {out}")
    if s["frames_per_s"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in fps.items() if k != "total" and v is not None)
        print(f"{s['frames_per_s']:.1f} frames/s end to end on {s['device']} (per stage, frames/s: {stages})")
    for u in s["unreadable"]:
        print(f"  unreadable: {u['name']}: {u['reason']}")
    print(f"→ {out} (per-input CSVs, {'predictions.csv, ' if s['scored_inputs'] else ''}summary.json)")


def run(args: argparse.Namespace) -> int:
    import torch

    from au_ttt.errors import InputError
    from au_ttt.predict.bundle import load_model
    from au_ttt.predict.job import PredictOptions, run_predict
    from au_ttt.predict.outdir import check_out

    if args.every < 1 or args.batch < 1:
        raise InputError("--every and --batch must be >= 1")
    if args.max_pixels <= 0 or args.max_inputs < 1 or args.detect_size < 0:
        raise InputError("--max-pixels and --max-inputs must be > 0, --detect-size >= 0")
    check_out(args.out, args.overwrite)      # before the model is loaded: refusing costs nothing
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InputError(f"--threshold {args.threshold}: must be a probability in [0, 1]")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, args.config, _tracking_uri(args))
    opts = PredictOptions(every=args.every, batch=args.batch, device=args.device, threshold=args.threshold,
                          overlay=args.overlay, progress=not args.no_progress, detector=args.detector,
                          min_confidence=args.min_confidence, min_face=args.min_face,
                          dlib_upsample=args.upsample, landmarks=args.landmarks, max_missed=args.max_missed,
                          detect_size=args.detect_size, max_pixels=round(args.max_pixels * 1e6),
                          max_inputs=args.max_inputs, overwrite=args.overwrite)
    summary = run_predict(args.inputs, model, args.out, opts)
    _print_summary(summary, args.out)
    return 1 if summary["unreadable"] else 0
