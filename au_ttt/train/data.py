"""Build the train/test datasets of one run from the data products, checking that they fit the model.

Every mismatch a user can cause (wrong dataset for the index, crop/input sizes that disagree with the
model, a missing file) is reported here, before any model is built or any compute starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from au_ttt.data.protocol import AUS
from au_ttt.errors import InputError

if TYPE_CHECKING:
    from au_ttt.settings import Settings

__all__ = ["DataPaths", "check_compatible", "load_split"]


@dataclass(frozen=True)
class DataPaths:
    index: Path      # frame index parquet (`au-ttt data index`)
    crops: Path      # aligned crop store (`au-ttt crops`)
    heatmaps: Path   # AU-centre cache (`au-ttt heatmaps`)

    def check(self) -> None:
        for name in ("index", "crops", "heatmaps"):
            path = Path(getattr(self, name))
            if not path.exists():
                raise InputError(f"{path}: {name} not found (produce it with `au-ttt "
                                 f"{ {'index': 'data index', 'crops': 'crops', 'heatmaps': 'heatmaps'}[name] }`)")


def check_compatible(settings: Settings, variant: str | None) -> None:
    """Model input/grid/heatmap sizes must equal what the data side renders."""
    model, hm = settings.model_for(variant), settings.heatmaps
    target = model.heatmap_size or model.grid_size[0]
    problems = []
    if hm.input_size != model.img_size:
        problems.append(f"heatmaps.input_size {hm.input_size} ≠ model.img_size {model.img_size}")
    if hm.patch_size != model.patch_size:
        problems.append(f"heatmaps.patch_size {hm.patch_size} ≠ model.patch_size {model.patch_size}")
    if hm.target_size != target:
        problems.append(f"heatmaps.target_size {hm.target_size} ≠ the model's heatmap size {target}")
    if problems:
        raise InputError(f"{settings.source}: " + "; ".join(problems))


def load_split(settings: Settings, paths: DataPaths, dataset: str, test_part: int, split: str, *,
               label_aus: tuple[int, ...] | None = None, mask_aus: tuple[int, ...] | None = None):
    """The ``split`` ('train'/'test') of the fold testing on ``test_part``; ``split='all'`` = every row.

    ``label_aus`` are the AUs whose labels are read (default: the dataset's), ``mask_aus`` the AUs the
    model's RoI masks are drawn for (default: the same; cross-domain passes the source dataset's AUs).
    """
    from au_ttt.data.dataset import AUFrameDataset, split_rows
    from au_ttt.data.frame_index import load_index

    paths.check()
    index = load_index(paths.index)
    found = sorted(index["dataset"].unique())
    if found != [dataset]:
        raise InputError(f"{paths.index}: holds dataset(s) {found}, but the run is for {dataset!r}")
    rows = None if split == "all" else split_rows(index, test_part, split)
    return AUFrameDataset(index, paths.crops, paths.heatmaps, rows=rows, train=split == "train",
                          cfg=settings.heatmaps, aus=label_aus or AUS[dataset], mask_aus=mask_aus,
                          random_crop=settings.train.random_crop)
