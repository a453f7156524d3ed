"""`au-ttt plan`: hand-computed estimates on a small config, every stage of the paper config, clear errors."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from au_ttt.cli import main
from au_ttt.config import ConfigError
from au_ttt.errors import InputError
from au_ttt.planning import RateBook, Resources, estimate, pretraining_gpu_days
from au_ttt.planning import stages as stages
from au_ttt.planning.rates import (
    DEFAULT_RATES,
    IMAGENET_TRAIN_IMAGES,
    IMAGENET_VAL_IMAGES,
    VIT_S16,
    Geometry,
    ModelRate,
    Rate,
    load_bench,
    load_timings,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = Geometry(64, 16, 64, 2)
H = 3600.0


def _config(**workflow) -> dict:
    """Tiny SynthAU config: 3 subjects per dataset, BP4D 10 and DISFA 20 frames per subject, one variant."""
    wf = {"data": "synthau", "datasets": ["bp4d", "disfa"], "test_parts": [1, 2, 3], "full_variant": "full",
          "ablation_dataset": "bp4d", "pretrain": False, "cross_domain_test": "entire", "results": "results",
          "synthau": {"root": "data/synthau", "seed": 0, "subjects_per_part": 1, "bp4d_tasks": 2, "bp4d_frames": 5,
                      "disfa_frames": 20}}
    wf.update(workflow)
    return {"workflow": wf, "variants": {"full": {}},
            "model": {"img_size": 64, "patch_size": 16, "embed_dim": 64, "depth": 2},
            "train": {"epochs": 2, "eval_every": 1, "threads": 1}, "landmarks": {"backend": "provided"},
            "pretrain": {"epochs": 3, "max_steps": 0, "batch_size": 8}}


def _rates() -> RateBook:
    """Round numbers: no job start-up, 0.01 s per SynthAU frame, 0.002 s per decoded frame, ..."""
    stages = {k: Rate(0.0, "test") for k in DEFAULT_RATES}
    stages.update(synthau=Rate(0.01, "t"), disfa_frames=Rate(0.002, "t"), index=Rate(0.001, "t"),
                  crops=Rate(0.004, "t", pixels=240 * 320), tables=Rate(30.0, "t"))
    stages["landmarks.provided"] = Rate(0.001, "t")
    models = [ModelRate(SMALL, "cpu", "train", 100.0, "t"), ModelRate(SMALL, "cpu", "eval", 200.0, "t"),
              ModelRate(SMALL, "gpu", "train", 1000.0, "t"), ModelRate(SMALL, "gpu", "eval", 2000.0, "t")]
    return RateBook(stages, models)


def _by_stage(estimates) -> dict:
    return {e.stage: e for e in estimates}


def test_hand_computed_small_config_on_two_cores():
    plan = _by_stage(estimate(_config(), Resources(cores=2), _rates()))
    # BP4D 3 subjects x 2 tasks x 5 frames = 30 frames (10 per subject); DISFA 3 x 20 = 60
    assert plan["SynthAU"].jobs == 1 and plan["SynthAU"].wall_h * H == pytest.approx(90 * 0.01)
    # 3 videos of 20 frames at 0.002 s on 2 cores: max(0.12 / 2, 0.04)
    assert plan["DISFA frames"].jobs == 3 and plan["DISFA frames"].wall_h * H == pytest.approx(0.06)
    assert plan["DISFA frames"].device_h * H == pytest.approx(0.12)
    # index: one job per dataset, 30 and 60 frames: max(0.09 / 2, 0.06)
    assert plan["frame index"].wall_h * H == pytest.approx(0.06)
    # landmarks: 6 one-subject shards (10,10,10,20,20,20 frames) at 0.001 s: max(0.09 / 2, 0.02)
    assert plan["landmarks"].jobs == 6 and plan["landmarks"].wall_h * H == pytest.approx(0.045)
    # crops measured at SynthAU's BP4D frame size (240x320): DISFA frames (256x192) cost 0.004 x 0.64
    assert plan["crops"].device_h * H == pytest.approx(30 * 0.004 + 60 * 0.004 * (256 * 192) / (240 * 320))
    assert plan["pretraining"].jobs == 0 and plan["pretraining"].wall_h == 0  # workflow.pretrain: false
    # 6 runs (Table III's only variant is Table I's full model from scratch on BP4D: deduplicated).
    # BP4D run: 2 epochs x 20 train / 100 + 3 evaluations x 10 test / 200 = 0.55 s; DISFA: 0.8 + 0.3 = 1.1 s
    train = plan["training"]
    assert train.jobs == 6 and train.slots == 2
    assert train.device_h * H == pytest.approx(3 * 0.55 + 3 * 1.1)
    assert train.wall_h * H == pytest.approx(max(4.95 / 2, 1.1))
    # cross-domain: whole target, 60 DISFA and 30 BP4D frames at 200 img/s
    assert plan["cross-domain evaluation"].device_h * H == pytest.approx((60 + 30) / 200)
    assert plan["tables"].wall_h * H == pytest.approx(30)


def test_hand_computed_gpus_nodes_threads_and_pretraining():
    cfg = _config(pretrain=True)
    plan = _by_stage(estimate(cfg, Resources(cores=4, gpus=4, nodes=2), _rates()))
    train = plan["training"]  # 9 runs now: Table I from the pretrained backbone, Table III from scratch
    assert train.jobs == 9 and train.device == "gpu" and train.slots == 8
    bp4d, disfa = 2 * 20 / 1000 + 3 * 10 / 2000, 2 * 40 / 1000 + 3 * 20 / 2000
    assert train.device_h * H == pytest.approx(6 * bp4d + 3 * disfa)
    assert train.wall_h * H == pytest.approx(max((6 * bp4d + 3 * disfa) / 8, disfa))
    # digits pretraining: one job on the 4 GPUs of one node (not 8: DDP stays on one node)
    pre = plan["pretraining"]
    seconds = (3 * 1438 / 1000 + 359 / 2000) / 4
    assert pre.jobs == 1 and pre.slots == 4 and pre.wall_h * H == pytest.approx(seconds)
    assert pre.device_h * H == pytest.approx(4 * seconds)
    # CPU only, train.threads 0 = a whole node per job: 2 nodes -> 2 jobs at once, each 4 x the per-thread rate
    cfg["train"]["threads"] = 0
    train = _by_stage(estimate(cfg, Resources(cores=4, nodes=2), _rates()))["training"]
    bp4d, disfa = (2 * 20 / 100 + 3 * 10 / 200) / 4, (2 * 40 / 100 + 3 * 20 / 200) / 4
    assert train.slots == 2 * 4 and train.wall_h * H == pytest.approx(max((6 * bp4d + 3 * disfa) / 2, disfa))
    assert train.device_h * H == pytest.approx(4 * (6 * bp4d + 3 * disfa))


def test_real_data_uses_the_published_counts_and_imagenet():
    cfg = _config(data="real", pretrain=True)
    del cfg["workflow"]["synthau"]
    cfg["pretrain"] = {"epochs": 300, "max_steps": 0, "batch_size": 1024}
    rates = _rates()
    plan = _by_stage(estimate(cfg, Resources(cores=8, gpus=1), rates))
    assert plan["frame index"].items == 146_847 + 130_814
    assert plan["DISFA frames"].jobs == 27 and plan["landmarks"].jobs == 41 + 27
    pre = plan["pretraining"]
    assert pre.items == 300 * IMAGENET_TRAIN_IMAGES + IMAGENET_VAL_IMAGES
    days = (300 * 1_281_167 / 1000 + 50_000 / 2000) / 86400
    assert pre.device_h / 24 == pytest.approx(days) == pretraining_gpu_days(cfg, rates)
    assert "data check" in plan and "SynthAU" not in plan
    cfg["pretrain"]["source"] = "timm_checkpoint"
    pre = _by_stage(estimate(cfg, Resources(cores=8, gpus=1), rates))["pretraining"]
    assert (pre.jobs, pre.device_h) == (0, 0) and "timm ViT-S/16" in pre.note


def test_shards_of_several_subjects():
    cfg = _config()
    cfg["workflow"]["shard_subjects"] = 2   # BP4D 3 subjects -> shards of 2 + 1; DISFA likewise
    plan = _by_stage(estimate(cfg, Resources(cores=8), _rates()))
    assert plan["landmarks"].jobs == 4 and plan["landmarks"].wall_h * H == pytest.approx(0.04)


def test_ablation_dataset_outside_the_datasets_is_still_prepared_and_trained():
    cfg = _config(datasets=["disfa"])          # Table III stays on BP4D, as the DAG runs it
    plan = _by_stage(estimate(cfg, Resources(cores=2), _rates()))
    assert plan["frame index"].items == 60 + 30 and plan["landmarks"].jobs == 6
    assert plan["training"].jobs == 6           # DISFA Table I x 3 + BP4D Table III x 3
    assert plan["cross-domain evaluation"].jobs == 0


def test_model_rates_scale_by_the_flop_proxy_and_bench_files_override(tmp_path):
    book = RateBook()
    rate, source = book.model(VIT_S16, "gpu", "train")
    assert "GPU cost model" in source and "au_ttt-train-triton.json" in source and "timm" in source
    at_128 = book.model(VIT_S16, "gpu", "train", 128)   # device-bound: the same per image
    assert at_128[0] == pytest.approx(rate) and "at batch 128" in at_128[1]
    eager = RateBook.for_gpu(path="eager")            # the fused PyTorch loop: many more kernels
    eager_rate, eager_source = eager.model(VIT_S16, "gpu", "train")
    assert "au_ttt-train-eager.json" in eager_source and eager_rate < rate
    assert eager.model(VIT_S16, "gpu", "train", 16)[0] < eager_rate   # launch-bound at a small batch
    bigger = Geometry(448, 16, 384, 12)  # 785 tokens instead of 197
    scaled, source = book.model(bigger, "gpu", "train")
    assert scaled == pytest.approx(rate * 197 / 785) and "rough" in source
    bench = {"env": {"device": "NVIDIA H100", "device_type": "cuda", "threads": 8},
             "results": [{"model": "au_ttt_vit_s16", "img_size": 224, "batch": 64, "mode": "forward+backward",
                          "img_per_s": 900.0}, {"model": "au_ttt_vit_s16", "img_size": 224, "batch": 64,
                                                "mode": "forward", "img_per_s": 2500.0}]}
    path = tmp_path / "bench-cuda.json"
    path.write_text(json.dumps(bench))
    book = book.with_bench(path)
    assert book.model(VIT_S16, "gpu", "train") == (900.0, f"{path}: 900.0 img/s measured (NVIDIA H100)")
    assert book.model(VIT_S16, "gpu", "eval")[0] == 2500.0
    assert book.model(VIT_S16, "cpu", "train")[0] == pytest.approx(2.083 / 2)   # CPU rates unchanged
    for train_mode in ("forward+backward", "train_step"):   # the bench's mode name before/after 2026-12
        cpu = {"env": {"device_type": "cpu", "threads": 4}, "results": [
            {"model": "au_ttt_vit_s16", "img_size": 224, "mode": train_mode, "img_per_s": 4.0},
            {"model": "timm_vit_s16", "img_size": 224, "mode": train_mode, "img_per_s": 8.0}]}
        path.write_text(json.dumps(cpu))
        book = RateBook().with_bench(path)
        assert book.model(VIT_S16, "cpu", "train")[0] == 1.0
        assert book.model(VIT_S16, "gpu", "train") == RateBook().model(VIT_S16, "gpu", "train")  # no CPU ratio


def test_the_current_bench_report_gives_training_rates():
    """`au-ttt bench` and the plan agree on the report format (the mode names of au_ttt.bench.MODES)."""
    from au_ttt.bench import MODES
    from au_ttt.planning.rates import _BENCH_MODES

    assert set(MODES) <= set(_BENCH_MODES)


def test_timings_file_overrides_stage_rates(tmp_path):
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"source": "my cluster", "stages": {"landmarks.dlib": {"seconds": 0.05,
                                                                                      "pixels": 1000}}}))
    book = RateBook().with_timings(path)
    assert book.stage("landmarks.dlib", 2000) == (0.1, f"my cluster ({path}); x2 for the frame size (cost ∝ pixels)")
    assert book.files == [str(path)]


@pytest.mark.parametrize(("content", "message"), [
    ({"stages": {"landmark": {"seconds": 1}}}, "unknown stage 'landmark'; known: job_startup"),
    ({"stages": {"crops": {"seconds": -1}}}, "stages.crops must be"),
    ({"stages": {"crops": {"seconds": 1, "per": "frame"}}}, "stages.crops must be"),
    ({"stage": {}}, "unknown: stage"),
])
def test_bad_timings_files_are_refused(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=message):
        load_timings(path)


def test_bad_bench_files_are_refused(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON benchmark file"):
        load_bench(path)
    path.write_text(json.dumps({"env": {}, "results": [{"model": "timm_vit_s16"}]}))
    with pytest.raises(InputError, match="no AU-TTT throughput"):
        load_bench(path)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cores": 0}, "--cores must be an integer >= 1, got 0"),
    ({"cores": 2, "gpus": -1}, "--gpus must be an integer >= 0"),
    ({"cores": 2, "nodes": "2"}, "--nodes must be an integer >= 1, got '2'"),
    ({"cores": True}, "--cores must be an integer"),
])
def test_bad_resources_are_clear_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        Resources(**kwargs)


@pytest.mark.parametrize(("path", "value", "message"), [
    (("workflow", "data"), "rea", "key 'workflow.data' has value 'rea'; allowed: one of 'synthau', 'real'"),
    (("pretrain", "source"), "imagenet21k", "key 'pretrain.source' has value 'imagenet21k'"),
    (("workflow", "synthau", "bp4d_frames"), 0, "key 'workflow.synthau.bp4d_frames' has value 0"),
    (("train", "epochs"), "20", "key 'train.epochs' has value '20'"),
    (("workflow", "full_variant"), "nope", "key 'workflow.full_variant' has value 'nope'"),
    (("workflow", "test_parts"), [4], "key 'workflow.test_parts' has \\[4\\]"),
])
def test_bad_config_values_name_the_key(path, value, message):
    cfg = _config()
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        estimate(cfg, Resources(cores=2), _rates(), source="my.yaml")
    cfg = _config()
    del cfg["workflow"]["synthau"]["disfa_frames"]
    missing = re.escape("my.yaml: required key 'workflow.synthau.disfa_frames' is missing")
    with pytest.raises(ConfigError, match=missing):
        estimate(cfg, Resources(cores=2), _rates(), source="my.yaml")


def test_paper_config_prints_every_stage(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", "--config", str(REPO / "config" / "paper.yaml"), "--cores", "8", "--gpus", "4",
                 "--bench", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    stage_table = text[:text.index("Total if the stages")]
    rows = [ln.split("|")[1].strip() for ln in stage_table.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert rows[1:] == ["data check", "DISFA frames", "frame index", "landmarks", "crops", "heatmaps", "pretraining",
                        "training", "cross-domain evaluation", "data loading", "tables"]
    plan = json.loads(out.read_text())
    pre = next(s for s in plan["stages"] if s["stage"] == "pretraining")
    assert pre["items"] == 300 * IMAGENET_TRAIN_IMAGES + IMAGENET_VAL_IMAGES and pre["slots"] == 4
    assert plan["imagenet_pretraining_gpu_days"] == pytest.approx(pre["device_h"] / 24, rel=1e-3)
    assert f"costs {plan['imagenet_pretraining_gpu_days']:,.1f} GPU-days" in text
    assert "`pretrain.source: timm_checkpoint` costs 0" in text and "Sources:" in text
    assert plan["rate_files"] == [] and "built-in defaults" in text
    # the GPU rows come from the cost model, whose calibration and validation the plan prints
    assert "GPU cost model" in pre["source"] and "benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv" in pre["source"]
    assert "batch 256 per GPU" in pre["note"]                       # 1024 split over 4 GPUs
    gm = plan["gpu_model"]
    assert gm["all_within_tolerance"] and len(gm["validation"]) == len(re.findall(r"^\| timm .* %", text, re.M))
    assert f"All {len(gm['validation'])} within 25%: yes" in text
    assert gm["au_ttt"]["train"]["batch"] == 64 and gm["au_ttt"]["pretrain"]["batch"] == 256
    assert "triton path (model.compile: false: on CUDA the scan runs as the Triton kernels)" in text
    eager_h = plan["gpu_model"]["other_paths"]["eager"]["gpu_h"]
    assert eager_h > 0 and f"With the eager op profiles instead: {eager_h:,.1f} GPU-hours in this plan" in text
    # a plan with no GPU has no GPU-hours to compare: said in words, not as 0.0
    assert main(["plan", "--config", str(REPO / "config" / "paper.yaml"), "--gpus", "0", "--bench"]) == 0
    assert "eager op profiles instead: no stage of this plan runs on a GPU (--gpus 0)" in capsys.readouterr().out


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["plan", "--config", str(REPO / "config" / "paper.yaml"), "--cores", "0", "--gpus", "0"]) == 2
    assert "--cores must be an integer >= 1, got 0" in capsys.readouterr().err
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["train"]["epochz"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["plan", "--config", str(bad), "--gpus", "0", "--bench"]) == 2
    assert "unknown key 'train.epochz'" in capsys.readouterr().err


def _plan_error(tmp_path, capsys, edit) -> tuple[Path, str]:
    """`au-ttt plan` on config/config.yaml changed by ``edit``: must exit 2 with exactly one stderr line."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    edit(cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["plan", "--config", str(bad), "--gpus", "0", "--bench"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return bad, lines[0]


