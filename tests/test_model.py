"""The AU-TTT network: scan causality and re-alignment by perturbation, full-size passes, variants, loading."""

import pytest
import timm
import torch
from conftest import REPO

from au_ttt.model.au_ttt import AUTTT, load_pretrained, save_weights
from au_ttt.model.config import ModelConfig
from au_ttt.model.layers import BiTTT, TTTLinear, reverse_patches_index
from au_ttt.settings import load_settings

ROWS, COLS, DIM = 4, 4, 16  # a 4×4 patch grid + CLS, mini-batch = one row


def _tokens(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, ROWS * COLS + 1, DIM, generator=g, dtype=torch.float64)


def _changed_rows(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    """Patch rows (0..ROWS-1) whose outputs differ, plus ROWS for the CLS token."""
    diff = (a - b).abs().amax(-1)[0]
    rows = [r for r in range(ROWS) if diff[r * COLS:(r + 1) * COLS].max() > 0]
    return rows + ([ROWS] if diff[-1] > 0 else [])


def _perturb(x, row=None, cls=False):
    y = x.clone()
    if row is not None:
        y[:, row * COLS:(row + 1) * COLS] += torch.randn(COLS, DIM, dtype=x.dtype)
    if cls:
        y[:, -1] += 1.0
    return y


def test_reverse_index_keeps_cls_last_and_is_an_involution():
    perm = reverse_patches_index(6)
    assert perm.tolist() == [4, 3, 2, 1, 0, 5]
    assert perm[perm].tolist() == list(range(6))


def test_forward_scan_is_causal_per_row():
    layer = TTTLinear(DIM, 2, mini_batch_size=COLS).double()
    x = _tokens()
    base = layer(x)
    for row in range(ROWS):
        changed = _changed_rows(base, layer(_perturb(x, row=row)))
        assert changed == list(range(row, ROWS + 1)), f"perturbing row {row} changed rows {changed}"
    assert _changed_rows(base, layer(_perturb(x, cls=True))) == [ROWS]  # CLS is last: nothing reads it


@pytest.mark.parametrize("share", ["proj", "none", "all"])
def test_backward_scan_is_reversed_realigned_and_keeps_cls_last(share):
    bi = BiTTT(DIM, 2, mini_batch_size=COLS, share=share).double()
    x = _tokens(1)
    fwd0, bwd0 = bi.directions(x)
    for row in range(ROWS):
        fwd1, bwd1 = bi.directions(_perturb(x, row=row))
        # forward direction sees rows 0..row before the perturbed one; backward sees rows ROWS-1..row
        assert _changed_rows(fwd0, fwd1) == list(range(row, ROWS + 1))
        assert _changed_rows(bwd0, bwd1) == [*range(0, row + 1), ROWS], f"share={share}, row {row}"
    fwd1, bwd1 = bi.directions(_perturb(x, cls=True))
    assert _changed_rows(fwd0, fwd1) == [ROWS] and _changed_rows(bwd0, bwd1) == [ROWS]


def test_bidirectional_share_modes_differ_in_parameters():
    counts = {s: sum(p.numel() for p in BiTTT(DIM, 2, COLS, share=s).parameters()) for s in ("all", "proj", "none")}
    assert counts["all"] < counts["proj"] < counts["none"]


@pytest.mark.slow
@pytest.mark.parametrize("num_aus", [12, 8])
def test_vit_s16_forward_backward_224(num_aus):
    model = AUTTT(ModelConfig(), num_aus)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"\nAU-TTT ViT-S/16 ({num_aus} AUs): {n_params:,} parameters ({n_params / 1e6:.2f} M)")
    x = torch.randn(2, 3, 224, 224)
    masks = torch.rand(2, num_aus, 14, 14)
    out = model(x, masks)
    assert out.logits.shape == (2, num_aus) and out.heatmaps.shape == (2, num_aus, 14, 14)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.heatmaps).all()
    (out.logits.sum() + out.heatmaps.pow(2).sum()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad}"


@pytest.mark.parametrize("config_file", ["config/config.yaml", "config/paper.yaml"])
def test_every_table3_variant_builds_and_trains(config_file):
    settings = load_settings(REPO / config_file)
    assert list(settings.variants) == ["baseline", "original_ttt", "msp", "forward_ttt", "backward_ttt",
                                       "au_roi_ttt"]
    for name in settings.variants:
        cfg = settings.model_for(name)
        if config_file.endswith("paper.yaml"):  # keep the paper's switches, shrink depth for CPU time
            cfg = cfg.with_overrides(depth=1)
        model = AUTTT(cfg, 12)
        g = cfg.grid_size
        out = model(torch.randn(1, 3, cfg.img_size, cfg.img_size), torch.rand(1, 12, *g))
        out.logits.sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), name


def test_variant_switches_change_the_architecture(tiny_cfg):
    full = AUTTT(tiny_cfg, 12)
    base = AUTTT(tiny_cfg.with_overrides(mixer="linear", bidirectional=False, msp=False, au_roi=False), 12)
    assert full.blocks[0].msp is not None and full.blocks[0].roi is not None
    assert isinstance(full.blocks[0].mixer, BiTTT)
    assert base.blocks[0].msp is None and base.blocks[0].roi is None
    assert not any(isinstance(m, TTTLinear) for m in base.modules())
    uni16 = AUTTT(tiny_cfg.with_overrides(ttt_mini_batch=16, bidirectional=False), 12)
    assert isinstance(uni16.blocks[0].mixer, TTTLinear) and uni16.blocks[0].mixer.mini_batch_size == 16
    assert full.blocks[0].mixer.ttt.mini_batch_size == 4  # "row" at a 4×4 grid


