# Configuration validation, the resolved config the `au-ttt` commands read, and the input/param helpers.
import json
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

import au_ttt  # (the package must be installed: `make setup`)
from au_ttt.config import ConfigError
from au_ttt.data.protocol import PARTS as PUBLISHED_PARTS
from au_ttt.data.protocol import first_subjects, shard_subjects
from au_ttt.datasets import registry as dataset_registry
from au_ttt.digests import json_digest
from au_ttt.fileio import atomic_write_text
from au_ttt.resources import resolve_resources
from au_ttt.settings import load_settings
from au_ttt.train.runkey import source_digest
from au_ttt.workflow_config import check_workflow

# The one check of the workflow section that `au-ttt plan` and `au-ttt dvc-stage` run too (the schema below, in
# the package's wording, and the SynthAU size ranges); Snakemake's validate then fills the schema's defaults.
try:
    check_workflow(config, ", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml")
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, schema="../schemas/config.schema.yaml")

REPO = Path(au_ttt.__file__).resolve().parents[1]  # the checkout the package is installed from (editable)
WF = config["workflow"]
RESULTS = WF["results"]
DATA_KIND = WF["data"]
DATASETS = list(WF["datasets"])
PARTS = list(WF["test_parts"])
FULL = WF["full_variant"]
VARIANTS = list(config.get("variants", {}))
# Table III rows: the AU-TTT variants (a timm baseline variant, `arch: vit|resnet`, is a baseline row only)
ABLATION_VARIANTS = [v for v in VARIANTS if ((config["variants"] or {}).get(v) or {}).get("arch", "au_ttt") == "au_ttt"]
SEEDS = list(WF.get("seeds", [0]))  # every row trains each fold once per seed (train.seed)
PROBE = "hog_lr"  # the HOG + logistic-regression probe (au-ttt probe): a baseline without a config variant
BASELINES = list(WF.get("baselines", []))  # same-protocol rows of Tables I and II
BASELINE_WEIGHTS = WF.get("baseline_weights") or {}


def _write_resolved_config() -> str:
    """Dump the merged config (config.yaml + --configfile overrides) where every job reads it.

    Rewritten only when its content changes, so its timestamp never triggers anything; jobs rerun through
    their `params` (the sections they use), not through this file.
    """
    path = Path(RESULTS) / "config" / "resolved.yaml"
    text = yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=True)
    if not path.exists() or path.read_text() != text:
        atomic_write_text(path, text)
    try:  # the package's strict validation: typos in any section stop the DAG before it starts
        load_settings(path)
    except ConfigError as err:
        raise ValueError(f"invalid configuration (merged from the --configfile files): {err}") from None
    return str(path)


RESOLVED_CONFIG = _write_resolved_config()


# Every rule's threads, memory, run time and GPUs: defaults in au_ttt/resources.py, overrides in
# `workflow.resources` of the config. GPU requests live in the rules themselves (not in a profile's
# set-resources, which a user's own --set-resources would silently replace).
RES = resolve_resources(WF.get("resources"), f"{RESOLVED_CONFIG}: workflow.resources")

# Content digest of the whole au_ttt package: every rule takes it as a param, so editing any module reruns
# the jobs (Snakemake does not see imported code; a mere checkout that touches mtimes reruns nothing).
CODE = source_digest()


# Cheap bookkeeping jobs run on the submit host under a cluster executor.
# (synthau is added where it is defined: it exists only for SynthAU data)
localrules:
    all,
    data_products,
    pretrained_backbone,
    experiments,
    frame_index,
    pretrain_digits,
    tables,
    benchmark_figure,


if FULL not in VARIANTS:
    raise ValueError(f"workflow.full_variant {FULL!r} is not one of the config's variants: {VARIANTS}")
# Where the Table I/II backbone comes from: our own ImageNet pretraining job, a local timm ViT-S/16 file
# (pretrain.source: timm_checkpoint, no pretraining job), or nothing (pretrain.source: none = from scratch).
PRETRAIN_SOURCE = (config.get("pretrain") or {}).get("source", "imagenet")
USE_PRETRAINED = bool(WF["pretrain"]) and PRETRAIN_SOURCE != "none"
RUN_PRETRAIN = USE_PRETRAINED and PRETRAIN_SOURCE == "imagenet"
if USE_PRETRAINED and PRETRAIN_SOURCE == "timm_checkpoint" and not (config.get("pretrain") or {}).get("checkpoint"):
    raise ValueError(
        "pretrain.source is 'timm_checkpoint' but pretrain.checkpoint is not set: give the path of a "
        "local timm vit_small_patch16_224 file (.safetensors or .pth)"
    )

