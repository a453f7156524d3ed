"""`au-ttt bench`: one FLOP counter for both models (CPU flash attention counted), the ratios, FLOP efficiency and
log-log slopes computed from hand-made results, the figure, and a tiny end-to-end run (no timing assertions)."""

import math

import pytest
import timm
import torch
from conftest import REPO
from torch.utils.flop_counter import FlopCounterMode

from au_ttt.bench import _build, plot_scaling, ratio_table, run_bench, summarise
from au_ttt.cli import main
from au_ttt.model.flops import count_fn_flops


def test_flop_counter_counts_cpu_flash_attention():
    vit = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        vit(x)
    with torch.no_grad():
        ours = count_fn_flops(lambda: vit(x))
    B, H, L, F = 1, 6, 197, 64
    attention = 12 * 2 * (2 * B * H * L * L * F)      # per block: QKᵀ and PV, 2 FLOPs per MAC
    assert ours == plain.get_total_flops() + attention
    assert round(ours / 1e9, 2) == 9.20                # ViT-S/16's published 4.6 GMACs


@pytest.mark.parametrize("groups", [1, 8])
def test_flop_counter_counts_grouped_convolution_backward_as_two_forwards(groups):
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=groups)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    forward = count_fn_flops(lambda: conv(x))
    assert forward == 2 * 2 * 8 * (8 // groups) * 9 * 36           # 2 FLOPs per MAC, every output position
    assert count_fn_flops(lambda: conv(x).sum().backward()) == 3 * forward   # + ∂input + ∂weight


def _result(model, size, mode, img_s, mem, gflops, batch=2):
    return {"model": model, "img_size": size, "tokens": (size // 16) ** 2 + 1, "batch": batch, "mode": mode,
            "img_per_s": img_s, "ms_per_batch": 1000 * batch / img_s, "peak_mem_mb": mem, "params_m": 1.0,
            "gflops_per_img": gflops, "step_gflops_per_img": 3 * gflops}


def _report():
    """AU-TTT: cost linear in tokens; ViT-S: quadratic; hand-picked so every ratio is known."""
    rows = []
    for size in (224, 448):
        t = (size // 16) ** 2 + 1
        for mode in ("forward", "train_step"):
            rows.append(_result("au_ttt_vit_s16", size, mode, 1000 / t, 0.5 * t, 0.06 * t))
            rows.append(_result("timm_vit_s16", size, mode, 1e5 / t ** 2, 1.0 * t, 0.05 * t))
    return {"env": {"device": "cpu", "device_type": "cpu", "threads": 2, "amp": "none"}, "results": rows}


def test_ratios_flop_efficiency_and_slopes_from_known_numbers(tmp_path):
    report = _report()
    summary = summarise(report)
    s224 = next(s for s in summary["per_size"] if s["img_size"] == 224 and s["mode"] == "train_step")
    speed = (1000 / 197) / (1e5 / 197 ** 2)
    assert s224["speed_ratio"] == pytest.approx(speed)
    assert s224["memory_ratio"] == pytest.approx(0.5) and s224["flop_ratio"] == pytest.approx(1.2)
    assert s224["flop_efficiency"] == pytest.approx(speed * 1.2)
    growth = summary["train_cost_growth"]
    assert growth["au_ttt_vit_s16"]["log_log_slope_time"] == pytest.approx(1.0)
    assert growth["timm_vit_s16"]["log_log_slope_time"] == pytest.approx(2.0)
    assert growth["au_ttt_vit_s16"]["time_per_img_ratio"] == pytest.approx(785 / 197)
    table = ratio_table(report)
    assert table.count("\n") == 1 + 4 and "| 224 | 2 | train_step |" in table and "0.50×" in table
    png = plot_scaling(report, tmp_path / "scaling.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_runs_both_models_in_one_process():
    report = run_bench((32,), {32: 2}, models=("au_ttt_vit_s16", "timm_vit_s16"), device="cpu", warmup=0,
                       iters=1, memory=False, progress=False)
    results = report["results"]
    assert {(r["model"], r["mode"]) for r in results} == {(m, mode) for m in ("au_ttt_vit_s16", "timm_vit_s16")
                                                          for mode in ("forward", "train_step")}
    assert all(r["img_per_s"] > 0 and r["gflops_per_img"] > 0 and r["batch"] == 2 for r in results)
    assert all(r["step_gflops_per_img"] > 2 * r["gflops_per_img"] for r in results if r["mode"] == "train_step")
    assert math.isnan(results[0]["peak_mem_mb"]) and report["env"]["load_average_1_5_15min"]["before"]
    assert len(report["summary"]["per_size"]) == 2
    assert all(r["ops"] > r["matmul_ops"] > 0 for r in results)          # counted once per model and mode
    ops = report["ops"]["au_ttt_vit_s16"]["32"]
    assert ops["ops_train_step"] > ops["ops_forward"] > 0 and ops["matmul_ops_train_step"] > 0
    assert sum(ops["ops_by_name_train_step"].values()) == ops["ops_train_step"]
    assert all(s["ops_ratio"] > 1 for s in report["summary"]["per_size"])   # AU-TTT runs more ops than ViT-S


def test_bench_arguments_are_checked(capsys):
    assert main(["bench", "--sizes", "224", "448", "--batch", "8"]) == 2
    assert main(["bench", "--sizes", "100"]) == 2
    err = capsys.readouterr().err
    assert "one value per size" in err and "multiples of the patch size" in err
    assert main(["bench", "--device", "cpu", "--sizes", "224", "--models", "au_ttt_vit_s16", "au_ttt_graphs"]) == 2
    assert "--models au_ttt_graphs capture CUDA graphs and need a CUDA device (cpu here)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="au_ttt_graphs captures CUDA graphs: run it with --device cuda"):
        _build("au_ttt_graphs", 32, 3, torch.device("cpu"))


def test_train_check_runs_the_training_loops_optimisation(tmp_path):
    """`au-ttt bench --train-check` steps through the training loop's own AdamW, clipping and loss check: on the
    demo model the loss on one fixed batch falls by half, and fp16 (which training does not run) is refused."""
    from au_ttt.bench_train import train_check
    from au_ttt.errors import InputError

    result = train_check(str(REPO / "config/config.yaml"), device="cpu", steps=20)
    assert result["all_finite"] and result["loss_fell"] and len(result["losses"]) == 20
    with pytest.raises(InputError, match="bf16 or fp32"):
        train_check(str(REPO / "config/config.yaml"), device="cpu", steps=1, amp="fp16")
