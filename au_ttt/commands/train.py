"""Train AU-TTT on one fold of one dataset (folds are named by their test part: 1, 2 or 3).

Reads the frame index, aligned crops and AU-centre cache produced by the data steps, trains with the
`train` section of --config, evaluates the test part every epoch, and writes a run directory
(checkpoint.pt, run.json, model.safetensors, metrics.json, predictions.parquet, history.json, curves.png,
train.log, tracking.json).

--resume continues from the last completed epoch only if nothing that determines the result changed since
the checkpoint was written (the run key: config sections, index/crop/heatmap content, the pretrained
file, the au_ttt code); otherwise the run starts from the beginning and train.log says what changed. A
NaN/Inf loss stops the run with exit status 2 and no final model.

One process at a time per --out: a second `au-ttt train` on the same run directory exits with status 2 at
once, naming the process that holds it (lock file .<out name>.lock beside the directory; a killed holder
releases it by itself).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from au_ttt.settings import Settings
    from au_ttt.train.data import DataPaths

HELP = "train one (dataset, fold, variant) and write its run directory"

log = logging.getLogger("au_ttt.commands.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config file")
    parser.add_argument("--dataset", required=True, choices=["bp4d", "disfa"])
    parser.add_argument("--test-part", type=int, required=True, choices=[1, 2, 3],
                        help="the fold, named by the part it tests on (trains on the other two)")
    parser.add_argument("--variant", help="Table III variant name from the config's `variants` "
                        "(default: the `model` section)")
    parser.add_argument("--index", required=True, type=Path, help="frame index parquet")
    parser.add_argument("--crops", required=True, type=Path, help="aligned crop store")
    parser.add_argument("--heatmaps", required=True, type=Path, help="AU-centre cache directory")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--pretrained", help="override train.pretrained: an `au-ttt pretrain` backbone, a timm "
                        "vit_small_patch16_224 file (.safetensors/.pth), or 'none' to train from scratch")
    parser.add_argument("--threads", type=int, help="override train.threads (torch CPU threads of this job)")
    parser.add_argument("--seed", type=int, help="override train.seed (a training repeat of the same fold: its own "
                        "run key, run name `<run>-seed<N>` and MLflow run)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/checkpoint.pt if it was written under the same run key")
    parser.add_argument("--device", default="auto", help="auto (a free GPU slot, else CPU), cpu, cuda, cuda:N")
    parser.add_argument("--parent", help="MLflow parent run (the table row), default '<dataset>/<variant>'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from au_ttt.settings import load_settings
    from au_ttt.train.data import DataPaths, check_compatible
    from au_ttt.train.weights import weights_kind

    settings = load_settings(args.config)
    if args.pretrained:
        pretrained = None if args.pretrained.lower() == "none" else args.pretrained
        settings = replace(settings, train=replace(settings.train, pretrained=pretrained))
    if args.seed is not None:
        settings = replace(settings, train=replace(settings.train, seed=args.seed))
    if args.threads is not None:
        settings = replace(settings, train=replace(settings.train, threads=args.threads))
    if settings.train.pretrained:
        weights_kind(settings.train.pretrained)  # missing/unreadable file → error now, not after data loading
    settings.model_for(args.variant)          # unknown variant → error now
    check_compatible(settings, args.variant)
    paths = DataPaths(args.index, args.crops, args.heatmaps)
    paths.check()
    from au_ttt.locks import run_dir_lock

    with run_dir_lock(args.out):  # a second train on this --out would mix both runs' records: refused here
        return _train(args, settings, paths)


def _train(args: argparse.Namespace, settings: Settings, paths: DataPaths) -> int:
    """The run itself, with ``args.out`` held by this process."""
    from dataclasses import asdict

    from au_ttt.train.data import load_split
    from au_ttt.train.loop import RunSpec, plan_resume, train_run
    from au_ttt.train.runkey import run_key
    from au_ttt.train.runtime import interrupt_on_sigterm, job_device
    from au_ttt.train.tracking import RUN_KEY_TAG, RunLogger

    spec = RunSpec(args.dataset, args.test_part, args.variant)
    key = run_key(settings.resolved(args.variant), asdict(spec),
                  {"index": paths.index, "crops": paths.crops, "heatmaps": paths.heatmaps,
                   "pretrained": settings.train.pretrained})
    train_ds = load_split(settings, paths, args.dataset, args.test_part, "train")
    test_ds = load_split(settings, paths, args.dataset, args.test_part, "test")

    args.out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(args.out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    plan = plan_resume(args.out, key, args.resume)
    log.info("%s: run key %s; %s", spec.name, key.digest[:16], plan.message)
    interrupt_on_sigterm()
    # the device (and GPU slot) is chosen before anything touches CUDA
    with job_device(args.device) as place:
        tags = {"dataset": args.dataset, "test_part": args.test_part, "variant": args.variant or "model",
                "kind": "train", "seed": settings.train.seed, RUN_KEY_TAG: key.digest, **place.tags}
        run_name = spec.name if args.seed is None else f"{spec.name}-seed{args.seed}"
        with RunLogger(settings.tracking, args.out, run_name=run_name,
                       parent=args.parent or f"{args.dataset}/{args.variant or 'model'}", tags=tags,
                       config=settings.resolved(args.variant), manifest=args.index, device=str(place.device),
                       continue_run=plan.resumed) as run:
            from au_ttt.train.mlflow_inputs import log_fold_dataset

            data = log_fold_dataset(run, paths.index, args.dataset, args.test_part)
            metrics = train_run(settings, spec, train_ds, test_ds, args.out, key=key, device=place.device, plan=plan,
                                tracker=run, progress=not args.no_progress)
            final = {"final_f1_mean": metrics.f1_mean, **{f"final_f1_{k}": v for k, v in metrics.f1.items()}}
            run.log_metrics_once(final, step=settings.train.epochs)
            for name in ("metrics.json", "run.json", "curves.png"):
                run.log_artifact(args.out / name)
            if settings.tracking.log_model and run.run_id:
                _log_model(args.out, settings, run.run_id, final, settings.train.epochs, data)
    print(f"{spec.name}: mean F1 {metrics.f1_mean:.3f} (all-positive {metrics.all_positive_f1_mean:.3f}) "
          f"on {metrics.test_frames} test frames → {args.out}")
    return 0


def _log_model(out, settings, run_id: str, final: dict[str, float], step: int, data: dict[str, str]) -> None:
    """The run as an MLflow pyfunc model (`au-ttt export` bundle inside) carrying its final scores on the
    dataset they were measured on; tracking never stops training."""
    from au_ttt.predict.mlflow_model import log_pyfunc_model

    try:
        uri = log_pyfunc_model(out, settings.tracking, run_id, config=settings.source, linked_metrics=final,
                               step=step, dataset=data)
        log.info("logged the model to MLflow: %s", uri)
    except Exception as err:  # a store problem must not fail a finished training
        log.warning("could not log the model to MLflow (%s: %s); `au-ttt export %s` makes the same bundle",
                    type(err).__name__, err, out)
