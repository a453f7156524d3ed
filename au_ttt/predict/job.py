"""One ``au-ttt predict`` run: inputs → one CSV per input, a combined CSV, overlays and a summary.

Outputs in ``--out``:

* ``<input>.csv`` per readable input (name from the file's stem; made unique with its folder and extension
  when two inputs share a stem) and ``predictions.csv`` (all of them, same columns);
* ``overlay/<input>.png|.mp4`` with ``--overlay``;
* ``summary.json``: inputs, frames, faces, no-face frames (and how many of them were too small to search),
  unreadable files and why, frames/s overall and per stage, the model and the threshold.

Every file is written atomically; an input that cannot be read leaves no CSV and is listed by name. An
``--out`` holding an earlier run's outputs is refused unless ``overwrite`` (:mod:`au_ttt.predict.outdir`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from au_ttt.data.images import opened_video
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write, atomic_write_json
from au_ttt.predict.bundle import LoadedModel
from au_ttt.predict.inputs import (
    MAX_INPUTS,
    MAX_PIXELS,
    FrameStream,
    InputBudget,
    Source,
    Unreadable,
    expand_inputs,
)
from au_ttt.predict.outdir import COMBINED_CSV, OVERLAY_DIR, SUMMARY_FILE, prepare_out
from au_ttt.predict.output import AtomicCsv, columns, format_row
from au_ttt.predict.pipeline import Predictor, SourceStats
from au_ttt.train.runtime import resolve_device

__all__ = ["COMBINED_CSV", "SUMMARY_FILE", "PredictOptions", "csv_names", "make_predictor", "run_predict",
           "score_paths"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOptions:
    every: int = 1
    batch: int = 32
    device: str = "auto"
    threshold: float | None = None
    overlay: bool = False
    progress: bool = True
    detector: str = "mtcnn"
    min_confidence: float = 0.9
    min_face: int = 20
    dlib_upsample: int | None = None        # None: the training config's landmarks.dlib_upsample
    landmarks: Path | None = None           # user landmark table instead of the detector
    max_missed: int = 5
    detect_size: int = 2000                 # the detector sees larger frames downscaled to this longer side
    max_pixels: int | None = MAX_PIXELS     # still images announcing more pixels are refused undecoded
    max_inputs: int = MAX_INPUTS            # files (and folders walked) the INPUTs may expand to
    overwrite: bool = False                 # remove an earlier run's outputs in --out instead of refusing


def csv_names(sources: list[Source]) -> list[str]:
    """Output names: the file stem, or folder__stem_ext when stems collide; always unique."""
    stems = Counter(s.path.stem for s in sources)
    root = Path(os.path.commonpath([str(s.path.parent) for s in sources])) if sources else Path()
    names, used = [], set()
    for s in sources:
        name = s.path.stem
        if stems[name] > 1 or name == Path(COMBINED_CSV).stem:
            rel = s.path.relative_to(root).with_suffix("")
            name = "__".join(rel.parts) + (f"_{s.path.suffix[1:]}" if s.path.suffix else "")
        base, k = name, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names.append(name)
    return names


def _estimate_frames(sources: list[Source], every: int) -> int:
    import cv2

    total = 0
    for s in sources:
        if s.kind == "image":
            total += 1
            continue
        try:
            with opened_video(s.path, "") as cap:
                total += math.ceil(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) / every)
        except InputError:
            continue  # an estimate only: the run itself reports the video that does not open
    return total


def make_predictor(model: LoadedModel, opts: PredictOptions) -> Predictor:
    from au_ttt.predict.faces import FaceConfig, FaceFinder
    from au_ttt.predict.landmark_table import read_landmark_table

    device = resolve_device(opts.device)
    table = read_landmark_table(opts.landmarks) if opts.landmarks is not None else None
    finder = None
    if table is None:
        upsample = opts.dlib_upsample if opts.dlib_upsample is not None else model.landmarks.dlib_upsample
        finder = FaceFinder(FaceConfig(opts.detector, opts.min_face, opts.min_confidence, upsample,
                                       device=str(device), detect_size=opts.detect_size))
    return Predictor(model, finder, device, batch=opts.batch, every=opts.every, threshold=opts.threshold,
                     table=table, tracker_max_missed=opts.max_missed)


def _streams(sources: list[Source], opts: PredictOptions, unreadable: list[Unreadable]
             ) -> Iterator[tuple[Source, FrameStream]]:
    """Open each source when its turn comes; one that cannot be read is recorded and skipped."""
    for source in sources:
        try:
            stream = FrameStream(source, opts.every, opts.max_pixels)
        except InputError as err:
            log.debug("unreadable input %s: %s", source.path, err)
            reason = str(err).removeprefix(f"{source.path}: ")   # the summary names the file already
            unreadable.append(Unreadable(source.name, reason))
            continue
        yield source, stream


def run_predict(inputs: list[str], model: LoadedModel, out_dir: str | Path, opts: PredictOptions = PredictOptions()
                ) -> dict[str, Any]:
    """Score every input; returns the summary (also written to ``summary.json``)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    sources, unreadable = expand_inputs(inputs, budget=InputBudget(opts.max_inputs))
    given = len(sources) + len(unreadable)
    if not sources and not unreadable:
        raise InputError("no INPUT given: pass images, videos, folders, globs or list files")
    replaced = prepare_out(out_dir, opts.overwrite, frozenset(s.path for s in sources))
    predictor = make_predictor(model, opts)
    header = columns(model.aus)
    names = dict(zip(sources, csv_names(sources), strict=True))
    stats: dict[Source, SourceStats] = {}
    written: list[tuple[Source, Path]] = []
    bar = tqdm(total=_estimate_frames(sources, opts.every), unit="frame", desc="predict", disable=not opts.progress,
               dynamic_ncols=True)
    start = time.perf_counter()
    current: tuple[Source, AtomicCsv] | None = None
    seen = 0
    try:
        rows = predictor.run(_streams(sources, opts, unreadable), stats,
                             out_dir / OVERLAY_DIR if opts.overlay else None, names)
        for source, row in rows:
            if current is None or current[0] is not source:
                if current is not None:
                    written.append((current[0], current[1].commit()))
                current = (source, AtomicCsv(out_dir / f"{names[source]}.csv", header))
            current[1].write(format_row(row, predictor.thresholds))
            frames = sum(s.frames for s in stats.values())
            if frames > seen:
                bar.update(frames - seen)
                seen = frames
                bar.set_postfix(faces=sum(s.faces for s in stats.values()))
        if current is not None:
            written.append((current[0], current[1].commit()))
            current = None
    finally:
        if current is not None:
            current[1].abort()
        bar.close()
    seconds = time.perf_counter() - start
    combined = out_dir / COMBINED_CSV
    if written:
        atomic_write(combined, lambda tmp: _concatenate(tmp, [p for _, p in written]))
    summary = _summary(model, opts, predictor, stats, written, unreadable, given=given, replaced=len(replaced),
                       seconds=seconds, combined=combined)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def _summary(model: LoadedModel, opts: PredictOptions, predictor, stats: dict[Source, SourceStats],
             written: list[tuple[Source, Path]], unreadable: list, *, given: int, replaced: int, seconds: float,
             combined: Path) -> dict[str, Any]:
    """What ``summary.json`` says about a finished job: inputs, counts, speeds and the files written."""
    done = [stats[s] for s, _ in written]
    frames = sum(s.frames for s in done)
    summary = {
        "model": model.source, "dataset": model.dataset, "aus": list(model.aus),
        "thresholds": {f"AU{a}": float(t) for a, t in zip(model.aus, predictor.thresholds, strict=True)},
        "detector": "landmark file" if opts.landmarks else opts.detector, "device": str(predictor.device),
        "every": opts.every, "batch": opts.batch, "inputs": given, "scored_inputs": len(written),
        "images": sum(s.kind == "image" for s, _ in written), "videos": sum(s.kind == "video" for s, _ in written),
        "frames": frames, "faces": sum(s.faces for s in done), "no_face_frames": sum(s.no_face_frames for s in done),
        "unscorable_faces": sum(s.unscorable_faces for s in done),
        "too_small_frames": sum(s.too_small_frames for s in done),
        "unreadable": [asdict(u) for u in unreadable],
        "replaced_earlier_outputs": replaced,
        "seconds": round(seconds, 3), "frames_per_s": round(frames / seconds, 2) if seconds > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in predictor.times.items()},
        "stage_frames_per_s": {k: round(v, 2) if math.isfinite(v) else None
                               for k, v in predictor.frames_per_second(frames).items()},
        "outputs": {"combined_csv": str(combined) if written else None,
                    "per_input": [{"input": s.name, "csv": str(p), **asdict(stats[s])} for s, p in written]},
    }
    return summary


