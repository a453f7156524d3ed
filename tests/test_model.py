"""The AU-TTT network: scan causality and re-alignment by perturbation, full-size passes, variants, loading."""

import pytest
import timm
import torch
from conftest import REPO

from au_ttt.model.au_ttt import AUTTT, load_pretrained, save_weights
from au_ttt.model.baselines import build_model
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
    # the six Table III rows, our attention control, and the two same-protocol timm baselines
    assert list(settings.variants) == ["baseline", "original_ttt", "msp", "forward_ttt", "backward_ttt",
                                       "au_roi_ttt", "attention_control", "timm_vit", "timm_resnet"]
    for name in settings.variants:
        cfg = settings.model_for(name)
        if config_file.endswith("paper.yaml"):  # keep the paper's switches, shrink depth for CPU time
            cfg = cfg.with_overrides(depth=1)
        model = build_model(cfg, 12)
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


def test_backbone_file_must_fit_the_model(tmp_path, tiny_cfg):
    """Strict loading: another width, another depth or another model's state dict is refused naming keys."""
    from au_ttt.errors import InputError

    path = save_weights(AUTTT(tiny_cfg, 5), tmp_path / "w.safetensors")
    with pytest.raises(InputError, match=r"shape differs: blocks\.0\.mixer\.proj\.bias \(32,\) vs model \(64,\)"):
        load_pretrained(AUTTT(tiny_cfg.with_overrides(embed_dim=64), 5), path)
    with pytest.raises(InputError, match=r"missing backbone keys: blocks\.2\."):
        load_pretrained(AUTTT(tiny_cfg.with_overrides(depth=3), 5), path)
    with pytest.raises(InputError, match=r"unexpected keys: blocks\.1\."):
        load_pretrained(AUTTT(tiny_cfg.with_overrides(depth=1), 5), path)
    from safetensors.torch import save_file

    other = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}, str(other))
    with pytest.raises(InputError, match=r"resnet\.safetensors: does not fit .*missing backbone keys: blocks\.0\..*"
                                         r"unexpected keys: bn1\."):
        load_pretrained(AUTTT(tiny_cfg, 5), other)


def test_pretrained_backbone_loads_with_fresh_task_parts(tmp_path, tiny_cfg):
    """`au-ttt pretrain`'s backbone (no RoI branch, another class count) → only task-specific keys are new."""
    backbone = AUTTT(tiny_cfg.with_overrides(au_roi=False), 10)
    path = save_weights(backbone, tmp_path / "backbone.safetensors")
    model = AUTTT(tiny_cfg, 12)
    report = load_pretrained(model, path)
    assert report.missing and report.unexpected == []
    assert all(k.startswith(("head.", "heatmap_head.", "heatmap_gain")) or ".roi." in k for k in report.missing)
    assert {"head.weight", "heatmap_gain", "blocks.0.roi.ttt.W0"} <= set(report.missing)
    assert torch.equal(model.blocks[1].mixer.ttt.qkv.weight, backbone.blocks[1].mixer.ttt.qkv.weight)
    assert torch.equal(model.pos_embed, backbone.pos_embed)


def test_files_written_before_qkv_fusion_still_load(tmp_path, tiny_cfg):
    from safetensors.torch import save_file

    model = AUTTT(tiny_cfg, 4)
    legacy = {}
    for key, value in model.state_dict().items():
        if key.endswith(".qkv.weight"):
            for name, part in zip("qkv", value.chunk(3), strict=True):
                legacy[key.removesuffix("qkv.weight") + f"{name}_proj.weight"] = part.contiguous()
        else:
            legacy[key] = value.contiguous()
    save_file(legacy, str(tmp_path / "old.safetensors"))
    clone = AUTTT(tiny_cfg, 4)
    assert load_pretrained(clone, tmp_path / "old.safetensors").missing == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), clone.state_dict().values(),
                                                 strict=True))


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 50, b"model:\n  depth: 2\n"])
def test_corrupt_or_foreign_weights_file_is_a_clear_error(tmp_path, tiny_cfg, content):
    from au_ttt.errors import InputError

    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"w\.safetensors: not a readable safetensors file.*au-ttt pretrain"):
        load_pretrained(AUTTT(tiny_cfg, 2), path)
    good = save_weights(AUTTT(tiny_cfg, 2), tmp_path / "good.safetensors")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.safetensors: not a readable safetensors file"):
        load_pretrained(AUTTT(tiny_cfg, 2), truncated)


