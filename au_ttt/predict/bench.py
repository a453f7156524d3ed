"""Measurements behind docs/predict.md: detector choice on real photos, and predict's frames/s per stage.

    python -m au_ttt.predict.bench detectors [--threads 1] [--out results/bench/predict-detectors.json]
    python -m au_ttt.predict.bench calibrate [--out ...]
    python -m au_ttt.predict.bench speed [--device cpu] [--threads 2] [--frames 60] [--out ...]

``detectors`` runs MTCNN and dlib HOG over the same real photographs (au_ttt.predict.samples): faces found
against the faces present, false detections on photos without a face, and the median time per image.
``calibrate`` measures the MTCNN → HOG-box mapping of :mod:`au_ttt.predict.faces` (``MTCNN_TO_HOG``) on the
real faces both detectors find, and how far dlib's landmarks move from the HOG-box fit with the raw and the
mapped MTCNN box (NME, outer-eye-corner distance). ``speed`` scores a video assembled from real frames with
the demo model (config/config.yaml) and AU-TTT ViT-S/16 at 224 px (config/paper.yaml), both detectors,
after a warm-up run, and reports frames/s overall and per stage (decode, detection, landmarks, preprocess,
model, output) from one run. Weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from au_ttt.predict import samples

__all__ = ["calibrate_box", "detector_table", "main", "speed_table"]

_REPO = Path(__file__).resolve().parents[2]


def _photos() -> list[tuple[str, np.ndarray, int]]:
    """(name, RGB image, faces present)."""
    import cv2

    hop = samples.hopper()
    grey_big = cv2.resize(cv2.cvtColor(cv2.cvtColor(hop, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB), (1024, 1200),
                          interpolation=cv2.INTER_CUBIC)
    group, _ = samples.group_photo()
    out = [("astronaut (512²)", samples.astronaut(), 1), ("Grace Hopper (512×600)", hop, 1),
           ("cameraman, grey, turned (512²)", samples.cameraman(), 1),
           ("Grace Hopper, grey, 1024×1200", grey_big, 1),
           (f"group photo, {samples.GROUP_FACES} faces (1200×560)", group, samples.GROUP_FACES)]
    out += [(f"LFW face {i}", f, 1) for i, f in enumerate(samples.lfw_faces(100, 120))]
    out += [(f"no face: {k}", v, 0) for k, v in samples.no_face_images().items()]
    return out


def detector_table(threads: int = 1) -> dict[str, Any]:
    import torch

    from au_ttt.predict.faces import FaceConfig, FaceFinder

    torch.set_num_threads(threads)
    photos = _photos()
    result: dict[str, Any] = {"threads": threads, "cpu": platform.processor() or platform.machine(), "rows": {}}
    for det in ("mtcnn", "dlib"):
        finder = FaceFinder(FaceConfig(det))
        finder.detect([photos[0][1]])                                   # warm-up
        rows = {}
        for name, img, present in photos:
            t = time.perf_counter()
            found = finder.detect([img])[0]
            rows[name] = {"present": present, "found": len(found), "ms": 1000 * (time.perf_counter() - t)}
        result["rows"][det] = rows
    return result


def calibrate_box() -> dict[str, Any]:
    """Median HOG-box geometry relative to the MTCNN box, and the landmark NME it buys."""
    import torch

    from au_ttt.predict.faces import MTCNN_TO_HOG, FaceConfig, FaceFinder, mtcnn_fit_box

    torch.set_num_threads(1)
    images = [samples.astronaut(), samples.hopper()]
    images += [np.ascontiguousarray(im[:, ::-1]) for im in images] + samples.lfw_faces(100, 164)
    hog, mtcnn = FaceFinder(FaceConfig("dlib")), FaceFinder(FaceConfig("mtcnn"))
    pairs = []
    for im in images:
        h, m = hog.detect([im])[0], mtcnn.detect([im])[0]
        if h and m:
            pairs.append((im, max(h, key=lambda d: d[1]), max(m, key=lambda d: d[1])))
    side, dy, nme_raw, nme_mapped = [], [], [], []
    for im, (hbox, _, hfit), (mbox, _, _) in pairs:
        w, h = mbox[2] - mbox[0], mbox[3] - mbox[1]
        side.append((hbox[2] - hbox[0]) / np.sqrt(w * h))
        dy.append(((hbox[1] + hbox[3]) / 2 - (mbox[1] + mbox[3]) / 2) / h)
        ref = hog.landmarks(im, hfit)
        norm = float(np.linalg.norm(ref[36] - ref[45]))
        raw = hog.landmarks(im, tuple(round(float(v)) for v in mbox))
        mapped = hog.landmarks(im, mtcnn_fit_box(mbox))
        nme_raw.append(float(np.linalg.norm(raw - ref, axis=1).mean() / norm))
        nme_mapped.append(float(np.linalg.norm(mapped - ref, axis=1).mean() / norm))
    return {"faces": len(pairs), "median_side_over_sqrt_wh": float(np.median(side)),
            "median_centre_shift_over_h": float(np.median(dy)), "used": list(MTCNN_TO_HOG),
            "median_nme_raw_box": float(np.median(nme_raw)), "median_nme_mapped_box": float(np.median(nme_mapped))}


def _summarise(rows: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(group, found/present, median ms) for the table."""
    groups: dict[str, list[dict]] = {}
    for name, r in rows.items():
        key = "LFW faces, 120 px (100 images)" if name.startswith("LFW") else (
            "photos without a face (6)" if name.startswith("no face") else name)
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in groups.items():
        present = sum(r["present"] for r in rs)
        found = sum(min(r["found"], r["present"]) for r in rs)
        extra = sum(max(r["found"] - r["present"], 0) for r in rs)
        cell = f"{found}/{present}" + (f" (+{extra} false)" if extra else "") if present else f"{extra} false"
        out.append((key, cell, f"{statistics.median(r['ms'] for r in rs):.0f}"))
    return out


