"""`au-ttt predict` on real photographs: one row per face, every face of a group photo, a row for a picture
without a face, greyscale / RGBA / 16-bit files, an unreadable file among good ones, overlays.

The photographs ship inside installed packages (au_ttt/predict/samples.py). The model is a random tiny
AU-TTT: these tests are about faces, rows and files, not about what the AU values mean.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from PIL import Image
from predict_support import make_run

from au_ttt.cli import main
from au_ttt.predict import samples

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the tests compare scores across runs


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Photo folder, run directory and the CLI result of one predict over everything."""
    tmp = tmp_path_factory.mktemp("photos")
    d = tmp / "in"
    d.mkdir()
    astro = Image.fromarray(samples.astronaut())
    astro.save(d / "astronaut.png")
    astro.convert("L").save(d / "astronaut_grey.png")
    astro.convert("RGBA").save(d / "astronaut_rgba.png")
    grey16 = np.asarray(astro.convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey16).save(d / "astronaut_16bit.png")
    group, tiles = samples.group_photo()
    Image.fromarray(group).save(d / "group.jpg", quality=92)
    Image.fromarray(samples.no_face_images()["coffee"]).save(d / "coffee.png")
    (d / "truncated.jpg").write_bytes((d / "group.jpg").read_bytes()[:4000])
    run = make_run(tmp / "run", REPO / "config/config.yaml", "bp4d")
    out = tmp / "out"
    rc = main(["predict", str(d), str(tmp / "missing.png"), "--model", str(run), "--out", str(out), "--overlay",
               "--no-progress", "--device", "cpu"])
    return {"dir": d, "run": run, "out": out, "rc": rc, "tiles": tiles,
            "rows": pd.read_csv(out / "predictions.csv"), "summary": json.loads((out / "summary.json").read_text())}


def _rows(photos, name):
    rows = photos["rows"]
    return rows[rows["input"].map(lambda p: Path(p).name) == name]


def test_unreadable_inputs_are_named_and_the_rest_is_scored(photos):
    s = photos["summary"]
    assert photos["rc"] == 1                                    # documented: 1 = some inputs unreadable
    assert {Path(u["name"]).name for u in s["unreadable"]} == {"truncated.jpg", "missing.png"}
    assert "truncated" in next(u["reason"] for u in s["unreadable"] if u["name"].endswith("truncated.jpg"))
    assert s["inputs"] == 8 and s["scored_inputs"] == 6 and s["images"] == 6
    assert not (photos["out"] / "truncated.csv").exists()
    per_input = {Path(p.name).stem for p in photos["out"].glob("*.csv")} - {"predictions"}
    assert per_input == {"astronaut", "astronaut_grey", "astronaut_rgba", "astronaut_16bit", "group", "coffee"}
    assert s["frames"] == 6 and s["faces"] == 4 + 9 and s["no_face_frames"] == 1


def test_astronaut_one_face_one_row(photos):
    row = _rows(photos, "astronaut.png")
    assert len(row) == 1 and int(row["success"].iloc[0]) == 1 and int(row["face_id"].iloc[0]) == 0
    x, y, w, h = row[["face_x", "face_y", "face_w", "face_h"]].iloc[0]
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 160      # her face, not the mission patch
    probs = row[[c for c in row.columns if c.endswith("_p")]].to_numpy()
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()


def test_grey_rgba_and_16bit_files_work(photos):
    p = lambda name: _rows(photos, name)[[c for c in photos["rows"].columns if c.endswith("_p")]].to_numpy()  # noqa: E731
    for name in ("astronaut_grey.png", "astronaut_rgba.png", "astronaut_16bit.png"):
        assert len(_rows(photos, name)) == 1 and int(_rows(photos, name)["success"].iloc[0]) == 1, name
    np.testing.assert_allclose(p("astronaut_rgba.png"), p("astronaut.png"), atol=1e-6)   # opaque alpha
    np.testing.assert_allclose(p("astronaut_16bit.png"), p("astronaut_grey.png"), atol=1e-6)  # same grey levels


def test_group_photo_every_face_once_with_distinct_ids(photos):
    rows = _rows(photos, "group.jpg")
    assert len(rows) == samples.GROUP_FACES and (rows["success"] == 1).all()
    assert sorted(rows["face_id"]) == list(range(samples.GROUP_FACES))
    cx = rows["face_x"] + rows["face_w"] / 2
    cy = rows["face_y"] + rows["face_h"] / 2
    hits = [sum((x1 <= a < x2) and (y1 <= b < y2) for a, b in zip(cx, cy, strict=True))
            for x1, y1, x2, y2 in photos["tiles"]]
    assert hits == [1] * samples.GROUP_FACES                   # one face found in each placed photo
    order = rows.sort_values("face_id")["face_x"].to_numpy()
    assert (np.diff(order) >= 0).all()                          # ids run left to right


def test_picture_without_a_face_is_one_unsuccessful_row(photos):
    row = _rows(photos, "coffee.png")
    assert len(row) == 1
    assert int(row["success"].iloc[0]) == 0 and int(row["face_id"].iloc[0]) == -1
    assert row[["face_x", "x_0", "AU01_p", "AU01_c"]].isna().all(axis=None)


def test_overlays_are_written_per_image(photos):
    overlay = photos["out"] / "overlay"
    names = sorted(p.name for p in overlay.iterdir())
    assert names == sorted(f"{n}.png" for n in ("astronaut", "astronaut_grey", "astronaut_rgba", "astronaut_16bit",
                                                 "group", "coffee"))
    drawn = np.asarray(Image.open(overlay / "group.png"))
    original = np.asarray(Image.open(photos["dir"] / "group.jpg"))
    assert drawn.shape == original.shape and (drawn != original).any()


def test_mtcnn_finds_the_turned_greyscale_face_hog_misses():
    """Why MTCNN is the default: the cameraman (turned, greyscale) is invisible to dlib's HOG detector."""
    from au_ttt.predict.faces import FaceConfig, FaceFinder

    image = samples.cameraman()
    assert len(FaceFinder(FaceConfig("dlib"))([image])[0]) == 0
    found = FaceFinder(FaceConfig("mtcnn"))([image])[0]
    assert len(found) == 1
    x1, y1, x2, y2 = found[0].box
    assert 180 < (x1 + x2) / 2 < 280 and 100 < (y1 + y2) / 2 < 220
