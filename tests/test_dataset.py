"""AUFrameDataset: item shapes, dtypes, label-mask semantics, exclusions, stale inputs, loader benchmark."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from replicas import disfa_crop_store

from au_ttt.data.dataset import AUFrameDataset, benchmark_loader, split_rows
from au_ttt.data.heatmaps import HeatmapConfig
from au_ttt.data.protocol import DISFA_AUS
from au_ttt.errors import InputError

AU_COLS = [f"AU{a}" for a in DISFA_AUS]  # 1, 2, 4, 6, 9, 12, 25, 26


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """4 DISFA-like frames (part 1, 1, 2, 2); frame 3 has no landmarks. Returns (index, crops, cache)."""
    labels = np.array([[1, 0, -1, 1, 0, 0, 1, 0],
                       [0, 0, 0, 0, 0, 0, 0, 0],
                       [1, 1, 1, 1, 1, 1, 1, 1],
                       [1, 1, 1, 1, 1, 1, 1, 1]], np.int8)
    return disfa_crop_store(tmp_path_factory.mktemp("ds"), labels, [1, 1, 2, 2], valid=[True, True, True, False])


def test_item_shapes_dtypes_and_label_mask(store) -> None:
    index, crops, cache = store
    ds = AUFrameDataset(index, crops, cache, train=False)
    assert len(ds) == 3 and ds.excluded == 1                      # the landmark-less frame is counted out
    item = ds[0]
    assert item["image"].shape == (3, 224, 224) and item["image"].dtype == torch.float32
    assert item["labels"].dtype == torch.float32 and item["label_mask"].dtype == torch.bool
    assert item["roi_masks"].shape == (8, 14, 14) and item["heatmap"].shape == (8, 14, 14)
    assert item["row"] == 0
    assert item["labels"].tolist() == [1, 0, 0, 1, 0, 0, 1, 0]     # unknown (−1) → 0 …
    assert item["label_mask"].tolist() == [True, True, False] + [True] * 5   # … and masked
    roi, hm = item["roi_masks"], item["heatmap"]
    assert roi.min() >= 0 and roi.max() <= 1 and (roi.amax((1, 2)) > 0.5).all()
    assert torch.equal(hm[0], roi[0]) and torch.equal(hm[1], -roi[1])    # active: +map, inactive: −map
    assert torch.count_nonzero(hm[2]) == 0                          # unknown label: zero target
    # the normalised image is the ImageNet-normalised centre crop of the stored crop
    crop = cv2.imread(str(crops / "images" / "SN001" / "0.jpg"))[16:240, 16:240, ::-1] / 255.0
    expected = (crop[..., 0] - 0.485) / 0.229
    np.testing.assert_allclose(item["image"][0].numpy(), expected, atol=1e-5)


def test_train_mode_is_random_and_splits_select_rows(store) -> None:
    index, crops, cache = store
    assert split_rows(index, test_part=2, split="train").tolist() == [0, 1]   # part 1 trains for part 2
    test = AUFrameDataset(index, crops, cache, rows=split_rows(index, 2, "test"), train=False)
    assert len(test) == 1 and test.excluded == 1 and test[0]["row"] == 2
    train = AUFrameDataset(index, crops, cache, rows=np.array([0]), train=True)
    torch.manual_seed(0)
    a = [train[0] for _ in range(6)]
    assert not all(torch.equal(a[0]["image"], x["image"]) for x in a[1:])
    assert not all(torch.equal(a[0]["roi_masks"], x["roi_masks"]) for x in a[1:])
    batch = next(iter(torch.utils.data.DataLoader(test, batch_size=2)))
    assert batch["image"].shape == (1, 3, 224, 224) and batch["row"].tolist() == [2]


def test_random_crop_off_keeps_the_centre_and_still_mirrors(store) -> None:
    index, crops, cache = store
    centre = AUFrameDataset(index, crops, cache, rows=np.array([0]), train=False)[0]
    fixed = AUFrameDataset(index, crops, cache, rows=np.array([0]), train=True, jitter=0.0, random_crop=False)
    torch.manual_seed(0)
    items = [fixed[0] for _ in range(12)]
    mirrored = [torch.equal(x["image"], centre["image"].flip(-1)) for x in items]
    plain = [torch.equal(x["image"], centre["image"]) for x in items]
    assert all(m != p for m, p in zip(mirrored, plain, strict=True))   # every draw: the centre crop, maybe mirrored
    assert any(mirrored) and any(plain)
    for x, m in zip(items, mirrored, strict=True):
        expected = centre["roi_masks"].flip(-1) if m else centre["roi_masks"]
        torch.testing.assert_close(x["roi_masks"], expected, atol=1e-6, rtol=0)   # mirror = float rounding only


def test_stale_inputs_are_refused(store) -> None:
    index, crops, cache = store
    with pytest.raises(InputError, match="stale"):
        AUFrameDataset(index, crops, cache, cfg=HeatmapConfig(sigma_frac=0.2))
    with pytest.raises(InputError, match="another frame index"):
        AUFrameDataset(index.iloc[:3], crops, cache)
    bad = index.copy()
    bad.loc[0, "AU1"] = 9
    with pytest.raises(InputError, match="labels must be"):
        AUFrameDataset(bad, crops, cache)


def test_benchmark_loader_counts_images(store) -> None:
    index, crops, cache = store
    ds = AUFrameDataset(index, crops, cache, train=True)
    r = benchmark_loader(ds, batch_size=1, workers=0, batches=2)
    assert r["images"] == 2 and r["images_per_s"] > 0


def test_colour_jitter_matches_torchvision_functional_ops() -> None:
    from torchvision.transforms.v2 import functional as F

    from au_ttt.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PhotometricTransform

    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    gen = torch.Generator().manual_seed(5)
    ours = PhotometricTransform(train=True)(img, generator=gen)
    gen = torch.Generator().manual_seed(5)                  # replay the same draws through torchvision
    factors = (0.6 + 0.8 * torch.rand(3, generator=gen)).tolist()
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    ops = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)
    for k in torch.randperm(3, generator=gen).tolist():
        x = ops[k](x, factors[k])
    ref = F.normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    assert not np.allclose(factors, 1.0, atol=0.02)         # the draw really jitters
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_cli_pipeline_on_a_tiny_synthau(tmp_path, capsys) -> None:
    """landmarks (dlib, provided, NME) → crops → heatmaps → loader-bench through the `au-ttt` CLI."""
    import json

    from au_ttt.cli import main
    from au_ttt.data.synth.generate import generate_synthau

    generate_synthau(tmp_path / "synth", seed=0, subjects_per_part=1, bp4d_tasks=1, bp4d_frames=4,
                           disfa_frames=2, progress=False)
    raw, idx, out = tmp_path / "synth" / "BP4D", tmp_path / "index.parquet", tmp_path / "out"
    assert main(["data", "index", "--dataset", "bp4d", "--root", str(raw), "--out", str(idx),
                 "--no-progress"]) == 0
    common = ["--index", str(idx), "--no-progress"]
    assert main(["landmarks", *common, "--backend", "provided", "--dataset-root", str(raw),
                 "--out", str(out / "gt.npz")]) == 0
    assert main(["landmarks", *common, "--backend", "dlib", "--out", str(out / "dlib.npz"),
                 "--compare-to", str(out / "gt.npz")]) == 0
    report = json.loads((out / "dlib.report.json").read_text())
    assert report["frames"] == 12 and report["comparison"]["frames_with_reference"] == 12
    assert report["comparison"]["nme_mean"] < 0.15                # dlib lands on the rendered faces
    assert main(["crops", *common, "--landmarks", str(out / "dlib.npz"), "--out", str(out / "crops")]) == 0
    assert main(["heatmaps", *common, "--crops", str(out / "crops"), "--out", str(out / "hm")]) == 0
    capsys.readouterr()
    assert main(["loader-bench", *common, "--crops", str(out / "crops"), "--heatmaps", str(out / "hm"),
                 "--workers", "0", "--batch-size", "2", "--batches", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["images"] == 2
    # new landmarks → new aligned crops → the heatmap cache is stale: a one-line error, exit status 2
    assert main(["crops", *common, "--landmarks", str(out / "gt.npz"), "--out", str(out / "crops")]) == 0
    assert main(["loader-bench", *common, "--crops", str(out / "crops"), "--heatmaps", str(out / "hm"),
                 "--workers", "0", "--batches", "1"]) == 2
    assert "stale heatmap cache" in capsys.readouterr().err


def test_cross_domain_masks_use_the_other_datasets_aus(store) -> None:
    from au_ttt.data.protocol import BP4D_AUS

    index, crops, cache = store
    own = AUFrameDataset(index, crops, cache)[0]
    cross = AUFrameDataset(index, crops, cache, mask_aus=BP4D_AUS)[0]
    assert cross["roi_masks"].shape == (12, 14, 14) and cross["heatmap"].shape == (8, 14, 14)
    assert torch.equal(cross["roi_masks"][0], own["roi_masks"][0])        # AU1 is first in both sets
    assert torch.equal(cross["roi_masks"][3], own["roi_masks"][3])        # AU6 is fourth in both
    assert torch.equal(cross["heatmap"], own["heatmap"])                  # targets stay in label space
