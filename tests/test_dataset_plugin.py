"""A third dataset defined in one module runs through the real commands: index → folds → landmarks → crops →
heatmaps → training → the tables' reading of its runs, with no other module edited.

The plug-in (``PLUGIN`` below) is written by the test into its own folder and imported from there: a tiny
format of its own (one folder per subject, ``labels.csv`` with a frame column and three AU columns, PNG frames,
landmarks in ``points.json``), three parts of two subjects each.
"""

import importlib
import json
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO

from au_ttt.cli import main
from au_ttt.datasets import registry

NAME = "toyau"
PLUGIN = '''
"""toyau: {root}/{subject}/labels.csv (frame,AU1,AU2,AU12), {subject}/{frame}.png, points.json (68×2)."""
import json
from pathlib import Path

from au_ttt.datasets import DatasetSpec, register

AUS = (1, 2, 12)


def read(root, frames_root=None, allow_unknown_subjects=False, progress=True):
    import pandas as pd

    from au_ttt.data.frame_index import IndexReport, finalize_index, subject_part

    report, rows = IndexReport("toyau"), []
    for labels in sorted(Path(root).glob("*/labels.csv")):
        subject = labels.parent.name
        part = subject_part("toyau", subject, labels, allow_unknown_subjects)
        df = pd.read_csv(labels)
        df = df.assign(subject=subject, sequence="S1", part=part,
                       image=[f"{subject}/{f}.png" for f in df.frame])
        rows.append(df.rename(columns={str(au): f"AU{au}" for au in AUS}))
    return finalize_index(rows, "toyau", report), report


def landmarks(root, subject, sequence):
    import numpy as np

    points = np.asarray(json.loads((Path(root) / "points.json").read_text()), np.float64)
    return {int(f): points for f in
            __import__("pandas").read_csv(Path(root) / subject / "labels.csv").frame}


SPEC = register(DatasetSpec(
    name="toyau", title="ToyAU", aus=AUS, loss_margin=0.1,
    parts={1: ("A1", "A2"), 2: ("B1", "B2"), 3: ("C1", "C2")},
    reader=f"{__name__}:read", landmark_reader=f"{__name__}:landmarks"))
'''


def _write_copy(root, frames: int = 6, size: int = 96) -> None:
    """The raw copy in the plug-in's own format: noise frames, labels alternating per AU, one landmark set."""
    import cv2

    from au_ttt.data.align import AlignConfig, template_points

    rng = np.random.default_rng(0)
    root.mkdir()
    (root / "points.json").write_text(json.dumps(template_points(AlignConfig(size=size)).tolist()))
    for k, subject in enumerate(("A1", "A2", "B1", "B2", "C1", "C2")):
        (root / subject).mkdir()
        lines = ["frame,1,2,12"] + [f"{f},{(f + k) % 2},{(f // 2 + k) % 2},{(f // 3) % 2}" for f in range(frames)]
        (root / subject / "labels.csv").write_text("\n".join(lines) + "\n")
        for f in range(frames):
            cv2.imwrite(str(root / subject / f"{f}.png"), rng.integers(0, 255, (size, size, 3), np.uint8))


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """The plug-in module, imported (and so registered) from the test's folder; unregistered afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toyau_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("toyau_plugin")
    yield module
    registry.unregister(NAME)
    sys.modules.pop("toyau_plugin", None)


def _config(tmp_path):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["tracking"]["uri_dir"] = str(tmp_path / "mlflow")
    cfg["train"].update(threads=1, epochs=1, batch_size=4, num_workers=0)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_registered_dataset_is_everywhere_a_name_is_read(plugin):
    from au_ttt.data.protocol import AUS, DATASETS, PARTS, TITLES, au_columns, part_of_subject

    assert NAME in DATASETS and list(DATASETS)[:2] == ["bp4d", "disfa"]
    assert AUS[NAME] == (1, 2, 12) and PARTS[NAME][2] == ("B1", "B2") and TITLES[NAME] == "ToyAU"
    assert au_columns(NAME) == ["AU1", "AU2", "AU12"] and part_of_subject(NAME, "C2") == 3
    assert NAME not in registry.in_paper_table("I")   # the paper's tables stay BP4D and DISFA
    with pytest.raises(ValueError, match="already registered"):
        registry.register(type(plugin.SPEC)(**{**plugin.SPEC.__dict__, "title": "other"}))


def test_plugin_runs_index_folds_training_and_tables(plugin, tmp_path):
    from au_ttt.tables.build import table1_per_au
    from au_ttt.tables.collect import FoldGroup, read_run

    raw, d, config = tmp_path / "raw", tmp_path / "toyau", _config(tmp_path)
    _write_copy(raw)

    def au_ttt(*args):
        assert main([*map(str, args)]) == 0, args

    au_ttt("data", "index", "--dataset", NAME, "--root", raw, "--out", d / "index.parquet", "--no-progress")
    folds = json.loads((d / "folds.json").read_text())
    assert sorted(folds["folds"]) == ["1", "2", "3"] and folds["dataset"] == NAME
    au_ttt("landmarks", "--config", config, "--backend", "provided", "--index", d / "index.parquet",
           "--dataset-root", raw, "--out", d / "landmarks.npz", "--no-progress")
    au_ttt("crops", "--config", config, "--index", d / "index.parquet", "--landmarks", d / "landmarks.npz",
           "--out", d / "crops", "--no-progress")
    au_ttt("heatmaps", "--config", config, "--index", d / "index.parquet", "--crops", d / "crops",
           "--out", d / "heatmaps", "--no-progress")
    runs = [tmp_path / "runs" / f"test{part}" for part in (1, 2, 3)]
    for part, run in enumerate(runs, 1):
        au_ttt("train", "--config", config, "--dataset", NAME, "--test-part", part, "--index",
               d / "index.parquet", "--crops", d / "crops", "--heatmaps", d / "heatmaps", "--pretrained", "none",
               "--out", run, "--device", "cpu", "--no-progress")
    results = tuple(read_run(run) for run in runs)
    assert [(r.dataset, r.test_part) for r in results] == [(NAME, 1), (NAME, 2), (NAME, 3)]
    table = table1_per_au({NAME: FoldGroup(NAME, results[0].variant, results)}, "synthau")
    assert list(table.frame["AU"]) == ["AU1", "AU2", "AU12", "Avg."]
    assert table.frame["ToyAU"].iloc[-1] == pytest.approx(100 * np.mean([r.f1_mean for r in results]))
