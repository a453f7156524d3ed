"""GPU cost model: the validation against published timm figures from the committed op profiles, the roofline
rule by hand, the profiler on live small models, and a dropped-in second (e.g. fused-scan) profile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from au_ttt.errors import InputError
from au_ttt.planning import RateBook
from au_ttt.planning.gpu_model import (
    CALIBRATION,
    GPUS,
    LAUNCH_S,
    PROFILE_DIR,
    TOLERANCE,
    VALIDATION,
    OpProfile,
    calibrate,
    cost_model,
    load_profiles,
    step_time,
)
from au_ttt.planning.op_profile import OpRecorder, fake_module, fake_session, profile_fn
from au_ttt.planning.profile_steps import STANDARD, ProfileSpec, profile_spec
from au_ttt.planning.rates import VIT_S16

REPO = Path(__file__).resolve().parents[1]


def test_every_published_figure_the_fit_did_not_see_is_predicted_within_25_percent():
    model = cost_model()
    assert {c.figure for c in model.checks} == set(VALIDATION) and CALIBRATION not in VALIDATION
    assert len({(f.profile, f.gpu) for f in VALIDATION}) == len(VALIDATION) >= 10
    bad = [f"{c.figure.label}: {c.predicted:.0f} vs {c.figure.img_per_s:.0f}" for c in model.checks
           if abs(c.error) > TOLERANCE]
    assert not bad and model.passed
    assert 0.2 < model.efficiency <= 1.0
    # the fit reproduces its own figure
    calibrated = step_time(model.profiles[CALIBRATION.profile], GPUS[CALIBRATION.gpu], model.efficiency)
    assert calibrated.img_per_s() == pytest.approx(CALIBRATION.img_per_s, rel=1e-6)


def test_committed_profiles_are_the_standard_set_with_their_metadata():
    profiles = load_profiles()
    assert set(profiles) >= {s.name for s in STANDARD}
    for spec in STANDARD:
        p = profiles[spec.name]
        assert (p.model, p.mode, p.batch, p.path) == (spec.model, spec.mode, spec.batch, spec.path)
        assert p.kernels > 0 and p.flops > 0
    train, triton = profiles["au_ttt-train-eager"], profiles["au_ttt-train-triton"]
    vit = profiles[CALIBRATION.profile]
    assert train.kernels > 4 * vit.kernels      # eager: the scan's mini-batch loop, a few kernels per step
    assert triton.kernels < train.kernels / 2                 # one kernel per scan each way
    # backward runs the forward kernel once more (the post-norm's input) before the backward kernel
    assert train.flops < triton.flops < 1.05 * train.flops


def test_roofline_rule_by_hand():
    gpu = GPUS["RTX-3090"]
    profile = OpProfile("p", "m", "train", 8, "eager", (
        ("aten.mm", "f16", 2, 71_000_000_000, 1000),   # 1 TFLOP-ish each: 2 × 71e9 / (71e12 × 0.5) = 4 ms
        ("aten.mm", "f32", 1, 3_560_000_000, 0),       # fp32 matmul at the FP32 peak: 3.56e9 / 17.8e12 = 0.2 ms
        ("aten.add", "f16", 10, 0, 4_680_000)), "x")   # bandwidth-bound: 10 × 4.68e6 / 468e9 = 0.1 ms
    step = step_time(profile, gpu, efficiency=0.5, launch_s=1e-5)
    assert step.device_s == pytest.approx(4e-3 + 0.2e-3 + 0.1e-3)
    assert step.host_s == pytest.approx(13 * 1e-5) and step.bound == "device-bound"
    assert step.img_per_s() == pytest.approx(8 / 4.3e-3)
    # at batch 1 the device time shrinks 8x, the host time does not: launch-bound
    assert step.img_per_s(1) == pytest.approx(1 / max(4.3e-3 / 8, 1.3e-4))
    tiny = step_time(OpProfile("t", "m", "train", 1, "eager", (("aten.add", "f32", 1000, 0, 64),), "x"), gpu, 0.5)
    assert tiny.bound == "launch-bound" and tiny.step_s == pytest.approx(1000 * LAUNCH_S)


def test_calibration_fails_clearly_when_the_figure_is_out_of_reach():
    profiles = load_profiles()
    from dataclasses import replace

    with pytest.raises(InputError, match="above the model's peak-rate prediction"):
        calibrate(profiles, replace(CALIBRATION, img_per_s=1e9))


def test_recorder_counts_flops_bytes_and_views_of_a_linear_layer():
    layer = nn.Linear(8, 16)
    with fake_session() as mode:
        fake_module(layer, mode)
        x = torch.randn(4, 8)

        def step():
            layer(x).sum().backward()
        rec = profile_fn(step, warmup=0)
    kernels = {(op, dt): (n, f, b) for (op, dt, f, b), n in rec.kernels.items()}
    # forward addmm: 2·4·8·16 FLOPs; reads bias (16), x (32), weight (128), writes 64 floats
    assert kernels[("aten.addmm", "f32")] == (1, 2 * 4 * 8 * 16, 4 * (16 + 32 + 128 + 64))
    assert rec.views >= 1                                   # the weight's transpose launches nothing
    assert ("aten.mm", "f32") in kernels                    # backward: grad wrt the weight


def test_cuda_autocast_fp32_rules_are_applied_on_the_cpu_path():
    seen = []
    with fake_session():
        x = torch.randn(4, 8, dtype=torch.float16)
        with OpRecorder() as rec, torch.autocast("cpu", dtype=torch.float16):
            seen.append(x.softmax(-1).dtype)
            seen.append(nn.functional.layer_norm(x, (8,)).dtype)
    assert seen == [torch.float32, torch.float32]         # CUDA autocast runs both in float32
    assert any(op == "aten._softmax" for op, *_ in rec.kernels)


def test_live_profile_of_the_demo_model_counts_the_forward_flops_torch_counts():
    """The fake-tensor profile of a real (small) AU-TTT step agrees with FlopCounterMode on real tensors."""
    from au_ttt.model.au_ttt import AUTTT
    from au_ttt.model.flops import count_fn_flops
    from au_ttt.settings import load_settings

    cfg = str(REPO / "config" / "config.yaml")
    profile = profile_spec(ProfileSpec("demo", "au_ttt", "infer", 2), cfg)
    settings = load_settings(cfg)
    model = AUTTT(settings.model, 12).eval()
    x = torch.randn(2, 3, settings.model.img_size, settings.model.img_size)
    masks = torch.rand(2, 12, *settings.model.grid_size)
    with torch.no_grad():
        real = count_fn_flops(lambda: model(x, masks))
    assert profile["totals"]["flops"] == real > 0
    assert profile["totals"]["kernel_ops"] > profile["totals"]["matmul_ops"] > 0
    train = profile_spec(ProfileSpec("demo", "au_ttt", "train", 2), cfg)
    assert train["totals"]["kernel_ops"] > 2 * profile["totals"]["kernel_ops"]   # backward + AdamW


def test_the_triton_path_counts_each_scan_as_one_kernel_with_the_fused_cores_flops():
    """Fake tensors run the kernels' custom ops through their fake implementations (no Triton launch): one kernel
    per scan call, with the fused PyTorch core's FLOPs (backward: its recomputing forward plus its reverse sweep)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from au_ttt.model import ttt_fused, ttt_triton
    from au_ttt.model.flops import count_fn_flops

    n, N, b, F = 3, 4, 5, 16
    g = torch.Generator().manual_seed(0)
    X, coef = torch.randn(n, N, 3, b, F, generator=g), torch.randn(n, N, b, b, generator=g).tril()
    e = torch.rand(n, N, b, 1, generator=g)
    params = [torch.randn(N, F, F, generator=g), *(torch.randn(N, 1, F, generator=g) for _ in range(3))]
    grad = torch.randn(n, N, b, F, generator=g)

    def fused_backward() -> None:
        ttt_fused.scan_backward(grad, X, coef, e, *params, ttt_fused.scan_forward(X, coef, e, *params, keep=True)[1])

    with FakeTensorMode(allow_non_fake_inputs=True):
        kernels = (count_fn_flops(lambda: ttt_triton.scan_forward(X, coef, e, *params)),
                   count_fn_flops(lambda: ttt_triton.scan_backward(grad, X, coef, e, *params)))
    assert kernels == (count_fn_flops(lambda: ttt_fused.scan_forward(X, coef, e, *params)),
                       count_fn_flops(fused_backward))
    cfg = str(REPO / "config" / "config.yaml")
    eager = profile_spec(ProfileSpec("demo", "au_ttt", "train", 2), cfg)
    triton = profile_spec(ProfileSpec("demo", "au_ttt", "train", 2, ttt_impl="triton"), cfg)
    launches = {op: sum(r[2] for r in triton["ops"] if r[0] == op)
                for op in ("au_ttt.ttt_scan_forward", "au_ttt.ttt_scan_backward")}
    assert triton["path"] == "triton" and launches["au_ttt.ttt_scan_backward"] >= 2     # ≥ one scan per block
    assert not any(r[0].startswith("au_ttt.") for r in eager["ops"])
    assert triton["totals"]["kernel_ops"] < eager["totals"]["kernel_ops"]