@pytest.mark.parametrize(("where", "typo", "allowed"), [
    ((), "shard_subject", "ablation_dataset, baseline_weights, baselines, cross_domain_model_part, "
                          "cross_domain_test, data, data_check, datasets, full_variant, pretrain, resources, results, "
                          "roots, seeds, shard_subjects, synthau, test_parts"),
    (("synthau",), "seeds", "bp4d_frames, bp4d_tasks, disfa_frames, root, seed, subjects_per_part"),
    (("resources", "train"), "gpu", "gpus, mem_mb, runtime, threads"),
])
def test_workflow_typos_are_refused_as_the_dag_refuses_them(tmp_path, capsys, where, typo, allowed):
    """The DAG's schema rejects unknown `workflow.*` keys; the plan checks the same schema (one definition)."""
    def edit(cfg):
        node = cfg["workflow"]
        for key in where:
            node = node[key]
        node[typo] = 1

    bad, line = _plan_error(tmp_path, capsys, edit)
    key = ".".join(("workflow", *where, typo))
    assert line == f"au-ttt plan: error: {bad}: unknown key '{key}'; allowed keys here: {allowed} " \
                   "(schema: config.schema.yaml)"


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("subjects_per_part", 100, "an integer in 1..14 (14 takes every published subject of both datasets)"),
    ("subjects_per_part", 0, "an integer in 1..14"),
    ("disfa_frames", 10**12, "an integer in 2..4,845 (a DISFA video has 4,845 frames)"),
    ("bp4d_frames", 1, "an integer in 2..4,845"),
    ("bp4d_tasks", 9, "an integer in 1..8 (BP4D has tasks T1–T8)"),
    ("seed", -1, "an integer in 0..4,294,967,295"),
])
def test_absurd_synthau_sizes_are_one_line(tmp_path, capsys, key, value, allowed):
    bad, line = _plan_error(tmp_path, capsys, lambda cfg: cfg["workflow"]["synthau"].update({key: value}))
    assert line.startswith(f"au-ttt plan: error: {bad}: key 'workflow.synthau.{key}' has value {value}; "
                           f"allowed: {allowed}")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda wf: wf.update(data="rea"), "key 'workflow.data' has value 'rea'; allowed: one of 'synthau', 'real'"),
    (lambda wf: wf.pop("results"), "required key 'workflow.results' is missing"),
    (lambda wf: wf.update(datasets="bp4d"), "key 'workflow.datasets' has value 'bp4d'; allowed: a list"),
    (lambda wf: wf.update(shard_subjects=0), "key 'workflow.shard_subjects' has value 0; allowed: >= 1"),
    (lambda wf: wf["synthau"].update(seed="0"), "key 'workflow.synthau.seed' has value '0'; allowed: an integer"),
])
def test_schema_violations_in_the_packages_wording(tmp_path, capsys, edit, message):
    bad, line = _plan_error(tmp_path, capsys, lambda cfg: edit(cfg["workflow"]))
    assert line == f"au-ttt plan: error: {bad}: {message}"


