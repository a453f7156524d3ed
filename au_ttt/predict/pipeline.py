"""Frames → faces → batched model scores → rows, for one source at a time, with per-stage timing.

Per source: frames are decoded in chunks (``detect_chunk`` frames, batched through MTCNN on the model's
device), each face gets dlib landmarks and the training preprocessing (:mod:`au_ttt.predict.prepare`), and
faces are scored ``batch`` at a time across frame boundaries. Rows leave in frame order as soon as every
face of a frame is scored, so a long video streams to its CSV without being held in memory.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from au_ttt.errors import InputError
from au_ttt.predict.bundle import LoadedModel
from au_ttt.predict.faces import Face, FaceFinder
from au_ttt.predict.inputs import Frame, FrameStream, Source
from au_ttt.predict.landmark_table import LandmarkTable
from au_ttt.predict.output import FaceRow
from au_ttt.predict.overlay import OverlayVideo, draw_frame, write_png
from au_ttt.predict.prepare import PreparedFace, jpeg_roundtrip, prepare_face
from au_ttt.predict.tracking import IoUTracker, left_to_right_ids

__all__ = ["STAGES", "Predictor", "SourceStats"]

STAGES = ("decode", "detection", "landmarks", "preprocess", "model", "output")


@dataclass
class SourceStats:
    frames: int = 0
    faces: int = 0
    no_face_frames: int = 0
    unscorable_faces: int = 0
    too_small_frames: int = 0     # frames under --min-face px on their shorter side: not searched, no face
    file_frames: int = 0
    fps: float = 0.0
    rotation: int = 0


@dataclass
class _Record:
    source: Source
    frame: Frame
    rows: list[FaceRow]
    waiting: int = 0
    image: np.ndarray | None = None


@dataclass
class _Job:
    record: _Record
    row: FaceRow
    face: PreparedFace


@dataclass
class Predictor:
    """Scores frames with a loaded model. ``finder`` None means landmarks come from ``table`` only."""

    loaded: LoadedModel
    finder: FaceFinder | None
    device: torch.device
    batch: int = 32
    every: int = 1
    threshold: float | None = None
    table: LandmarkTable | None = None
    detect_chunk: int = 8
    tracker_iou: float = 0.3
    tracker_max_missed: int = 5
    times: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def __post_init__(self) -> None:
        if self.finder is None and self.table is None:
            raise ValueError("Predictor needs a face finder or a landmark table")
        if self.batch < 1 or self.every < 1:
            raise InputError("--batch and --every must be >= 1")
        self.loaded.model.to(self.device)
        n = len(self.loaded.aus)
        self.thresholds = (np.full(n, float(self.threshold)) if self.threshold is not None
                           else np.asarray(self.loaded.thresholds, np.float64))

    # -- stages ---------------------------------------------------------------------------------------
    def _timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.times[stage] += now - start
        return now

    def score(self, faces: list[PreparedFace]) -> np.ndarray:
        """Probabilities (len(faces), N_AU) as ``evaluate`` computes them (sigmoid of fp32 logits)."""
        from au_ttt.predict.runs import autocast

        images = torch.stack([f.image for f in faces]).to(self.device)
        masks = torch.stack([f.roi_masks for f in faces]).to(self.device)
        with torch.no_grad(), autocast(self.device, self.loaded.amp):
            out = self.loaded.model(images, masks)
        return torch.sigmoid(out.logits.float()).cpu().numpy()

    def _faces(self, source: Source, frames: list[Frame]) -> list[list[Face]]:
        t = time.perf_counter()
        if self.table is not None:
            out = []
            for f in frames:
                found = self.table.get((str(source.path), f.index), [])
                out.append([Face(np.array([np.nanmin(p[:, 0]), np.nanmin(p[:, 1]), np.nanmax(p[:, 0]),
                                           np.nanmax(p[:, 1])]), c, p) for p, c in found])
            self._timed("landmarks", t)
            return out
        assert self.finder is not None
        found = self.finder.detect([f.image for f in frames])
        t = self._timed("detection", t)
        out = []
        for f, dets in zip(frames, found, strict=True):
            h, w = f.image.shape[:2]
            out.append([Face(np.clip(box, 0, [w, h, w, h]), conf, self.finder.landmarks(f.image, fit))
                        for box, conf, fit in dets])
        self._timed("landmarks", t)
        return out

    # -- the run -------------------------------------------------------------------------------------
    def run(self, streams: Iterable[tuple[Source, FrameStream]], stats: dict[Source, SourceStats],
            overlay_dir: Path | None = None, names: dict[Source, str] | None = None
            ) -> Iterator[tuple[Source, FaceRow]]:
        """(source, row) in input and frame order, faces batched across frames *and* files.

        ``stats[source]`` fills in as frames are processed; with ``overlay_dir``, each image gets
        ``<name>.png`` and each video ``<name>.mp4`` there (``names``: source → output name).
        """
        pending: deque[_Record] = deque()
        jobs: list[_Job] = []
        videos: dict[Source, OverlayVideo] = {}

        def flush(final: bool) -> Iterator[tuple[Source, FaceRow]]:
            while jobs and (final or len(jobs) >= self.batch):
                chunk = jobs[:self.batch]
                del jobs[:self.batch]
                t = time.perf_counter()
                probs = self.score([j.face for j in chunk])
                self._timed("model", t)
                for job, p in zip(chunk, probs, strict=True):
                    job.row.probs = p
                    job.record.waiting -= 1
            t = time.perf_counter()
            while pending and pending[0].waiting == 0:
                rec = pending.popleft()
                if overlay_dir is not None and rec.image is not None:
                    drawn = draw_frame(rec.image, rec.rows, self.loaded.aus, self.thresholds)
                    if rec.source.kind == "video":
                        videos[rec.source].write(drawn)
                    else:
                        write_png(_overlay_path(overlay_dir, names, rec.source), drawn)
                for row in rec.rows:
                    yield rec.source, row
            self._timed("output", t)

        try:
            opened = iter(streams)
            while True:
                t = time.perf_counter()
                item = next(opened, None)          # opening decodes an image / a video's first frame
                self._timed("decode", t)
                if item is None:
                    break
                source, stream = item
                st = stats.setdefault(source, SourceStats())
                st.fps, st.rotation = stream.fps, stream.rotation
                if overlay_dir is not None and source.kind == "video":
                    videos[source] = OverlayVideo(_overlay_path(overlay_dir, names, source),
                                                   stream.fps / self.every)
                yield from self._source(source, stream, st, pending, jobs, overlay_dir is not None, flush)
            yield from flush(final=True)
            for video in videos.values():
                video.close()
        except BaseException:
            for video in videos.values():
                video.close(keep=False)
            raise

    def _source(self, source: Source, stream: FrameStream, stats: SourceStats, pending: deque[_Record],
                jobs: list[_Job], keep_image: bool, flush) -> Iterator[tuple[Source, FaceRow]]:
        prep = self.loaded.prep
        tracker = IoUTracker(self.tracker_iou, self.tracker_max_missed) if source.kind == "video" else None
        frames = iter(stream)
        done = False
        while not done:
            t = time.perf_counter()
            chunk: list[Frame] = []
            for frame in frames:
                if source.kind == "video" and prep.video_frame_jpeg_quality:
                    frame = Frame(frame.index, frame.timestamp,
                                  jpeg_roundtrip(frame.image, prep.video_frame_jpeg_quality))
                chunk.append(frame)
                if len(chunk) >= self.detect_chunk:
                    break
            else:
                done = True
            self._timed("decode", t)
            if not chunk:
                break
            for frame, faces in zip(chunk, self._faces(source, chunk), strict=True):
                t = time.perf_counter()
                stats.frames += 1
                if self.finder is not None and self.finder.too_small(frame.image):
                    stats.too_small_frames += 1
                ids = (tracker.update([f.box for f in faces]) if tracker is not None
                       else left_to_right_ids([f.box for f in faces]))
                rec = _Record(source, frame, [], image=frame.image if keep_image else None)
                for face, fid in sorted(zip(faces, ids, strict=True), key=lambda x: x[1]):
                    row = FaceRow(source.name, frame.index, frame.timestamp, fid, face.confidence, face.box,
                                  face.points)
                    prepared = prepare_face(frame.image, face.points, prep)
                    if prepared is None:
                        stats.unscorable_faces += 1
                    else:
                        row.success = True
                        rec.waiting += 1
                        jobs.append(_Job(rec, row, prepared))
                    rec.rows.append(row)
                stats.faces += len(faces)
                if not faces:
                    stats.no_face_frames += 1
                    rec.rows.append(FaceRow(source.name, frame.index, frame.timestamp))
                pending.append(rec)
                self._timed("preprocess", t)
            yield from flush(final=False)
        stats.file_frames = stream.total_frames

    def frames_per_second(self, frames: int) -> dict[str, float]:
        """Frames per second of each stage alone and of the whole run (scored frames / stage seconds)."""
        out = {s: (frames / t if t > 0 else math.inf) for s, t in self.times.items()}
        total = sum(self.times.values())
        out["total"] = frames / total if total > 0 else math.inf
        return out


def _overlay_path(overlay_dir: Path, names: dict[Source, str] | None, source: Source) -> Path:
    """Where ``source``'s overlay goes: ``<name>.mp4`` for a video, ``<name>.png`` for an image."""
    name = (names or {}).get(source, source.path.stem)
    return overlay_dir / f"{name}{'.mp4' if source.kind == 'video' else '.png'}"