def speed_table(device: str = "cpu", threads: int = 2, frames: int = 60, batch: int = 32) -> dict[str, Any]:
    import cv2
    import torch

    from au_ttt.config import to_dict
    from au_ttt.data.protocol import AUS, DATASETS
    from au_ttt.predict.bundle import LoadedModel
    from au_ttt.predict.job import PredictOptions, run_predict
    from au_ttt.predict.prepare import PreprocessSpec
    from au_ttt.settings import load_settings

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="au-ttt-speed-"))
    # a 640×480 video of real frames: the astronaut photo, drifting, face present throughout
    video = tmp / "clip.avi"
    big = cv2.resize(samples.astronaut(), (704, 704))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for i in range(frames):
        dx = (2 * i) % 64
        writer.write(np.ascontiguousarray(big[100:580, dx:dx + 640, ::-1]))
    writer.release()
    warm = tmp / "warm.avi"
    writer = cv2.VideoWriter(str(warm), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for _ in range(4):
        writer.write(np.ascontiguousarray(big[100:580, :640, ::-1]))
    writer.release()
    result: dict[str, Any] = {"device": device, "threads": threads, "frames": frames, "batch": batch,
                              "video": "640×480 MJPG, 30 fps, real frames (astronaut photo), one face", "rows": []}
    from au_ttt.model.au_ttt import AUTTT

    for label, cfg_file in (("demo (64 px, width 64, depth 2)", "config/config.yaml"),
                            ("AU-TTT ViT-S/16, 224 px", "config/paper.yaml")):
        s = load_settings(_REPO / cfg_file)
        aus = AUS[DATASETS[0]]
        model = AUTTT(s.model, len(aus)).eval()
        prep = PreprocessSpec(s.crops, s.heatmaps, aus, s.crops.jpeg_quality, 95)
        loaded = LoadedModel(model, aus, DATASETS[0], np.full(len(aus), 0.5), prep, s.landmarks, s.train.amp,
                             {"model": to_dict(s.model)}, cfg_file)
        for det in ("mtcnn", "dlib"):
            opts = PredictOptions(batch=batch, device=device, detector=det, progress=False, overwrite=True)
            run_predict([str(warm)], loaded, tmp / "warm-out", opts)
            summary = run_predict([str(video)], loaded, tmp / f"out-{det}", opts)
            result["rows"].append({"model": label, "detector": det, "frames_per_s": summary["frames_per_s"],
                                   "stage_frames_per_s": summary["stage_frames_per_s"], "faces": summary["faces"]})
    return result


def _markdown_detectors(res: dict[str, Any]) -> str:
    m, d = (_summarise(res["rows"][k]) for k in ("mtcnn", "dlib"))
    lines = ["| photo | MTCNN found | MTCNN ms | dlib HOG found | dlib HOG ms |", "|---|---|---|---|---|"]
    for (name, fm, tm), (_, fd, td) in zip(m, d, strict=True):
        lines.append(f"| {name} | {fm} | {tm} | {fd} | {td} |")
    return "\n".join(lines)


def _markdown_speed(res: dict[str, Any]) -> str:
    lines = ["| model | detector | end to end | decode | detection | landmarks | preprocess | model | output |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        st = r["stage_frames_per_s"]
        cells = [f"{st[k]:.0f}" if st[k] is not None else "–" for k in
                 ("decode", "detection", "landmarks", "preprocess", "model", "output")]
        lines.append(f"| {r['model']} | {r['detector']} | **{r['frames_per_s']:.1f}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m au_ttt.predict.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("detectors", "calibrate", "speed"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (detectors: 1, speed: 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None, help="also write the raw numbers as JSON")
    args = parser.parse_args(argv)
    if args.what == "detectors":
        res = detector_table(args.threads or 1)
        text = _markdown_detectors(res)
    elif args.what == "calibrate":
        res = calibrate_box()
        text = json.dumps(res, indent=2)
    else:
        res = speed_table(args.device, args.threads or 2, args.frames)
        text = _markdown_speed(res)
    print(text)
    if args.out is not None:
        from au_ttt.fileio import atomic_write_json

        atomic_write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