def _concatenate(tmp: Path, parts: list[Path]) -> None:
    """One CSV from per-input CSVs with the same header (header written once)."""
    with tmp.open("w", newline="") as out:
        for i, part in enumerate(parts):
            with part.open() as fh:
                header = fh.readline()
                if i == 0:
                    out.write(header)
                for line in fh:
                    out.write(line)


def score_paths(paths: list[str], model: LoadedModel, opts: PredictOptions = PredictOptions(),
                predictor: Predictor | None = None, root: str | Path | None = None):
    """The rows ``predict`` would write for ``paths``, as one DataFrame (the CSV text parsed back), plus an
    ``error`` column: empty, or why that path could not be read (it then has one ``success = 0`` row).

    ``root``: only paths inside this folder are read, relative ones taken from it (the served model); the
    others get one message that does not say whether they exist."""
    import csv
    import io

    import pandas as pd

    from au_ttt.predict.output import FaceRow

    predictor = predictor or make_predictor(model, opts)
    budget = InputBudget(opts.max_inputs)                # one allowance for the whole request
    expanded = [expand_inputs([str(item)], root, root=root, budget=budget) for item in paths]
    problems: list[Unreadable] = []
    scored: dict[Source, list[list[str]]] = {}
    everything = list(dict.fromkeys(src for sources, _ in expanded for src in sources))   # each file once
    for source, row in predictor.run(_streams(everything, opts, problems), {}):   # one run: full batches
        scored.setdefault(source, []).append(format_row(row, predictor.thresholds))
    failed = {u.name: u.reason for u in problems}
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*columns(model.aus), "error"])
    for item, (sources, missing) in zip(paths, expanded, strict=True):
        for source in sources:
            if source in scored:
                writer.writerows([*cells, ""] for cells in scored[source])
            else:
                missing.append(Unreadable(source.name, failed.get(source.name, "not scored")))
        for u in missing:
            writer.writerow([*format_row(FaceRow(str(item), 0, math.nan), predictor.thresholds), u.reason])
    buf.seek(0)
    return pd.read_csv(buf, keep_default_na=True, dtype={"input": str, "error": str}).fillna({"error": ""})
