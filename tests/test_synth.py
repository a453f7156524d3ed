"""SynthAU: formats parsed like the real datasets, determinism, anchored AUs, occurrence rates, learnability."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from au_ttt.data.au_regions import au_centres, inter_ocular
from au_ttt.data.landmark_files import read_bp4d_landmarks, read_disfa_landmarks
from au_ttt.data.protocol import BP4D_AUS, BP4D_PARTS, DISFA_PARTS
from au_ttt.data.synth import BP4D_COLUMNS, generate_synthau
from au_ttt.data.synth.face import ALL_AUS, Pose, apply_aus, neutral_landmarks, sample_identity
from au_ttt.data.synth.render import DOMAINS, background, draw_face
from au_ttt.data.synth.sequences import ON_THRESHOLD, TARGET_RATES, au_trajectories
from au_ttt.data.synth.writers import DISFA_LABEL_AUS
from au_ttt.errors import InputError

TINY = {"subjects_per_part": 1, "bp4d_tasks": 2, "bp4d_frames": 7, "disfa_frames": 9, "unknown_standard": 1,
        "progress": False}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "a"
    return out, generate_synthau(out, seed=0, **TINY)


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    again = generate_synthau(tmp_path / "b", seed=0, **TINY)
    other = generate_synthau(tmp_path / "c", seed=1, **TINY)
    a, b, c = _hashes(out), _hashes(Path(again["out_dir"])), _hashes(Path(other["out_dir"]))
    assert len(a) > 50 and a == b                     # every file, including AVIs, JPEGs and MAT files
    assert len(c) == len(a)                            # same layout; BP4D frame numbers are seed-dependent
    changed = [p for p in a if p in c and a[p] != c[p]]
    assert any(p.endswith(".avi") for p in changed) and any(p.endswith(".txt") for p in changed)
    assert sorted(p for p in a if p.endswith(".jpg")) != sorted(p for p in c if p.endswith(".jpg"))
    assert not list(tmp_path.glob(".*tmp*"))          # no temp dir left behind


def test_bp4d_format(tiny):
    out, manifest = tiny
    root = out / "BP4D"
    subjects = [BP4D_PARTS[p][0] for p in (1, 2, 3)]   # first published subject of each part
    assert manifest["bp4d"]["subjects"] == subjects
    csvs = sorted((root / "AUCoding" / "AU_OCC").glob("*.csv"))
    assert [c.name for c in csvs] == sorted(f"{s}_T{t}.csv" for s in subjects for t in (1, 2))
    n9_std = 0
    for csv in csvs:
        header = csv.read_text().splitlines()[0].split(",")
        assert header == ["0", *map(str, BP4D_COLUMNS)]
        assert {str(a) for a in BP4D_AUS} <= set(header)
        df = pd.read_csv(csv, header=0, index_col=0)   # how ME-GraphAU reads it
        frames = df.index.to_numpy()
        assert frames[0] >= 100 and np.array_equal(frames, np.arange(frames[0], frames[0] + 7))
        assert set(np.unique(df.to_numpy())) <= {0, 1, 9}
        n9_std += int((df[[str(a) for a in BP4D_AUS]] == 9).to_numpy().sum())
        subject, task = csv.stem.split("_")
        for frame in frames:                            # not zero-padded: F001/T1/2440.jpg
            img = cv2.imread(str(root / subject / task / f"{frame}.jpg"))
            assert img is not None and img.shape == (320, 240, 3)   # portrait, like 1040×1392
    assert n9_std == manifest["bp4d"]["unknown_9_evaluated_columns"] > 0
    assert manifest["bp4d"]["unknown_9_extra_columns"] > 0


def test_disfa_format(tiny):
    out, manifest = tiny
    root = out / "DISFA"
    assert manifest["disfa"]["subjects"] == [DISFA_PARTS[p][0] for p in (1, 2, 3)]
    for sn in manifest["disfa"]["subjects"]:
        files = sorted((root / "ActionUnit_Labels" / sn).iterdir())
        assert sorted(f.name for f in files) == sorted(f"{sn}_au{au}.txt" for au in DISFA_LABEL_AUS)
        lengths = set()
        for f in files:
            rows = [line.split(",") for line in f.read_text().splitlines()]
            assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))   # 1-based like the real files
            assert all(0 <= int(r[1]) <= 5 for r in rows)
            lengths.add(len(rows))
        cap = cv2.VideoCapture(str(root / "Videos_LeftCamera" / f"LeftVideo{sn}_comp.avi"))
        decoded = []
        while (ok_frame := cap.read())[0]:
            decoded.append(ok_frame[1])
        assert lengths == {len(decoded)} == {9}         # line t ↔ decoded frame t
        assert decoded[0].shape == (192, 256, 3)
        assert sorted(read_disfa_landmarks(root, sn)) == list(range(9))


def test_landmarks_inside_images(tiny):
    out, manifest = tiny
    for sn in manifest["disfa"]["subjects"]:
        pts = np.stack(list(read_disfa_landmarks(out / "DISFA", sn).values()))
        pts = pts[np.isfinite(pts[..., 0])]
        assert (pts >= 0).all() and (pts[:, 0] < 256).all() and (pts[:, 1] < 192).all()
    pts = np.stack(list(read_bp4d_landmarks(out / "BP4D", "F001", "T1").values()))
    pts = pts[np.isfinite(pts[..., 0])]
    assert (pts >= 0).all() and (pts[:, 0] < 240).all() and (pts[:, 1] < 320).all()


def test_au_motion_follows_the_muscle():
    idt = sample_identity(np.random.default_rng(0), "bp4d")
    p0 = neutral_landmarks(idt)
    smile, frown = apply_aus(p0, {12: 5}), apply_aus(p0, {15: 5})
    assert smile[48, 1] < p0[48, 1] and smile[54, 1] < p0[54, 1]       # AU12: corners up (y is down) …
    assert smile[48, 0] < p0[48, 0] and smile[54, 0] > p0[54, 0]       # … and out
    assert frown[48, 1] > p0[48, 1] and frown[54, 1] > p0[54, 1]       # AU15: corners down
    inner, outer = apply_aus(p0, {1: 5}) - p0, apply_aus(p0, {2: 5}) - p0
    assert inner[21, 1] < inner[17, 1] <= 0 and outer[17, 1] < outer[21, 1] <= 0
    assert (apply_aus(p0, {4: 5})[17:27, 1] > p0[17:27, 1]).all()       # AU4: brows down
    jaw = apply_aus(p0, {26: 5})
    assert jaw[8, 1] > p0[8, 1] and jaw[57, 1] > p0[57, 1]            # AU26: chin and lower lip drop
    assert np.allclose(apply_aus(p0, {}), p0)


@pytest.mark.parametrize("au", [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24, 25])
def test_au_appearance_is_local_to_its_centres(au):
    """Most of the pixel change an AU causes lies within 1 IOD of its FG-Net centres (a few % of the image)."""
    style = DOMAINS["bp4d"]
    rng = np.random.default_rng(5)
    idt = sample_identity(rng, "bp4d")
    bg = background(rng, idt, style)
    pose = Pose(scale=50.0, roll=0.05, yaw=0.1, pitch=0.0, cx=120.0, cy=144.0)
    neutral = neutral_landmarks(idt)

    def render(level: dict[int, float]):
        g = {a: level.get(a, 0.0) / 5 for a in ALL_AUS}
        return draw_face(bg, idt, apply_aus(neutral, level), g, pose, np.random.default_rng(9))

    base, _ = render({})
    img, pts = render({au: 5.0})
    diff = np.abs(img - base).sum(-1)
    centres, iod = au_centres(pts, [au])[0], inter_ocular(pts)
    yy, xx = np.mgrid[:diff.shape[0], :diff.shape[1]]
    near = np.min([np.hypot(xx - cx, yy - cy) for cx, cy in centres], 0) < iod
    assert diff.sum() > 0
    share, area = diff[near].sum() / diff.sum(), near.mean()
    assert share > 0.45 and share > 8 * area


@pytest.mark.parametrize("dataset", ["bp4d", "disfa"])
def test_occurrence_rates_and_cooccurrence(dataset):
    rng = np.random.default_rng(0)
    inten = np.concatenate([au_trajectories(rng, 60, dataset) for _ in range(150)])   # 9,000 frames
    occ = inten >= ON_THRESHOLD[dataset]
    off = inten[~occ]
    assert off.max() <= ON_THRESHOLD[dataset] - 0.5 and inten.max() <= 5.0 and inten.min() >= 0.0
    for j, au in enumerate(ALL_AUS):
        assert abs(occ[:, j].mean() - TARGET_RATES[dataset][au]) < 0.05, f"AU{au}"
    col = {au: occ[:, ALL_AUS.index(au)] for au in (1, 2, 6, 12)}
    assert col[12][col[6]].mean() > col[12].mean() + 0.25                # AU6 comes with AU12
    assert col[2][col[1]].mean() > col[2].mean() + 0.3                   # AU1 comes with AU2
    if dataset == "disfa":                                               # integer labels keep occurrence exact
        assert ((np.round(inten) >= 2) == occ).all()


def test_bad_input_and_existing_output(tmp_path):
    with pytest.raises(InputError, match=r"--subjects-per-part 15: allowed: an integer in 1\.\.14"):
        generate_synthau(tmp_path / "x", subjects_per_part=15, progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="--overwrite"):
        generate_synthau(tmp_path / "exists", progress=False)


@pytest.mark.parametrize(("flag", "value", "allowed", "isolated"), [
    ("--seed", "-1", "an integer in 0..4,294,967,295", False),                # numpy refused it with a traceback
    ("--disfa-frames", "100000000000", "an integer in 2..4,845 (a DISFA video has 4,845 frames)", True),
    ("--bp4d-frames", "100000", "an integer in 2..4,845", True),
    ("--subjects-per-part", "0", "an integer in 1..14", False),
    ("--bp4d-tasks", "9", "an integer in 1..8 (BP4D has tasks T1–T8)", False),
    ("--unknown-standard", "-1", "an integer in 0..58,140", False),
])
def test_absurd_sizes_are_one_line_before_any_work(tmp_path, capsys, flag, value, allowed, isolated):
    """The big sizes ran for minutes unchecked (a 1.5 TiB label array): they run in a process of their own under
    a timeout and an address-space cap, so a regression fails instead of eating the machine."""
    from dag import BIN, address_space_limit
    from limits import CAP

    from au_ttt.cli import main

    args = ["synth", "--out", str(tmp_path / "s"), "--subjects-per-part", "1", "--bp4d-tasks", "1",
            "--bp4d-frames", "2", "--disfa-frames", "2", "--no-progress", flag, value]
    if isolated:
        result = subprocess.run([str(BIN / "au-ttt"), *args], capture_output=True, text=True, timeout=300,
                                preexec_fn=address_space_limit(CAP), env={**os.environ, "OMP_NUM_THREADS": "1"})
        status, err = result.returncode, result.stderr
    else:
        status, err = main(args), capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"au-ttt synth: error: {flag} {value}: allowed: {allowed}")
    assert list(tmp_path.iterdir()) == []


def test_the_limits_allow_the_published_sizes(tmp_path):
    """The largest SynthAU is the published protocol's size: every subject, T1–T8, a full DISFA video."""
    from au_ttt.data.protocol import BP4D_PARTS, DISFA_FRAMES_PER_VIDEO
    from au_ttt.data.synth_limits import synthau_size_problem

    assert synthau_size_problem("subjects_per_part", max(len(p) for p in BP4D_PARTS.values())) is None
    assert synthau_size_problem("bp4d_tasks", 8) is None
    assert synthau_size_problem("disfa_frames", DISFA_FRAMES_PER_VIDEO) is None
    assert synthau_size_problem("seed", True) is not None  # a YAML `yes` is not a seed