for _b in BASELINES:
    if _b != PROBE and _b not in VARIANTS:
        raise ValueError(
            f"workflow.baselines names {_b!r}, which is neither a config variant ({VARIANTS}) nor "
            f"{PROBE!r} (the HOG + logistic-regression probe)"
        )
    if _b in (FULL, PROBE) and BASELINE_WEIGHTS.get(_b):
        raise ValueError(f"workflow.baseline_weights.{_b}: only the timm baselines start from a timm file")

if DATA_KIND == "synthau" and "synthau" not in WF:
    raise ValueError(
        "workflow.data is 'synthau' but the workflow.synthau section (root, seed, sizes) is missing; "
        "copy it from config/config.yaml"
    )
if DATA_KIND == "real":
    for name in DATASETS + (["imagenet"] if RUN_PRETRAIN else []):
        if not WF["roots"].get(name):
            raise ValueError(
                f"workflow.data is 'real' but workflow.roots.{name} is not set; point it at your "
                f"licensed copy (see README 'Real data')"
            )


def print_plan() -> None:
    """The cost plan of this run (`au-ttt plan`) on the cores and GPUs Snakemake was given: what each stage
    will cost before it starts. Informative only: a failure to estimate never stops the run."""
    from au_ttt.planning import Resources, estimate, render_table

    try:
        gpu = workflow.global_resources.get("gpu")  # --resources gpu=N; unset: no GPU cap (CPU machine)
        gpus = int(getattr(gpu, "value", gpu) or 0)
        resources = Resources(cores=int(workflow.cores), gpus=gpus if gpus < 10**6 else 0)
        print(render_table(estimate(json.loads(json.dumps(config)), resources), resources))
    except Exception as err:  # the plan informs; it never stops a run
        print(f"(no cost plan: {err})")


DATASET_RE = "|".join(dataset_registry.names())  # every registered dataset (a plug-in's too), no other folder
# the datasets whose index reads decoded video frames (one folder per subject under frames_dir)
DECODED_RE = "|".join(d for d in dataset_registry.names() if dataset_registry.get(d).frames_required)


wildcard_constraints:
    dataset=DATASET_RE,
    shard="[A-Za-z0-9_]+",
    subject="[A-Za-z0-9_]+",
    source=DATASET_RE,
    target=DATASET_RE,
    init="pretrained|scratch|timm|fit",
    part="[123]",
    seed="[0-9]+",
    member="seed[0-9]+|fit",


def section_params(*sections) -> str:
    """Hash of the config sections a job depends on: Snakemake's params trigger reruns it when they change."""

    def pick(key):
        node = config
        for part in key.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node

    return json_digest({s: pick(s) for s in sections}, compact=False)[:16]


def run_subjects(dataset: str) -> list[str]:
    """The subjects this run reads, known at parse time: SynthAU's generated ones, or every published subject
    (a licensed copy that lacks one gets an empty shard, which the stages and the gather accept)."""
    if DATA_KIND == "synthau":
        return first_subjects(dataset, WF["synthau"]["subjects_per_part"])
    return [s for part in (1, 2, 3) for s in PUBLISHED_PARTS[dataset][part]]


# Preprocessing shards per dataset: workflow.shard_subjects subjects each (default 1: one job per subject).
SHARDS = {d: shard_subjects(run_subjects(d), WF.get("shard_subjects", 1)) for d in dataset_registry.names()}


def shard_dir(dataset: str, shard: str) -> str:
    return f"{RESULTS}/data/{dataset}/shards/{shard}"


def get_shard_subjects(wildcards) -> list[str]:
    return list(SHARDS[wildcards.dataset][wildcards.shard])


def get_shard_dirs(wildcards) -> list[str]:
    return [shard_dir(wildcards.dataset, s) for s in SHARDS[wildcards.dataset]]


def get_gather_inputs(wildcards) -> dict[str, list[str] | str]:
    dirs = get_shard_dirs(wildcards)
    return {
        "index": f"{RESULTS}/data/{wildcards.dataset}/index.parquet",
        "landmarks": [f"{d}/landmarks.npz" for d in dirs],
        "crops": [f"{d}/crops" for d in dirs],
        "heatmaps": [f"{d}/heatmaps" for d in dirs],
    }


