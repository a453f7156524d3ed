"""The cost plan: the work of every DAG stage for a config, and its hours on given resources.

``estimate(config, resources)`` is a pure function of the merged config dict (the one Snakemake holds) and
the resources, so the DAG can print the plan when it starts and docs can reuse it; it imports no torch.

Work per stage comes from the config: SynthAU sizes from ``workflow.synthau``, real data from the published
protocol counts (:mod:`au_ttt.data.protocol`: 146,847 BP4D and 130,814 DISFA frames), ImageNet-1K from
:mod:`au_ttt.planning.rates`. Hours follow one rule for every stage:

    job seconds = items of the job × seconds per item (+ job start-up)
    wall        = max(Σ job seconds / parallel slots, longest job)      device-hours = Σ job seconds / 3600

Slots: CPU stages run one job per core (cores × nodes; sharded stages have one job per shard of
``SHARD_SUBJECTS`` subjects); training and cross-domain jobs take one GPU each (GPUs × nodes); pretraining
is one DDP job on the GPUs of one node with linear scaling. Without GPUs, GPU stages run on CPU threads
(``train.threads`` per job, 0 = a whole node), linear in threads — optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from au_ttt.config import ConfigError
from au_ttt.data.check_report import DEFAULT_SAMPLE
from au_ttt.data.protocol import PARTS, first_subjects, shard_subjects
from au_ttt.data.synth_limits import check_synthau_sizes
from au_ttt.datasets import registry as dataset_registry
from au_ttt.errors import InputError
from au_ttt.planning.loading import data_loading
from au_ttt.planning.rates import IMAGENET_TRAIN_IMAGES, IMAGENET_VAL_IMAGES, Geometry, RateBook

__all__ = ["SHARD_SUBJECTS", "DatasetSize", "Resources", "StageEstimate", "data_sizes", "estimate",
           "model_geometry", "pretrain_batch", "pretraining_gpu_days", "scan_path", "train_batch"]

# Subjects per preprocessing shard: the config key and its default (per subject, issue 10 item 1).
SHARD_SUBJECTS = ("workflow.shard_subjects", 1)
# SynthAU frame sizes (width, height): au_ttt.data.synth.render.DOMAINS (a test keeps them equal).
SYNTHAU_FRAME_SIZE = {n: dataset_registry.get(n).synth_frame_size for n in dataset_registry.synth_names()}
# sklearn's digits (1,797 images), 20 % held out: au_ttt.train.pretrain.write_digits_imagefolder.
DIGITS_TRAIN, DIGITS_VAL = 1438, 359
_MISSING = object()


@dataclass(frozen=True)
class Resources:
    """Per node: CPU cores and GPUs; nodes: how many such machines (Slurm) the jobs spread over."""

    cores: int = 1
    gpus: int = 0
    nodes: int = 1

    def __post_init__(self) -> None:
        for name, low in (("cores", 1), ("gpus", 0), ("nodes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"--{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class StageEstimate:
    """One DAG stage: its work, the cost per item it assumes (and where that comes from), and its hours."""

    stage: str
    jobs: int
    work: str
    items: float
    unit: str
    device: str           # "cpu" (per core) or "gpu" (per GPU); "-" when nothing runs
    per_item_s: float     # seconds per item on one core / one GPU
    source: str
    slots: int            # jobs (or, for one multi-GPU job, GPUs) working at once
    wall_h: float
    device_h: float       # core-hours or GPU-hours
    note: str = ""


@dataclass(frozen=True)
class DatasetSize:
    """Frames per subject (in published part order), the part of each subject, and the frame size."""

    name: str
    frames: dict[str, float]
    part: dict[str, int]
    pixels: int
    sequences: int

    def total(self, parts: tuple[int, ...] = (1, 2, 3)) -> float:
        return sum(n for s, n in self.frames.items() if self.part[s] in parts)


# ----------------------------------------------------------------------------------- reading the config
def _get(cfg: Mapping, key: str, kind: type | tuple, source: str, default: Any = _MISSING, *,
         minimum: float | None = None, choices: tuple | None = None) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise ConfigError(f"{source}: required key '{key}' is missing")
            return default
        node = node[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(node, kinds) and (bool in kinds or not isinstance(node, bool))  # True is not an int here
    if not ok or (choices is not None and node not in choices) or (minimum is not None and node < minimum):
        allowed = f"one of {', '.join(map(repr, choices))}" if choices else getattr(kind, "__name__", str(kind))
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(f"{source}: key '{key}' has value {node!r}; allowed: {allowed}{bound}")
    return node


def _datasets(cfg: Mapping, source: str) -> list[str]:
    datasets = _get(cfg, "workflow.datasets", list, source)
    if not datasets or any(d not in PARTS for d in datasets):
        raise ConfigError(f"{source}: key 'workflow.datasets' has {datasets!r}; allowed: a list of {', '.join(PARTS)}")
    return datasets


def data_sizes(cfg: Mapping, source: str = "<config>") -> dict[str, DatasetSize]:
    """Frames per subject of each dataset the DAG prepares (``workflow.datasets`` and the ablation dataset):
    SynthAU's generated sizes or the published counts."""
    kind = _get(cfg, "workflow.data", str, source, choices=("synthau", "real"))
    datasets = _datasets(cfg, source)
    ablation = _get(cfg, "workflow.ablation_dataset", str, source, choices=tuple(PARTS))
    out = {}
    for name in datasets + [d for d in (ablation,) if d not in datasets]:
        spec, parts = dataset_registry.get(name), PARTS[name]
        if kind == "real":
            size, sequences = spec.frame_size, spec.sequences
            frames = {s: spec.published_subject_frames(s, p) for p, subs in parts.items() for s in subs}
        else:
            spp = _get(cfg, "workflow.synthau.subjects_per_part", int, source)
            tasks = (_get(cfg, f"workflow.synthau.{spec.synth_sequences_key}", int, source)
                     if spec.synth_sequences_key else 1)
            per = _get(cfg, f"workflow.synthau.{spec.synth_frames_key}", int, source) * tasks
            check_synthau_sizes(cfg["workflow"]["synthau"], source)  # the ranges `au-ttt synth` accepts
            frames = {s: float(per) for s in first_subjects(name, spp)}
            size, sequences = spec.synth_frame_size, tasks
        part = {s: p for p, subs in parts.items() for s in subs}
        out[name] = DatasetSize(name, frames, part, size[0] * size[1], sequences)
    return out