def test_cli_defaults_match_library():
    from au_ttt.commands.synth import DEFAULTS

    params = inspect.signature(generate_synthau).parameters
    assert {k: params[k].default for k in DEFAULTS} == DEFAULTS


def test_project_readers_index_synthau(tiny, tmp_path):
    from au_ttt.data.bp4d import read_bp4d
    from au_ttt.data.disfa import read_disfa
    from au_ttt.data.video import extract_disfa_frames

    out, manifest = tiny
    bp4d, report = read_bp4d(out / "BP4D", progress=False)
    assert len(bp4d) == manifest["bp4d"]["frames"] and not report.to_dict()["excluded_frames"]
    extract_disfa_frames(out / "DISFA", tmp_path / "frames", progress=False)
    disfa, report = read_disfa(out / "DISFA", tmp_path / "frames", progress=False)
    assert len(disfa) == manifest["disfa"]["frames"] and not report.to_dict()["excluded_frames"]
    rates = json.loads((out / "synthau.json").read_text())["disfa"]["occurrence_rate"]
    assert disfa["AU12"].mean() == pytest.approx(rates["AU12"], abs=1e-3)


def test_baseline_beats_all_positive(tmp_path):
    from au_ttt.data.baseline import load_bp4d, within_dataset

    generate_synthau(tmp_path / "s", seed=2, subjects_per_part=3, bp4d_tasks=1, bp4d_frames=30, disfa_frames=2,
                     progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                   # sklearn convergence chatter on tiny folds
        result = within_dataset(load_bp4d(tmp_path / "s" / "BP4D", progress=False))
    assert result["frames"] == 270 and result["skipped"] == 0
    assert result["mean_all_positive"] + 8 < result["mean_model"] < 95