def test_timm_vit_s16_initialises_every_shared_tensor_by_value(tmp_path):
    """A random-weight timm ViT-S/16 (no download) → AU-TTT ViT-S/16: each transferred tensor equals its source,
    everything else keeps its initialisation; a timm file is refused by the strict loader; a ResNet by both."""
    from safetensors.torch import save_file

    from au_ttt.errors import InputError
    from au_ttt.model.transfer import load_timm_vit_s16

    vit = timm.create_model("vit_small_patch16_224", pretrained=False)
    src = vit.state_dict()
    path = tmp_path / "vit_s16.safetensors"
    save_file({k: v.contiguous() for k, v in src.items()}, str(path))
    model = AUTTT(ModelConfig(), 12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_timm_vit_s16(model, path)
    own = model.state_dict()
    assert len(report.transferred) == 6 + 12 * 10   # stem/norm 6; per block 8 shared + qkv + o_proj
    for dst, key in report.transferred.items():
        if dst == "pos_embed":   # CLS row moved last, grid unchanged at 224 px
            assert torch.equal(own[dst][:, -1], src[key][:, 0]) and torch.equal(own[dst][:, :-1], src[key][:, 1:])
        else:
            assert torch.equal(own[dst], src[key]), (dst, key)
    assert report.transferred["blocks.3.mixer.ttt.qkv.weight"] == "blocks.3.attn.qkv.weight"
    assert report.transferred["blocks.3.mixer.ttt.o_proj.weight"] == "blocks.3.attn.proj.weight"
    assert set(report.fresh) == set(own) - set(report.transferred)
    assert all(torch.equal(own[k], before[k]) for k in report.fresh)
    assert {"blocks.0.mixer.ttt.W0", "blocks.0.roi.ttt.qkv.weight", "blocks.0.mixer.proj.weight",
            "head.weight"} <= set(report.fresh)
    assert {"blocks.0.attn.qkv.bias", "head.weight"} <= set(report.unused)
    with pytest.raises(InputError, match=r"timm ViT state dict.*load_timm_vit_s16"):
        load_pretrained(AUTTT(ModelConfig(depth=1), 12), path)
    resnet = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), resnet)
    with pytest.raises(InputError, match=r"resnet18\.pth: not a timm ViT-S/16 state dict: missing blocks\.0\.attn"):
        load_timm_vit_s16(model, resnet)
    # training's one entry point (`au-ttt train --pretrained FILE`, pretrain.source: timm_checkpoint) routes the
    # timm file to this transfer and refuses the ResNet the same way
    from au_ttt.train.weights import initialise_from_file

    routed = AUTTT(ModelConfig(), 12)
    assert initialise_from_file(routed, path).startswith("timm weights")
    assert torch.equal(routed.state_dict()["blocks.5.mixer.ttt.qkv.weight"], src["blocks.5.attn.qkv.weight"])
    with pytest.raises(InputError, match=r"resnet18\.pth: not a timm ViT-S/16 state dict"):
        initialise_from_file(routed, resnet)


def test_attention_control_uses_timm_attention_in_the_same_backbone(tiny_cfg):
    from timm.layers import Attention

    cfg = tiny_cfg.with_overrides(mixer="attention", bidirectional=False)
    model = AUTTT(cfg, 3)
    assert isinstance(model.blocks[0].mixer, Attention) and model.blocks[0].msp is not None
    assert model.blocks[0].roi is not None
    out = model(torch.randn(2, 3, 64, 64), torch.rand(2, 3, 4, 4))
    out.logits.sum().backward()
    assert model.blocks[0].mixer.qkv.weight.grad is not None
    with pytest.raises(ValueError, match="bidirectional=true needs mixer 'ttt'"):
        tiny_cfg.with_overrides(mixer="attention", bidirectional=True)


@pytest.mark.parametrize("text,key", [("depth: -1", "depth"), ("embed_dim: 0", "embed_dim"),
                                      ("drop_path_rate: 1.5", "drop_path_rate"), ("ttt_base_lr: 0", "ttt_base_lr"),
                                      ("mlp_ratio: -2", "mlp_ratio"), ("num_heads: 0", "num_heads")])
def test_model_sizes_out_of_range_are_one_config_error(tmp_path, text, key):
    from au_ttt.config import ConfigError

    path = tmp_path / "cfg.yaml"
    path.write_text(f"model:\n  {text}\n")
    with pytest.raises(ConfigError, match=rf"cfg\.yaml: section 'model': {key} must be"):
        load_settings(path)