def raw_root(dataset: str) -> str:
    if DATA_KIND == "synthau":
        return f"{WF['synthau']['root']}/{dataset_registry.get(dataset).synth_folder}"
    return WF["roots"][dataset]


def image_root(dataset: str) -> str:
    """Where the index's image paths are relative to: BP4D frames in place, DISFA's decoded frames."""
    return frames_dir(dataset) if dataset_registry.get(dataset).frames_required else raw_root(dataset)


def frames_dir(dataset: str) -> str:
    """Decoded frames of a dataset whose index reads them (``frames_required``), one folder per subject."""
    return f"{RESULTS}/data/{dataset}/frames"


def data_dir(dataset: str) -> str:
    return f"{RESULTS}/data/{dataset}"


def run_dir(dataset, init, variant, part, seed) -> str:
    return f"{RESULTS}/runs/{dataset}/{init}/{variant}/seed{seed}/test{part}"


def probe_dir(dataset, part) -> str:
    """The probe's fold: a closed-form fit, the same for every seed."""
    return f"{RESULTS}/runs/{dataset}/fit/{PROBE}/test{part}"


FULL_INIT = "pretrained" if USE_PRETRAINED else "scratch"


def baseline_init(variant: str) -> str:
    """A timm baseline with a file in workflow.baseline_weights starts from it ("timm"), else from scratch."""
    return "timm" if BASELINE_WEIGHTS.get(variant) else "scratch"


def table1_runs() -> list[str]:
    return [run_dir(d, FULL_INIT, FULL, p, s) for d in DATASETS for p in PARTS for s in SEEDS]


def table3_runs() -> list[str]:
    return [
        run_dir(WF["ablation_dataset"], "scratch", v, p, s) for v in ABLATION_VARIANTS for p in PARTS for s in SEEDS
    ]


def baseline_runs() -> list[str]:
    """Same-protocol baseline folds (our attention control's ablation-dataset folds are Table III's own runs)."""
    return [
        probe_dir(d, p) if v == PROBE else run_dir(d, baseline_init(v), v, p, s)
        for v in BASELINES
        for d in DATASETS
        for p in PARTS
        for s in ([0] if v == PROBE else SEEDS)
    ]


def _directions() -> list[tuple[str, str]]:
    return [(s, t) for s in DATASETS for t in DATASETS if s != t]


def cross_dirs() -> list[str]:
    return [f"{RESULTS}/cross/{FULL_INIT}/{FULL}/seed{seed}/{s}_to_{t}" for s, t in _directions() for seed in SEEDS]


def baseline_cross_dirs() -> list[str]:
    return [
        (
            f"{RESULTS}/cross/fit/{v}/fit/{s}_to_{t}"
            if v == PROBE
            else f"{RESULTS}/cross/{baseline_init(v)}/{v}/seed{seed}/{s}_to_{t}"
        )
        for v in BASELINES
        for s, t in _directions()
        for seed in ([0] if v == PROBE else SEEDS)
    ]


def table_inputs(dirs: list[str]) -> list[str]:
    """What `au-ttt tables` reads from each run or evaluation directory."""
    return [f"{d}/{name}" for d in dirs for name in ("metrics.json", "predictions.parquet")]


# Real data: `au-ttt data check` compares each licensed copy with the published protocol before anything
# else runs (published counts; `structure` for format replicas and rehearsals; `off` skips it).
CHECK = WF.get("data_check", "published")


def get_data_products() -> list[str]:
    return [f"{data_dir(d)}/{what}" for d in DATASETS for what in ("index.parquet", "crops", "heatmaps")]


def get_pretrain_products() -> list[str]:
    return [f"{RESULTS}/pretrain/backbone.safetensors"] if RUN_PRETRAIN else []


def get_experiment_products() -> list[str]:
    runs = table1_runs() + table3_runs() + baseline_runs() + cross_dirs() + baseline_cross_dirs()
    return [f"{r}/metrics.json" for r in runs]


def get_final_outputs() -> list[str]:
    return [
        f"{RESULTS}/tables/table1.md",
        f"{RESULTS}/tables/table2.md",
        f"{RESULTS}/tables/table3.md",
        f"{RESULTS}/figures/figure1.png",
        f"{RESULTS}/figures/curves.png",
        f"{RESULTS}/metrics.json",
        f"{RESULTS}/REPORT.md",
        f"{RESULTS}/figures/benchmark.png",
    ]