def train_batch(cfg: Mapping, source: str = "<config>") -> int:
    """Per-GPU batch of fold training and of its evaluations (``train.batch_size``)."""
    return _get(cfg, "train.batch_size", int, source, 64, minimum=1)


def pretrain_batch(cfg: Mapping, source: str = "<config>", gpus: int = 1) -> int:
    """Per-GPU batch of ImageNet pretraining: the global ``pretrain.batch_size`` split over the GPUs (DDP),
    as :func:`au_ttt.train.pretrain.pretrain` splits it."""
    return max(1, _get(cfg, "pretrain.batch_size", int, source, 1024, minimum=1) // max(gpus, 1))


def scan_path(cfg: Mapping, source: str = "<config>") -> tuple[str, str]:
    """Which AU-TTT op profiles price the config's GPU steps, and why: the Triton scan kernels (what
    ``backend="auto"`` runs on CUDA) unless ``model.compile`` (no compiled profile exists: the plan then
    prices eager and says so)."""
    if _get(cfg, "model.compile", bool, source, False):
        return "compiled", "model.compile: true"
    return "triton", "model.compile: false: on CUDA the scan runs as the Triton kernels"


def model_geometry(cfg: Mapping, source: str = "<config>") -> Geometry:
    """The model's cost-relevant sizes (defaults: ViT-S/16 at 224 px, as ModelConfig's)."""
    return Geometry(*(_get(cfg, f"model.{k}", int, source, d, minimum=1) for k, d in
                      (("img_size", 224), ("patch_size", 16), ("embed_dim", 384), ("depth", 12))))


# ------------------------------------------------------------------------------------------ the stages
def _stage(stage: str, seconds: list[float], slots: int, device: str, work: str, items: float, unit: str,
           per_item: float, source: str, note: str = "", workers_per_job: int = 1) -> StageEstimate:
    """The module's rule: wall = max(Σ job seconds / slots, longest job); device-hours = Σ × workers per job."""
    if not seconds:
        return StageEstimate(stage, 0, work, 0.0, unit, "-", 0.0, source, 0, 0.0, 0.0, note)
    slots = max(1, min(slots, len(seconds)))
    wall = max(sum(seconds) / slots, max(seconds))
    return StageEstimate(stage, len(seconds), work, float(items), unit, device, per_item, source,
                         slots * workers_per_job, wall / 3600, sum(seconds) * workers_per_job / 3600, note)


def _shards(size: DatasetSize, per_shard: int) -> list[float]:
    """Frames of each preprocessing shard, grouped as the DAG groups them."""
    return [sum(size.frames[s] for s in group) for group in shard_subjects(list(size.frames), per_shard).values()]


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if n >= 100 or n == int(n) else f"{n:,.1f}"


def _cpu_stage(stage: str, jobs: list[tuple[float, float]], startup: float, slots: int, work: str, unit: str,
               source: str, note: str = "") -> StageEstimate:
    """A CPU stage from (items, seconds per item) per job; per item reported as the items' mean."""
    items = sum(n for n, _ in jobs)
    seconds = [n * per + startup for n, per in jobs]
    mean = sum(n * per for n, per in jobs) / items if items else 0.0
    return _stage(stage, seconds, slots, "cpu", work, items, unit, mean, source, note)


def _scaled_source(rates: RateBook, key: str) -> str:
    rate = rates.stages[key]
    return rate.source + ("; scaled to each dataset's frame size (cost ∝ pixels)" if rate.pixels else "")


def _preprocessing(cfg: Mapping, sizes: dict[str, DatasetSize], res: Resources, rates: RateBook,
                   source: str) -> list[StageEstimate]:
    startup = rates.stage("job_startup")[0]
    cores = res.cores * res.nodes
    names = " + ".join(f"{_fmt(s.total())} {n.upper()}" for n, s in sizes.items())
    out = []
    if cfg["workflow"]["data"] == "real":
        jobs = [(s.sequences * len(s.frames) * DEFAULT_SAMPLE, rates.stage("data_check", s.pixels)[0])
                for s in sizes.values()]
        out.append(_cpu_stage("data check", jobs, startup, cores, f"{_fmt(sum(n for n, _ in jobs))} sampled "
                              f"images ({DEFAULT_SAMPLE} per sequence) + label files", "images",
                              _scaled_source(rates, "data_check")))
    else:
        per, src = rates.stage("synthau")
        out.append(_cpu_stage("SynthAU", [(sum(s.total() for s in sizes.values()), per)], startup, 1,
                              f"{names} frames", "frames", src))
    for d in (s for s in sizes.values() if dataset_registry.get(s.name).frames_required):
        per, src = rates.stage("disfa_frames", d.pixels)
        jobs = [(n, per) for n in d.frames.values()]
        out.append(_cpu_stage(f"{dataset_registry.get(d.name).title} frames", jobs, startup, cores,
                              f"{_fmt(d.total())} frames, one job per video", "frames", src))
    per, src = rates.stage("index")
    out.append(_cpu_stage("frame index", [(s.total(), per) for s in sizes.values()], startup, cores,
                          f"{names} frames, one job per dataset", "frames", src))
    per_shard = _get(cfg, SHARD_SUBJECTS[0], int, source, SHARD_SUBJECTS[1], minimum=1)
    backend = _get(cfg, "landmarks.backend", str, source, "dlib", choices=("dlib", "face_alignment", "provided"))
    upsample = _get(cfg, "landmarks.dlib_upsample", int, source, 1, minimum=0)
    for stage, key in (("landmarks", f"landmarks.{backend}"), ("crops", "crops"), ("heatmaps", "heatmaps")):
        jobs = []
        for s in sizes.values():
            pixels = s.pixels * (4 ** upsample if key == "landmarks.dlib" else 1)  # HOG upsampling ×2 per side
            jobs += [(n, rates.stage(key, pixels)[0]) for n in _shards(s, per_shard)]
        src = _scaled_source(rates, key)
        note = (f"backend {backend}" + (f", upsample {upsample}" if backend == "dlib" else "")
                if stage == "landmarks" else "")
        plural = "s" if per_shard > 1 else ""
        out.append(_cpu_stage(stage, jobs, startup, cores, f"{names} frames, {len(jobs)} shards of {per_shard} "
                              f"subject{plural}", "frames", src, note))
    return out


def _model_device(res: Resources, threads: int) -> tuple[str, int, int]:
    """(device, slots, threads per job): one GPU per job, else CPU jobs of ``threads`` threads."""
    if res.gpus:
        return "gpu", res.gpus * res.nodes, 1
    t = min(threads or res.cores, res.cores)
    return "cpu", res.nodes * max(1, res.cores // t), t


def _pretrain(cfg: Mapping, geometry: Geometry, res: Resources, rates: RateBook, source: str) -> StageEstimate:
    enabled = _get(cfg, "workflow.pretrain", bool, source, True)
    how = _get(cfg, "pretrain.source", str, source, "imagenet", choices=("imagenet", "timm_checkpoint", "none"))
    if not enabled or how != "imagenet":
        why = "workflow.pretrain: false" if not enabled else f"pretrain.source: {how}"
        extra = ": AU-TTT starts from a timm ViT-S/16 file" if enabled and how == "timm_checkpoint" else ""
        return _stage("pretraining", [], 0, "-", f"none ({why})", 0.0, "images", 0.0, "", f"0 GPU-hours{extra}")
    epochs = _get(cfg, "pretrain.epochs", int, source, 300, minimum=1)
    steps = _get(cfg, "pretrain.max_steps", int, source, 0, minimum=0)
    batch = _get(cfg, "pretrain.batch_size", int, source, 1024, minimum=1)
    real = cfg["workflow"]["data"] == "real"
    train_n, val_n, what = ((IMAGENET_TRAIN_IMAGES, IMAGENET_VAL_IMAGES, "ImageNet-1K") if real
                            else (DIGITS_TRAIN, DIGITS_VAL, "digits"))
    images = steps * batch if steps else epochs * train_n
    work = (f"{steps:,} steps x {batch} images" if steps else f"{epochs} epochs x {train_n:,} {what} images") \
        + f" + {val_n:,} validation images"
    device, workers = ("gpu", res.gpus) if res.gpus else ("cpu", res.cores)
    per_gpu = pretrain_batch(cfg, source, workers) if device == "gpu" else None
    train_rate, src = rates.model(geometry, device, "pretrain", per_gpu)
    eval_rate = rates.model(geometry, device, "eval", per_gpu)[0]
    seconds = (images / train_rate + val_n / eval_rate) / workers + rates.stage("job_startup")[0]
    unit = "GPU" if device == "gpu" else "core"
    note = (f"one job on the {workers} {unit}{'s' if workers > 1 else ''} of one node"
            + (" (DDP)" if device == "gpu" and workers > 1 else "")
            + (f", batch {per_gpu} per GPU" if per_gpu else "") + ", linear scaling assumed")
    return _stage("pretraining", [seconds], 1, device, work, images + val_n, "images", 1 / train_rate, src, note,
                  workers_per_job=workers)


def _runs(cfg: Mapping, sizes: dict[str, DatasetSize], source: str) -> list[tuple[str, int, str]]:
    """(dataset, test part, run) of every training job, deduplicated like the DAG's run folders."""
    parts = _get(cfg, "workflow.test_parts", list, source)
    if not parts or any(p not in (1, 2, 3) for p in parts):
        raise ConfigError(f"{source}: key 'workflow.test_parts' has {parts!r}; allowed: a list of 1, 2, 3")
    variants = _get(cfg, "variants", Mapping, source)
    if not variants:
        raise ConfigError(f"{source}: 'variants' is empty; define at least the full model (Table III rows)")
    full = _get(cfg, "workflow.full_variant", str, source, choices=tuple(variants))
    ablation = cfg["workflow"]["ablation_dataset"]  # checked by data_sizes
    init = "pretrained" if _get(cfg, "workflow.pretrain", bool, source, True) else "scratch"
    seeds = cfg["workflow"].get("seeds") or [0]
    table3 = [v for v in variants if ((variants[v] or {}).get("arch", "au_ttt")) == "au_ttt"]
    weights = cfg["workflow"].get("baseline_weights") or {}
    # same-protocol baselines with a config variant (the probe is a closed-form fit: not a training job)
    baselines = [v for v in cfg["workflow"].get("baselines") or [] if v in variants]
    runs = {(d, p, f"{d}/{init}/{full}/seed{s}") for d in _datasets(cfg, source) for p in parts for s in seeds}
    runs |= {(ablation, p, f"{ablation}/scratch/{v}/seed{s}") for v in table3 for p in parts for s in seeds}
    runs |= {(d, p, f"{d}/{'timm' if weights.get(v) else 'scratch'}/{v}/seed{s}") for v in baselines
             for d in _datasets(cfg, source) for p in parts for s in seeds}
    return sorted(runs)


def _training(cfg: Mapping, sizes: dict[str, DatasetSize], geometry: Geometry, res: Resources, rates: RateBook,
              source: str) -> list[StageEstimate]:
    epochs = _get(cfg, "train.epochs", int, source, minimum=1)
    every = _get(cfg, "train.eval_every", int, source, 1, minimum=1)
    threads = _get(cfg, "train.threads", int, source, 0, minimum=0)
    batch = train_batch(cfg, source)
    evals = epochs // every + (epochs % every > 0) + 1  # scheduled evaluations + the final one
    device, slots, t = _model_device(res, threads)
    train_rate, src = rates.model(geometry, device, "train", batch)
    eval_rate, src_eval = rates.model(geometry, device, "eval", batch)
    startup = rates.stage("job_startup")[0]
    runs = _runs(cfg, sizes, source)
    seconds, images = [], 0.0
    for dataset, part, _ in runs:
        test = sizes[dataset].total((part,))
        train = sizes[dataset].total() - test
        seconds.append((epochs * train / train_rate + evals * test / eval_rate) / t + startup)
        images += epochs * train + evals * test
    unit = "GPU" if device == "gpu" else f"{t}-thread CPU job"
    train_est = _stage("training", seconds, slots, device, f"{len(runs)} runs x ({epochs} epochs of the training "
                       f"parts + {evals} evaluations of the test part)", images, "images", 1 / train_rate, src,
                       f"one {unit} per run; every variant costed as the full model", workers_per_job=t)
    mode = _get(cfg, "workflow.cross_domain_test", str, source, "entire", choices=("entire", "fgnet_part1"))
    datasets = _datasets(cfg, source)
    targets = [d for s in datasets for d in datasets if s != d]
    frames = [sizes[d].total((1,) if mode == "fgnet_part1" else (1, 2, 3)) for d in targets]
    what = "target part 1" if mode == "fgnet_part1" else "whole target"
    cross_est = _stage("cross-domain evaluation", [n / eval_rate / t + startup for n in frames], slots, device,
                       f"{len(targets)} directions x the {what} ({' + '.join(_fmt(n) for n in frames) or '0'} "
                       "frames)", sum(frames), "images", 1 / eval_rate, src_eval, workers_per_job=t)
    return [train_est, cross_est]


def estimate(config: Mapping, resources: Resources, rates: RateBook | None = None,
             source: str = "<config>") -> list[StageEstimate]:
    """Every stage of the DAG for ``config`` (the merged config dict) on ``resources``, in DAG order."""
    if not isinstance(resources, Resources):
        raise InputError(f"resources must be a Resources(cores, gpus, nodes), got {resources!r}")
    rates = rates or RateBook()
    sizes = data_sizes(config, source)
    geometry = model_geometry(config, source)
    out = _preprocessing(config, sizes, resources, rates, source)
    out.append(_pretrain(config, geometry, resources, rates, source))
    out += _training(config, sizes, geometry, resources, rates, source)
    out.append(StageEstimate(**data_loading(out, resources, rates)))
    per, src = rates.stage("tables")
    out.append(_stage("tables", [per], 1, "cpu", "Tables I-III, Figure 1, REPORT.md", 1, "jobs", per, src))
    return out


def pretraining_gpu_days(config: Mapping, rates: RateBook | None = None, source: str = "<config>",
                         gpus: int = 1) -> float:
    """GPU-days of ImageNet-1K pretraining of the config's model (pretrain.epochs × 1.28 M images + validation),
    at the GPU rates of ``rates`` with the global batch split over ``gpus``, whatever the config's data."""
    rates = rates or RateBook()
    geometry = model_geometry(config, source)
    epochs = _get(config, "pretrain.epochs", int, source, 300, minimum=1)
    per_gpu = pretrain_batch(config, source, gpus)
    train = rates.model(geometry, "gpu", "pretrain", per_gpu)[0]
    val = rates.model(geometry, "gpu", "eval", per_gpu)[0]
    return (epochs * IMAGENET_TRAIN_IMAGES / train + IMAGENET_VAL_IMAGES / val) / 86400
