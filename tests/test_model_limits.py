"""ModelConfig sizes have upper bounds, so a typo is one config error instead of an allocation the OOM killer ends;
an integer written as a float (``1e9``) is a clear config error too."""

from __future__ import annotations

import math
import re

import pytest
import yaml

from au_ttt.cli import main
from au_ttt.model.config import LIMITS, MAX_PARAMS, ModelConfig

_RESNET = {"arch": "resnet", "mixer": "linear", "bidirectional": False, "msp": False, "au_roi": False}


@pytest.mark.parametrize(("changes", "message"), [
    ({"embed_dim": 1_000_000_000}, "embed_dim must be in [1, 8192], got 1000000000"),
    ({"depth": 193}, "depth must be in [1, 192], got 193"),
    ({"num_heads": 129}, "num_heads must be in [1, 128], got 129"),
    ({"img_size": 4112}, "img_size must be in [1, 4096], got 4112"),
    ({"in_chans": 65}, "in_chans must be in [1, 64], got 65"),
    ({"mlp_ratio": 1e30}, "mlp_ratio must be in (0, 16], got 1e+30"),
    ({"img_size": 4096, "patch_size": 8}, "gives 262144 patch tokens, more than 65536"),
    ({"heatmap_size": 4097}, "heatmap_size must be <= 4096"),
    ({"ttt_mini_batch": 65537}, "ttt_mini_batch must be <= 65536"),
    ({"msp_dilations": (1, 257)}, "msp_dilations: at most 16 values, each <= 256"),
    ({"msp_dilations": tuple(range(1, 18))}, "msp_dilations: at most 16 values"),
    ({"embed_dim": 8192, "num_heads": 8, "depth": 192}, "about 309 billion parameters, more than the 10 billion"),
    ({"depth": 12.0}, "depth must be a whole number, got 12.0"),
    ({"embed_dim": 1e9}, "embed_dim must be a whole number, got 1000000000.0"),
    ({**_RESNET, "widths": (16, 32, 64, 8193)}, "widths must be four whole stage widths in [1, 8192] or null"),
    ({**_RESNET, "widths": (16, 32, 64, 128.0)}, "widths must be four whole stage widths in [1, 8192] or null"),
])
def test_sizes_beyond_the_limits_are_refused(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelConfig(**changes)


def test_limits_admit_the_largest_published_vit_sizes():
    """ViT-G/14 (Zhai et al. 2022: width 1664, depth 48, 16 heads, MLP 8192) at 224 px, and each bound itself."""
    vit_g = ModelConfig(embed_dim=1664, depth=48, num_heads=16, mlp_ratio=8192 / 1664)
    assert 3e9 < vit_g.approx_params < MAX_PARAMS
    ModelConfig(embed_dim=LIMITS["embed_dim"], num_heads=LIMITS["num_heads"], depth=4)
    ModelConfig(depth=LIMITS["depth"], mlp_ratio=LIMITS["mlp_ratio"])
    ModelConfig(img_size=LIMITS["img_size"], patch_size=16, heatmap_size=LIMITS["heatmap_size"],
                ttt_mini_batch=LIMITS["ttt_mini_batch"], msp_dilations=tuple(range(241, 257)))


def test_parameter_estimate_errs_high():
    """The estimate behind MAX_PARAMS is at or above the real count (full model, largest mixer, attention)."""
    from au_ttt.model.au_ttt import state_shapes

    for cfg in (ModelConfig(), ModelConfig(bi_share="none"), ModelConfig(mixer="attention", bidirectional=False),
                ModelConfig(embed_dim=768, num_heads=96, mlp_ratio=1.0)):
        real = sum(math.prod(s) for s in state_shapes(cfg, 12).values())
        assert real <= cfg.approx_params, cfg


@pytest.mark.parametrize(("line", "message"), [
    ("embed_dim: 1e9", "key 'model.embed_dim' has value '1e9'; allowed: an integer written with digits only "
                       "(e.g. 384): a decimal point or an exponent (1e9) makes it a float"),
    ("embed_dim: 1.0e+9", "key 'model.embed_dim' has value 1000000000.0; allowed: an integer written with digits"),
    ("depth: 12.0", "key 'model.depth' has value 12.0; allowed: an integer written with digits"),
    ("embed_dim: 1000000000", "section 'model': embed_dim must be in [1, 8192], got 1000000000"),
    ("mlp_ratio: 1e30", "section 'model': mlp_ratio must be in (0, 16], got 1e+30"),
    ("depth: 100000", "section 'model': depth must be in [1, 192], got 100000"),
])
def test_train_refuses_the_config_in_one_line(tmp_path, capsys, line, message):
    config = tmp_path / "bad.yaml"
    config.write_text(f"model:\n  {line}\n")
    args = ["train", "--config", str(config), "--dataset", "bp4d", "--test-part", "1", "--index",
            str(tmp_path / "index.parquet"), "--crops", str(tmp_path / "crops"), "--heatmaps", str(tmp_path / "h"),
            "--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"au-ttt train: error: {config}: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_variant_is_bounded_too(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"variants": {"big": {"depth": 1_000_000_000}}}))
    assert main(["info", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: section 'variants.big': depth must be in [1, 192]" in err