def test_roi_branch_needs_masks_and_uses_them(tiny_cfg):
    model = AUTTT(tiny_cfg, 3).eval()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="roi_masks"):
        model(x)
    m1 = torch.zeros(1, 3, 4, 4)
    m1[:, :, 0, 0] = 1.0
    m2 = torch.zeros(1, 3, 4, 4)
    m2[:, :, 3, 3] = 1.0
    assert not torch.allclose(model(x, m1).logits, model(x, m2).logits)


def test_grey_standardize_ignores_brightness_contrast_and_colour_cast():
    from au_ttt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from au_ttt.model.au_ttt import GreyStandardize

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)   # the loader's normalisation, which the model undoes
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(2, 3, 32, 32, generator=g) * 0.5 + 0.2                  # RGB in [0, 1]
    norm = GreyStandardize()
    out = norm((raw - mean) / std)
    assert out.shape == raw.shape and torch.equal(out[:, 0], out[:, 2])     # three equal channels
    torch.testing.assert_close(out.mean((1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std((1, 2, 3), correction=0), torch.ones(2), atol=1e-3, rtol=0)
    darker = 0.6 * raw + 0.1                                                # brightness + contrast change
    chroma = torch.tensor([0.114, 0.0, -0.299]).view(1, 3, 1, 1) * 0.2      # zero luma: 0.299·a + 0.114·c = 0
    cast = raw + chroma
    torch.testing.assert_close(norm((darker - mean) / std), out, atol=1e-3, rtol=0)
    torch.testing.assert_close(norm((cast - mean) / std), out, atol=1e-3, rtol=0)
    assert not torch.allclose(norm((raw.flip(-1) - mean) / std), out, atol=1e-2)  # content still matters


def test_input_norm_is_part_of_the_model(tiny_cfg):
    rgb, grey = AUTTT(tiny_cfg, 3), AUTTT(tiny_cfg.with_overrides(input_norm="grey_standardize"), 3)
    assert isinstance(rgb.input_norm, torch.nn.Identity)
    assert set(rgb.state_dict()) == set(grey.state_dict())                 # same weights load either way
    grey.load_state_dict(rgb.state_dict())
    x, masks = torch.randn(1, 3, 64, 64), torch.rand(1, 3, 4, 4)
    assert not torch.allclose(rgb(x, masks).logits, grey(x, masks).logits)
    with pytest.raises(ValueError, match="in_chans 3"):
        tiny_cfg.with_overrides(input_norm="grey_standardize", in_chans=1)


def test_bf16_autocast_keeps_ttt_state_in_fp32(tiny_cfg):
    model = AUTTT(tiny_cfg, 4).eval()
    x, masks = torch.randn(2, 3, 64, 64), torch.rand(2, 4, 4, 4)
    ref = model(x, masks).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, masks).logits
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.1


def test_load_timm_vit_small_state_dict(tmp_path):
    from safetensors.torch import save_file

    vit = timm.create_model("vit_small_patch16_224", num_classes=1000)
    path = tmp_path / "vit_s16.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    model = AUTTT(ModelConfig(depth=2), 12)  # depth 2: blocks 2..11 of the ViT are unexpected
    report = load_pretrained(model, path)
    assert torch.equal(model.patch_embed.proj.weight, vit.patch_embed.proj.weight)
    assert torch.equal(model.pos_embed[:, -1], vit.pos_embed[:, 0])     # CLS position moved to the end
    assert torch.equal(model.pos_embed[:, :-1], vit.pos_embed[:, 1:])
    assert torch.equal(model.blocks[1].mlp.fc2.weight, vit.blocks[1].mlp.fc2.weight)
    assert "blocks.0.attn.qkv.weight" in report.unexpected and "blocks.5.mlp.fc1.weight" in report.unexpected
    assert "blocks.0.mixer.ttt.W0" in report.missing and "head.weight" in report.missing  # 1000 ≠ 12 classes
    assert "cls_token" not in report.missing and "norm.weight" not in report.missing


def test_own_checkpoint_round_trip_and_resampling(tmp_path, tiny_cfg):
    model = AUTTT(tiny_cfg, 5)
    path = save_weights(model, tmp_path / "w.safetensors")
    clone = AUTTT(tiny_cfg, 5)
    report = load_pretrained(clone, path)
    assert report.missing == [] and report.unexpected == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), clone.state_dict().values(),
                                                 strict=True))
    bigger = AUTTT(tiny_cfg.with_overrides(img_size=96), 5)  # 6×6 grid: positions are resampled
    load_pretrained(bigger, path)
    assert torch.equal(bigger.pos_embed[:, -1], model.pos_embed[:, -1])
    assert bigger.pos_embed.shape[1] == 37


def test_missing_weights_file_is_a_clear_error(tmp_path, tiny_cfg):
    from au_ttt.errors import InputError

    with pytest.raises(InputError, match="not found"):
        load_pretrained(AUTTT(tiny_cfg, 2), tmp_path / "nope.safetensors")
