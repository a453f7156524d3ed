"""Merge per-subject shards into the one landmark file, crop store and heatmap cache of a dataset.

A shard folder holds what the three stages wrote for one ``--subjects`` list::

    SHARD/landmarks.npz    au-ttt landmarks --subjects … --out SHARD/landmarks.npz
    SHARD/crops/           au-ttt crops     --subjects … --out SHARD/crops
    SHARD/heatmaps/        au-ttt heatmaps  --subjects … --out SHARD/heatmaps

:func:`plan_shards` checks, before anything is written, that the shards were made for this index (each
file's recorded sub-index hash equals the hash of this index's rows of its subjects), that all files of
a shard name the same subjects, and that the shards cover every index row exactly once. The merges place
each shard's rows at their positions in the full index; crops are hard-linked into the merged store
(copied where the file system refuses links), so merging costs no second copy of the images. Every row is
computed independently in the stages, so the merged outputs are byte-identical to what the unsharded
commands write (tests/test_shards.py proves it); outputs are written atomically, landmarks first.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from au_ttt.data.align import ALIGNED_FILE, AlignedSet, crop_path, load_aligned, save_aligned
from au_ttt.data.heatmaps import (
    MANIFEST_FILE,
    HeatmapConfig,
    load_cache_manifest,
    load_centre_cache,
    save_centre_cache,
)
from au_ttt.data.landmarks import LandmarkSet, load_landmarks
from au_ttt.data.rowfiles import index_hash, read_subjects
from au_ttt.data.shards import select_subjects
from au_ttt.errors import InputError
from au_ttt.fileio import building_dir

__all__ = [
    "SHARD_CROPS", "SHARD_HEATMAPS", "SHARD_LANDMARKS", "Shard", "link_or_copy", "merge_aligned",
    "merge_heatmaps", "merge_landmarks", "plan_shards", "write_merged_crops",
]

SHARD_LANDMARKS = "landmarks.npz"
SHARD_CROPS = "crops"
SHARD_HEATMAPS = "heatmaps"
_KIND_FILE = {"landmarks": SHARD_LANDMARKS, "crops": f"{SHARD_CROPS}/{ALIGNED_FILE}",
              "heatmaps": f"{SHARD_HEATMAPS}/{MANIFEST_FILE}"}


@dataclass
class Shard:
    folder: Path
    subjects: tuple[str, ...] | None   # None: made for the whole index
    rows: np.ndarray                   # positions of its rows in the full index, in index order
    index: pd.DataFrame                # its sub-index (what its files were made for)


def _recorded_subjects(folder: Path, kind: str) -> tuple[str, ...] | None:
    path = folder / _KIND_FILE[kind]
    if not path.is_file():
        out = path if kind == "landmarks" else path.parent
        raise InputError(f"{path}: not found; run `au-ttt {kind} --subjects … --out {out}` for this shard first")
    if kind == "heatmaps":
        subjects = load_cache_manifest(path.parent).get("subjects")
        return tuple(subjects) if subjects is not None else None
    with np.load(path) as z:
        return read_subjects(z)


def plan_shards(index: pd.DataFrame, folders: list[Path], kinds: tuple[str, ...]) -> list[Shard]:
    """The shards in ``folders``, checked to hold ``kinds`` for disjoint subject lists covering ``index``."""
    if not folders:
        raise InputError("--shards needs at least one shard folder")
    shards, owner = [], np.full(len(index), -1)
    for k, folder in enumerate(folders):
        recorded = {kind: _recorded_subjects(folder, kind) for kind in kinds}
        if len(set(recorded.values())) > 1:
            raise InputError(f"{folder}: its files were made for different subjects ({recorded}); rerun the "
                             "shard's stages with one --subjects list")
        subjects = next(iter(recorded.values()))
        sub = select_subjects(index, subjects)
        rows = (np.flatnonzero(index["subject"].isin(subjects).to_numpy()) if subjects is not None
                else np.arange(len(index)))
        taken = rows[owner[rows] >= 0]
        if taken.size:
            twice = sorted(set(index["subject"].to_numpy()[taken]))
            raise InputError(f"shards {folders[owner[taken[0]]]} and {folder} both hold subjects "
                             f"{', '.join(twice)}; give each subject to exactly one shard")
        owner[rows] = k
        shards.append(Shard(folder, subjects, rows, sub))
    missing = owner < 0
    if missing.any():
        absent = sorted(set(index["subject"].to_numpy()[missing]))
        raise InputError(f"no shard holds subjects {', '.join(absent)} ({int(missing.sum())} index rows); add "
                         "their shard folders to --shards (or make them with `--subjects`)")
    return shards


def _same(values: list[tuple[Path, Any]], what: str) -> Any:
    first_path, first = values[0]
    for path, value in values[1:]:
        if value != first:
            raise InputError(f"{first_path} and {path} were made with different {what}; rerun the shards with "
                             "one configuration")
    return first


def _shard_parts(shards: list[Shard], sub: str, load: Callable[[Path, pd.DataFrame], Any],
                 agreed: dict[str, str]) -> tuple[list[tuple[Shard, Any]], dict[str, Any]]:
    """Each shard's record (``load(shard/sub, shard index)``) and the attributes of ``agreed`` (name → what it
    is, for the error) that every shard must share."""
    parts = [(s, load(s.folder / sub, s.index)) for s in shards]
    same = {name: _same([(s.folder / sub, getattr(p, name)) for s, p in parts], what) for name, what in agreed.items()}
    return parts, same


def _scatter(out: Any, parts: list[tuple[Shard, Any]], names: tuple[str, ...]) -> Any:
    """Copy each shard's per-row arrays ``names`` into the whole-index record ``out`` at the shard's rows."""
    for shard, part in parts:
        for name in names:
            getattr(out, name)[shard.rows] = getattr(part, name)
    return out


def merge_landmarks(index: pd.DataFrame, shards: list[Shard]) -> LandmarkSet:
    """Landmarks of the whole index from the shards' landmark files (each checked against its sub-index)."""
    parts, same = _shard_parts(shards, SHARD_LANDMARKS, load_landmarks,
                               {"backend": "landmark backends", "settings": "landmark settings"})
    n = len(index)
    out = LandmarkSet(np.full((n, 68, 2), np.nan, np.float32), np.zeros(n, np.float32), np.zeros(n, bool),
                      index_hash(index), same["backend"], np.zeros(n, np.int8), None, same["settings"])
    return _scatter(out, parts, ("points", "score", "success", "image_error"))