def test_shipped_configs_pass_the_workflow_check():
    from au_ttt.workflow_config import check_config_file

    for path in [REPO / "config/config.yaml", REPO / "config/paper.yaml", REPO / ".test/config/config.yaml"]:
        assert check_config_file(path)["workflow"]


def test_demo_config_and_defaults_agree_with_the_code():
    from au_ttt.data.synth.render import DOMAINS

    assert {k: (v.width, v.height) for k, v in DOMAINS.items()} == stages.SYNTHAU_FRAME_SIZE
    assert (1797 - int(1797 * 0.2), int(1797 * 0.2)) == (stages.DIGITS_TRAIN, stages.DIGITS_VAL)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    plan = _by_stage(estimate(copy.deepcopy(cfg), Resources(cores=2)))
    variants, flow = cfg["variants"], cfg["workflow"]
    table3 = {v for v in variants if (variants[v] or {}).get("arch", "au_ttt") == "au_ttt"}
    trained = {b for b in flow["baselines"] if b in variants}  # the probe (hog_lr) is no training job
    # per fold and seed: the full model on both datasets, every Table III row on BP4D, every trained baseline on
    # both datasets, except a baseline that is a Table III row too (attention control) on BP4D: one run folder
    per_fold = 2 + len(table3) + 2 * len(trained) - len(trained & table3)
    assert plan["training"].jobs == len(flow["test_parts"]) * len(flow["seeds"]) * per_fold
    assert plan["frame index"].items == 432 + 600
    assert plan["training"].source == RateBook().model(SMALL, "cpu", "train")[1]  # the measured demo geometry