def raw_marker(wildcards=None) -> list[str]:
    """The SynthAU manifest when the data are generated; nothing (external files) for real data."""
    return [f"{WF['synthau']['root']}/synthau.json"] if DATA_KIND == "synthau" else []


def get_synth_root(wildcards, output) -> str:
    return str(Path(output.manifest).parent)


def get_output_dir(wildcards, output) -> str:
    """Folder of a rule's first output (for commands that take an output directory)."""
    return str(Path(output[0]).parent)


def get_report_root(wildcards, output) -> str:
    return str(Path(output.report).parent)


def get_raw_root(wildcards) -> str:
    return raw_root(wildcards.dataset)


def get_index_inputs(wildcards) -> list[str]:
    """The raw data (SynthAU's manifest), DISFA's decoded videos, and the pre-flight check for real data."""
    decoded = dataset_registry.get(wildcards.dataset).frames_required
    frames = [f"{frames_dir(wildcards.dataset)}/{s}" for s in run_subjects(wildcards.dataset)] if decoded else []
    check = [f"{RESULTS}/data/{wildcards.dataset}/check.json"] if DATA_KIND == "real" and CHECK != "off" else []
    return raw_marker() + frames + check


def get_frames_arg(wildcards) -> list[str]:
    """Optional arguments are lists: `{params.x:q}` quotes each word and an empty list adds nothing."""
    decoded = dataset_registry.get(wildcards.dataset).frames_required
    return ["--frames", image_root(wildcards.dataset)] if decoded else []


def get_image_root(wildcards) -> str:
    return image_root(wildcards.dataset)


def get_pretrain_data(wildcards=None) -> str:
    """Pretraining images (an input function: only evaluated when the pretrain job is part of the DAG)."""
    return f"{RESULTS}/pretrain/digits" if DATA_KIND == "synthau" else WF["roots"]["imagenet"]


def get_train_inputs(wildcards) -> dict[str, list[str] | str]:
    d = data_dir(wildcards.dataset)
    inputs = {"index": f"{d}/index.parquet", "crops": f"{d}/crops", "heatmaps": f"{d}/heatmaps"}
    if wildcards.init == "pretrained":
        inputs["backbone"] = (
            f"{RESULTS}/pretrain/backbone.safetensors"
            if PRETRAIN_SOURCE == "imagenet"
            else config["pretrain"]["checkpoint"]
        )
    elif wildcards.init == "timm":
        inputs["backbone"] = BASELINE_WEIGHTS[wildcards.variant]
    return inputs


def get_pretrained_arg(wildcards, input) -> list[str]:
    return ["--pretrained", input.backbone if wildcards.init in ("pretrained", "timm") else "none"]


def get_train_params(wildcards) -> str:
    return section_params("model", "loss", "train", "heatmaps", f"variants.{wildcards.variant}")


def get_parent_name(wildcards) -> str:
    """MLflow parent = the table row this run belongs to (a Table III run shared by a baseline row keeps
    Table III's)."""
    if (
        wildcards.init == "scratch"
        and wildcards.variant in ABLATION_VARIANTS
        and wildcards.dataset == WF["ablation_dataset"]
    ):
        return f"table3/{wildcards.dataset}/{wildcards.variant}"
    table = "table1" if wildcards.variant == FULL else "baselines"
    return f"{table}/{wildcards.dataset}/{wildcards.variant}"


def get_cross_inputs(wildcards) -> dict[str, str]:
    d = data_dir(wildcards.target)
    part = WF["cross_domain_model_part"]
    run = (
        probe_dir(wildcards.source, part)
        if wildcards.member == "fit"
        else run_dir(wildcards.source, wildcards.init, wildcards.variant, part, wildcards.member.removeprefix("seed"))
    )
    return {
        "run": f"{run}/metrics.json",
        "index": f"{d}/index.parquet",
        "crops": f"{d}/crops",
        "heatmaps": f"{d}/heatmaps",
    }


def get_cross_part_arg(wildcards) -> list[str]:
    return ["--target-part", "1"] if WF["cross_domain_test"] == "fgnet_part1" else []


def get_run_dir(wildcards, input) -> str:
    return str(Path(input.run).parent)
