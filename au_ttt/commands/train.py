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

from au_ttt.commands.fold_args import add_fold_arguments

HELP = "train one (dataset, fold, variant) and write its run directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config file")
    add_fold_arguments(parser)
    parser.add_argument("--variant", help="Table III variant name from the config's `variants` "
                        "(default: the `model` section)")
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
    """Parse → :func:`au_ttt.engine.train` → one summary line."""
    from au_ttt import engine

    settings = engine.with_overrides(engine.load(args.config), pretrained=args.pretrained, threads=args.threads,
                                     seed=args.seed)
    metrics = engine.train(settings, engine.DataPaths(args.index, args.crops, args.heatmaps), args.dataset,
                           args.test_part, args.out, variant=args.variant, resume=args.resume, device=args.device,
                           parent=args.parent, progress=not args.no_progress, seed_tag=args.seed is not None)
    print(f"{metrics.run}: mean F1 {metrics.f1_mean:.3f} "
          f"(all-positive {metrics.all_positive_f1_mean:.3f}) on {metrics.test_frames} test frames → {args.out}")
    return 0