def test_planning_imports_no_torch():
    code = ("import sys, yaml; from au_ttt.planning import estimate, Resources, render_table;"
            "cfg = yaml.safe_load(open('config/paper.yaml'));"
            "print(render_table(estimate(cfg, Resources(8, 4)), Resources(8, 4))[:10]);"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)


# ------------------------------------------------------------------------------------------ data loading
@pytest.mark.parametrize("cores, short", [(8, False), (3, True)])
def test_data_loading_row_says_whether_the_cores_feed_the_gpus(cores, short):
    """4 GPUs at 1,000 train img/s each need 4,000 img/s: 4.0 cores at 1 ms per image per core."""
    rates = _rates()
    rates.stages["loader"] = Rate(0.001, "loader test rate")
    plan = {e.stage: e for e in estimate(_config(), Resources(cores=cores, gpus=4), rates)}
    row, training = plan["data loading"], plan["training"]
    assert row.per_item_s == 0.001 and row.source == "loader test rate"
    assert row.items == training.items + plan["cross-domain evaluation"].items
    assert "4.0 cores per node feed 4 GPUs training at 1,000 img/s each (8.0 for evaluation passes)" in row.note
    assert ("short: training is loader-bound, 1.33x" in row.note) == short
    assert row.wall_h == pytest.approx(training.wall_h * (4 / cores - 1) if short else 0.0)
    assert row.device_h == pytest.approx(row.items * 0.001 / 3600)


def test_data_loading_without_gpus_shares_the_training_cores():
    plan = {e.stage: e for e in estimate(_config(), Resources(cores=2), _rates())}
    assert plan["data loading"].wall_h == 0 and "no GPU" in plan["data loading"].note


def test_loader_rate_comes_from_a_timings_file(tmp_path):
    timings = tmp_path / "t.json"
    timings.write_text(json.dumps({"source": "rehearsal", "stages": {"loader": {"seconds": 0.0005}}}))
    rates = _rates().with_timings(timings)
    row = next(e for e in estimate(_config(), Resources(cores=8, gpus=4), rates) if e.stage == "data loading")
    assert row.per_item_s == 0.0005 and row.source.startswith("rehearsal")
