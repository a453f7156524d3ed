"""Classification pretraining of the AU-TTT backbone on an ImageFolder (the paper uses ImageNet-1K).

One process: `au-ttt pretrain --config C --out DIR`. N processes on this node (GPUs, or CPU processes with
gloo): `au-ttt pretrain --nproc N --config C --out DIR` launches torchrun with its rendezvous and
process-group store in private files and every socket on 127.0.0.1 (nothing listens on other interfaces);
with --device auto it first takes N free GPU slots. Writes DIR/backbone.safetensors (what
`au-ttt train --pretrained` loads) and DIR/pretrain.json. A NaN/Inf loss stops every process, exit status 2,
and writes nothing. --make-digits writes the embedded default ImageFolder (scikit-learn's real handwritten
digits). One pretraining at a time per --out: a second one exits with status 2 at once, naming the holder.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

HELP = "ImageNet-style pretraining of the backbone (one process, or --nproc N local DDP processes)"

log = logging.getLogger("au_ttt.commands.pretrain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config (model + pretrain sections)")
    parser.add_argument("--data-root", help="override pretrain.data_root (ImageFolder with train/ and val/)")
    parser.add_argument("--out", type=Path, help="output directory for backbone.safetensors")
    parser.add_argument("--max-steps", type=int, help="override pretrain.max_steps (smoke runs)")
    parser.add_argument("--nproc", type=int, default=1,
                        help="DDP processes on this node (torchrun, bound to 127.0.0.1); 1 = no DDP")
    parser.add_argument("--device", default="auto", help="auto (free GPU slots, else CPU), cpu, cuda, cuda:N")
    parser.add_argument("--make-digits", type=Path, metavar="DIR",
                        help="only write the digits ImageFolder to DIR (embedded default data) and exit")


def _worker_args(args: argparse.Namespace, device: str) -> list[str]:
    """The command line each torchrun worker runs: this one without --nproc."""
    out = ["pretrain", "--config", str(args.config), "--out", str(args.out), "--device", device]
    if args.data_root:
        out += ["--data-root", str(args.data_root)]
    if args.max_steps is not None:
        out += ["--max-steps", str(args.max_steps)]
    return out


def _launch(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from au_ttt.errors import InputError
    from au_ttt.train.gpu_slots import acquire_gpus
    from au_ttt.train.records import PretrainResult
    from au_ttt.train.runtime import launch_torchrun

    with ExitStack() as stack:
        slots = acquire_gpus(args.nproc) if args.device == "auto" else []
        for slot in slots:
            stack.enter_context(slot)
        device = ("auto" if slots else "cpu") if args.device == "auto" else args.device
        status = launch_torchrun(args.nproc, _worker_args(args, device),
                                 devices=[s.device for s in slots if s.device] or None)
    if status != 0:
        raise InputError(f"pretraining with {args.nproc} processes failed (torchrun exit status {status}); the "
                         "workers' errors are printed above")
    PretrainResult.read(args.out)  # rank 0 wrote it (and printed the summary)
    return 0


def run(args: argparse.Namespace) -> int:
    """--make-digits, a torchrun launch of --nproc workers, or :func:`au_ttt.engine.pretrain` in this process."""
    from au_ttt import engine
    from au_ttt.errors import InputError

    settings = engine.load(args.config)
    if args.make_digits:
        from au_ttt.train.pretrain import write_digits_imagefolder

        info = write_digits_imagefolder(args.make_digits, size=settings.model.img_size)
        print(f"wrote {info['train']} train / {info['val']} val digit images to {info['root']}")
        return 0
    if args.out is None:
        raise InputError("--out is required (directory for backbone.safetensors)")
    if args.nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {args.nproc}")
    if settings.pretrain.source != "imagenet":
        log.warning("%s: pretrain.source is %r, so the DAG does not pretrain; pretraining on %s as asked",
                    args.config, settings.pretrain.source, args.data_root or settings.pretrain.data_root)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from au_ttt.locks import run_dir_lock

        with run_dir_lock(args.out):  # two pretrainings into one --out would mix backbone and record
            return _launch(args)
    result = engine.pretrain(settings, args.out, data_root=args.data_root, max_steps=args.max_steps,
                             device=args.device)
    if os.environ.get("RANK", "0") == "0":
        print(f"pretrained {result.steps} steps (world size {result.world_size}), val top-1 "
              f"{result.val_top1:.3f} → {args.out}")
    return 0