def merge_aligned(index: pd.DataFrame, shards: list[Shard]) -> AlignedSet:
    """The aligned landmarks/status of the whole index from the shards' crop stores."""
    parts, same = _shard_parts(shards, SHARD_CROPS, load_aligned, {"size": "crop sizes", "settings": "crop settings"})
    n = len(index)
    out = AlignedSet(np.full((n, 68, 2), np.nan, np.float32), np.zeros(n, bool),
                     np.full((n, 2, 3), np.nan, np.float32), index_hash(index), same["size"], np.zeros(n, np.int8),
                     np.zeros(n, np.int8), None, same["settings"])
    return _scatter(out, parts, ("points", "valid", "matrix", "status", "image_error"))


def link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst``; copy where links are impossible. True when linked."""
    try:
        os.link(src, dst)
        return True
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    shutil.copyfile(src, dst)
    return False


def write_merged_crops(index: pd.DataFrame, shards: list[Shard], aligned: AlignedSet, out_dir: Path,
                       progress: bool = True) -> dict[str, Any]:
    """Build the merged crop store (links to the shards' crops) atomically; returns its report + link count."""
    from tqdm import tqdm

    images = index["image"].to_numpy()
    linked = copied = 0
    with building_dir(out_dir) as tmp:
        made: set[Path] = set()
        (tmp / "images").mkdir()
        todo = [(s, r) for s in shards for r in s.rows[aligned.valid[s.rows]]]
        for shard, row in tqdm(todo, desc="gather crops", disable=not progress):
            src, dst = crop_path(shard.folder / SHARD_CROPS, images[row]), crop_path(tmp, images[row])
            if not src.is_file():
                raise InputError(f"{src}: crop missing from shard store {shard.folder / SHARD_CROPS}; rerun "
                                 "`au-ttt crops` for that shard")
            if dst.parent not in made:
                dst.parent.mkdir(parents=True, exist_ok=True)
                made.add(dst.parent)
            if link_or_copy(src, dst):
                linked += 1
            else:
                copied += 1
        report = save_aligned(tmp, aligned, index)
    return {**report, "linked": linked, "copied": copied}


def merge_heatmaps(index: pd.DataFrame, shards: list[Shard], aligned: AlignedSet, out_dir: Path) -> dict:
    """The heatmap cache of the whole index from the shards' caches (each checked against its crops)."""
    manifests = [(s, load_cache_manifest(s.folder / SHARD_HEATMAPS)) for s in shards]
    params = _same([(s.folder / SHARD_HEATMAPS, m["params"]) for s, m in manifests], "heatmap settings")
    aus = tuple(_same([(s.folder / SHARD_HEATMAPS, m["aus"]) for s, m in manifests], "heatmap AU lists"))
    cfg = HeatmapConfig(**params)
    centres = np.full((len(index), len(aus), 2, 2), np.nan, np.float32)
    for shard, manifest in manifests:
        if manifest["index_hash"] != index_hash(shard.index):
            raise InputError(f"{shard.folder / SHARD_HEATMAPS}: made for another frame index or shard; rerun "
                             "`au-ttt heatmaps` for it")
        own = load_aligned(shard.folder / SHARD_CROPS, shard.index)
        centres[shard.rows] = load_centre_cache(shard.folder / SHARD_HEATMAPS, own.points, own.valid, aus, cfg)
    return save_centre_cache(out_dir, centres, aligned.points, aligned.valid, cfg, index_hash(index), aus)
