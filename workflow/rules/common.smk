# Configuration validation, the resolved config the `au-ttt` commands read, and the input/param helpers.
import hashlib
import json
from pathlib import Path

import yaml
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

import au_ttt  # noqa: E402  (the package must be installed: `make setup`)
from au_ttt.config import ConfigError  # noqa: E402
from au_ttt.fileio import atomic_write_text  # noqa: E402
from au_ttt.settings import load_settings  # noqa: E402

REPO = Path(au_ttt.__file__).resolve().parents[1]  # the checkout the package is installed from (editable)
WF = config["workflow"]
RESULTS = WF["results"]
DATA_KIND = WF["data"]
DATASETS = list(WF["datasets"])
PARTS = list(WF["test_parts"])
FULL = WF["full_variant"]
VARIANTS = list(config.get("variants", {}))


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


def _gpus_here() -> int:
    """GPU jobs claim `gpu=1` only where GPUs exist, so a CPU-only machine runs jobs in parallel; on a
    cluster the profile's `set-resources` requests GPUs explicitly (profiles/slurm)."""
    from au_ttt.train.gpu_slots import discover_pool

    return 1 if discover_pool() else 0


GPU = _gpus_here()

if FULL not in VARIANTS:
    raise ValueError(f"workflow.full_variant {FULL!r} is not one of the config's variants: {VARIANTS}")
if DATA_KIND == "real":
    for name in DATASETS + (["imagenet"] if WF["pretrain"] else []):
        if not WF["roots"].get(name):
            raise ValueError(f"workflow.data is 'real' but workflow.roots.{name} is not set; point it at your "
                             f"licensed copy (see README 'Real data')")


wildcard_constraints:
    dataset="bp4d|disfa",
    source="bp4d|disfa",
    target="bp4d|disfa",
    init="pretrained|scratch",
    part="[123]",


def section_params(*sections) -> str:
    """Hash of the config sections a job depends on: Snakemake's params trigger reruns it when they change."""
    def pick(key):
        node = config
        for part in key.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node

    blob = json.dumps({s: pick(s) for s in sections}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def code(*patterns) -> list[str]:
    """Package files whose edits change a job's result (Snakemake does not see imported code itself)."""
    # relative to the working directory when the DAG runs in the checkout, absolute under `-d elsewhere`
    base = REPO if Path.cwd().resolve() == REPO else None
    files = sorted({str(p.relative_to(base) if base else p) for pat in patterns for p in REPO.glob(f"au_ttt/{pat}")})
    if not files:
        raise ValueError(f"no package files match {patterns}")
    return files


CODE_DATA = ["data/protocol.py", "data/bp4d.py", "data/disfa.py", "data/frame_index.py", "data/video.py"]
CODE_FEATURES = ["data/landmarks.py", "data/landmark_files.py", "data/align.py", "data/heatmaps.py",
                 "data/au_regions.py"]
CODE_MODEL = ["model/*.py", "losses.py", "train/loop.py", "train/evaluate.py", "train/data.py",
              "train/checkpoint.py", "data/dataset.py", "data/transforms.py", "data/heatmaps.py", "metrics.py"]


def raw_root(dataset: str) -> str:
    if DATA_KIND == "synthau":
        return f"{WF['synthau']['root']}/{'BP4D' if dataset == 'bp4d' else 'DISFA'}"
    return WF["roots"][dataset]


def image_root(dataset: str) -> str:
    """Where the index's image paths are relative to: BP4D frames in place, DISFA's decoded frames."""
    return raw_root(dataset) if dataset == "bp4d" else f"{RESULTS}/data/disfa/frames"


def data_dir(dataset: str) -> str:
    return f"{RESULTS}/data/{dataset}"


def run_dir(dataset, init, variant, part) -> str:
    return f"{RESULTS}/runs/{dataset}/{init}/{variant}/test{part}"


def table1_runs() -> list[str]:
    init = "pretrained" if WF["pretrain"] else "scratch"
    return [run_dir(d, init, FULL, p) for d in DATASETS for p in PARTS]


def table3_runs() -> list[str]:
    return [run_dir(WF["ablation_dataset"], "scratch", v, p) for v in VARIANTS for p in PARTS]


def cross_dirs() -> list[str]:
    return [f"{RESULTS}/cross/{s}_to_{t}" for s in DATASETS for t in DATASETS if s != t]


def get_data_products() -> list[str]:
    return [f"{data_dir(d)}/{what}" for d in DATASETS for what in ("index.parquet", "crops", "heatmaps")]


def get_pretrain_products() -> list[str]:
    return [f"{RESULTS}/pretrain/backbone.safetensors"] if WF["pretrain"] else []


def get_experiment_products() -> list[str]:
    return [f"{r}/metrics.json" for r in table1_runs() + table3_runs()] + [f"{c}/metrics.json" for c in cross_dirs()]


def get_final_outputs() -> list[str]:
    return [f"{RESULTS}/tables/table1.md", f"{RESULTS}/tables/table2.md", f"{RESULTS}/tables/table3.md",
            f"{RESULTS}/figures/figure1.png", f"{RESULTS}/REPORT.md"]


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
    frames = [f"{RESULTS}/data/disfa/frames"] if wildcards.dataset == "disfa" else []
    return raw_marker() + frames + code(*CODE_DATA)


def get_frames_arg(wildcards) -> str:
    return f"--frames {RESULTS}/data/disfa/frames" if wildcards.dataset == "disfa" else ""


def get_image_root(wildcards) -> str:
    return image_root(wildcards.dataset)


def get_pretrain_data() -> str:
    return f"{RESULTS}/pretrain/digits" if DATA_KIND == "synthau" else WF["roots"]["imagenet"]


def get_train_inputs(wildcards) -> dict[str, list[str] | str]:
    d = data_dir(wildcards.dataset)
    inputs = {"index": f"{d}/index.parquet", "crops": f"{d}/crops", "heatmaps": f"{d}/heatmaps",
              "code": code(*CODE_MODEL)}
    if wildcards.init == "pretrained":
        inputs["backbone"] = f"{RESULTS}/pretrain/backbone.safetensors"
    return inputs


def get_pretrained_arg(wildcards, input) -> str:
    return f"--pretrained {input.backbone}" if wildcards.init == "pretrained" else "--pretrained none"


def get_train_params(wildcards) -> str:
    return section_params("model", "loss", "train", "heatmaps", f"variants.{wildcards.variant}")


def get_parent_name(wildcards) -> str:
    """MLflow parent = the table row this run belongs to."""
    table = "table3" if wildcards.init == "scratch" else "table1"
    return f"{table}/{wildcards.dataset}/{wildcards.variant}"


def get_cross_inputs(wildcards) -> dict[str, str]:
    init = "pretrained" if WF["pretrain"] else "scratch"
    d = data_dir(wildcards.target)
    return {"run": f"{run_dir(wildcards.source, init, FULL, WF['cross_domain_model_part'])}/metrics.json",
            "index": f"{d}/index.parquet", "crops": f"{d}/crops", "heatmaps": f"{d}/heatmaps"}


def get_cross_part_arg(wildcards) -> str:
    return "--target-part 1" if WF["cross_domain_test"] == "fgnet_part1" else ""
