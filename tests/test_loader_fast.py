"""The fast loader path: OpenCV crop decoding (same pixels, same strictness) and the photometric float work
moved to the device (uint8 batches + jitter parameters give what the workers computed before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from replicas import damage_image, disfa_crop_store

from au_ttt.data.align import crop_path
from au_ttt.data.batch_transforms import jitter_batch, model_images
from au_ttt.data.dataset import AUFrameDataset, benchmark_loader, set_device_photometric
from au_ttt.data.images import ImageError, read_crop, read_image
from au_ttt.data.protocol import DISFA_AUS
from au_ttt.data.transforms import PhotometricTransform


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three textured DISFA-like frames with landmarks → crop store and centre cache."""
    return disfa_crop_store(tmp_path_factory.mktemp("fast"), np.ones((3, len(DISFA_AUS)), np.int8), [1, 1, 1],
                            ext="jpg", blur=2, seed=1, shift=(8.0, 4.0), step=3.0, sequence="left")


def test_read_crop_gives_read_image_pixels(store) -> None:
    index, crops, _ = store
    for rel in index["image"]:
        path = crop_path(crops, rel)
        np.testing.assert_array_equal(read_crop(path), read_image(path))


@pytest.mark.parametrize("how, reason", [("empty", "empty"), ("truncated", "truncated"), ("text", "not_an_image")])
def test_read_crop_refuses_damage_naming_the_file(store, tmp_path, how, reason) -> None:
    index, crops, _ = store
    path = tmp_path / "crop.jpg"
    path.write_bytes(crop_path(crops, index["image"][0]).read_bytes())
    damage_image(path, how)
    with pytest.raises(ImageError, match=str(path)) as err:
        read_crop(path)
    assert err.value.reason == reason
    with pytest.raises(ImageError, match="not found"):
        read_crop(tmp_path / "absent.jpg")


def test_device_photometric_test_items_normalise_to_the_same_floats(store) -> None:
    index, crops, cache = store
    cpu = AUFrameDataset(index, crops, cache, train=False)
    dev = AUFrameDataset(index, crops, cache, train=False)
    dev.device_photometric = True
    batch_cpu = next(iter(torch.utils.data.DataLoader(cpu, batch_size=3)))
    batch_dev = next(iter(torch.utils.data.DataLoader(dev, batch_size=3)))
    assert batch_dev["image"].dtype == torch.uint8 and "jitter" not in batch_dev
    assert torch.equal(model_images(batch_dev, "cpu"), batch_cpu["image"])        # bit for bit
    for key in ("roi_masks", "heatmap", "labels", "row"):
        assert torch.equal(batch_dev[key], batch_cpu[key])


def test_device_photometric_train_items_replay_the_workers_random_draws(store) -> None:
    index, crops, cache = store
    cpu = AUFrameDataset(index, crops, cache, train=True)
    dev = AUFrameDataset(index, crops, cache, train=True)
    dev.device_photometric = True
    for seed in range(4):
        torch.manual_seed(seed)
        a = cpu[1]
        torch.manual_seed(seed)
        b = dev[1]
        assert torch.equal(a["roi_masks"], b["roi_masks"]) and torch.equal(a["heatmap"], b["heatmap"])
        batch = {k: v[None] for k, v in b.items() if torch.is_tensor(v)}
        torch.testing.assert_close(model_images(batch, "cpu")[0], a["image"], atol=2e-5, rtol=0)


def test_batch_jitter_applies_each_samples_own_order() -> None:
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    factors = torch.tensor([[0.7, 1.3, 0.8], [1.2, 0.9, 1.35], [0.65, 0.75, 1.1], [1.0, 1.25, 0.6]])
    order = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    out = jitter_batch(x, factors, order)
    transform = PhotometricTransform(train=True, jitter=0.4)
    for b in range(4):
        ref = torch.from_numpy(imgs[b].astype(np.float32) / 255.0)
        for op in order[b].tolist():                   # PhotometricTransform._jitter's operations, in this order
            arr = transform._jitter_op(ref.numpy(), op, np.float32(factors[b, op]))
            ref = torch.from_numpy(arr)
        torch.testing.assert_close(out[b], ref.permute(2, 0, 1), atol=2e-6, rtol=0)


def test_the_switch_follows_the_device_and_ignores_other_datasets(store) -> None:
    index, crops, cache = store
    ds = AUFrameDataset(index, crops, cache, train=False)
    set_device_photometric(ds, "cuda")
    assert ds.device_photometric
    set_device_photometric(ds, torch.device("cpu"))
    assert not ds.device_photometric
    set_device_photometric(torch.utils.data.TensorDataset(torch.zeros(1)), "cuda")   # no switch: nothing


def test_loader_benchmark_reports_work_per_cpu_second_and_memory(store) -> None:
    index, crops, cache = store
    ds = AUFrameDataset(index, crops, cache, train=True)
    ds.device_photometric = True
    r = benchmark_loader(ds, batch_size=1, workers=1, batches=3)
    assert r["images"] == 3 and r["image_dtype"] == "uint8"
    assert r["cpu_seconds"] > 0 and r["images_per_cpu_s"] == pytest.approx(3 / r["cpu_seconds"], rel=0.01)
    assert r["memory_mb"]["peak_pss"] > 0 and r["memory_mb"]["peak_rss"] >= r["memory_mb"]["peak_pss"]