def test_a_dropped_in_fused_profile_is_priced_and_a_measured_cuda_file_still_wins(tmp_path):
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILE_DIR, folder)
    eager = json.loads((folder / "au_ttt-train-eager.json").read_text())
    fused = eager | {"name": "au_ttt-train-fused", "path": "fused",
                     "ops": [[op, dt, max(1, n // 10), f, b] for op, dt, n, f, b in eager["ops"]]}
    (folder / "au_ttt-train-fused.json").write_text(json.dumps(fused))
    model = cost_model(folder)
    assert model.paths() == ["eager", "fused", "triton"]
    assert model.au_ttt("train", "fused").name == "au_ttt-train-fused"
    assert model.passed                                   # the timm checks do not depend on AU-TTT profiles
    book_eager = RateBook.for_gpu("A100-80GB-SXM", "eager", folder)
    book_fused = RateBook.for_gpu("A100-80GB-SXM", "fused", folder)
    eager_rate, _ = book_eager.model(VIT_S16, "gpu", "train", 64)
    fused_rate, source = book_fused.model(VIT_S16, "gpu", "train", 64)
    assert fused_rate > 2 * eager_rate and "au_ttt-train-fused.json (fused" in source
    # evaluation has no fused profile: eager is priced, and the source says so
    assert "no fused profile" in book_fused.model(VIT_S16, "gpu", "eval", 64)[1]
    bench = tmp_path / "bench-cuda.json"
    bench.write_text(json.dumps({"env": {"device": "NVIDIA A100", "device_type": "cuda", "threads": 8},
                                 "results": [{"model": "au_ttt_vit_s16", "img_size": 224, "mode": "train_step",
                                              "img_per_s": 123.0}]}))
    measured = book_fused.with_bench(bench)
    assert measured.model(VIT_S16, "gpu", "train", 64)[0] == 123.0
    assert measured.model(VIT_S16, "gpu", "pretrain", 256)[0] == 123.0   # measured training beats modelled


def test_the_command_rewrites_a_committed_profile_op_for_op(tmp_path, capsys):
    from au_ttt.cli import main

    name = "timm-vit_tiny_patch16_224-infer-pt240"
    assert main(["bench", "--profile-ops", name, "--profile-dir", str(tmp_path)]) == 0
    assert f"written {tmp_path / name}.json" in capsys.readouterr().out
    fresh, committed = OpProfile.load(tmp_path / f"{name}.json"), OpProfile.load(PROFILE_DIR / f"{name}.json")
    assert fresh.ops == committed.ops and fresh.batch == committed.batch == 1024


def test_a_config_whose_model_was_not_profiled_says_its_gpu_rates_are_scaled(capsys):
    from au_ttt.cli import main

    assert main(["plan", "--config", str(REPO / "config" / "config.yaml"), "--gpus", "1", "--bench"]) == 0
    text = capsys.readouterr().out
    assert "this config's model is width 64, depth 2, patch 16, 64 px" in text and "ignores launch time" in text


def test_bad_profiles_are_refused(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not an op profile"):
        OpProfile.load(path)
    path.write_text(json.dumps({"format": "au-ttt op profile 1", "name": "x", "model": "m", "mode": "train",
                                "batch": 1, "ops": [["aten.mm", "f16", -1, 0, 0]]}))
    with pytest.raises(InputError, match="counts and batch must be positive"):
        OpProfile.load(path)
    with pytest.raises(InputError, match="unknown GPU 'V100'"):
        RateBook.for_gpu("V100")
