"""Classification pretraining of the AU-TTT backbone on an ImageFolder (the paper uses ImageNet-1K).

Single process: `au-ttt pretrain --config C --out DIR`. Several GPUs (or CPU processes, gloo):
`torchrun --nproc_per_node N -m au_ttt.cli pretrain --config C --out DIR`. Writes
DIR/backbone.safetensors (what `au-ttt train --pretrained` loads) and DIR/pretrain.json.
--make-digits writes the embedded default ImageFolder (scikit-learn's real handwritten digits).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "ImageNet-style pretraining of the backbone (single process or torchrun DDP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config (model + pretrain sections)")
    parser.add_argument("--data-root", help="override pretrain.data_root (ImageFolder with train/ and val/)")
    parser.add_argument("--out", type=Path, help="output directory for backbone.safetensors")
    parser.add_argument("--max-steps", type=int, help="override pretrain.max_steps (smoke runs)")
    parser.add_argument("--device", default="auto", help="auto or cpu")
    parser.add_argument("--make-digits", type=Path, metavar="DIR",
                        help="only write the digits ImageFolder to DIR (embedded default data) and exit")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from au_ttt.errors import InputError
    from au_ttt.settings import load_settings
    from au_ttt.train.pretrain import pretrain, write_digits_imagefolder

    settings = load_settings(args.config)
    if args.make_digits:
        info = write_digits_imagefolder(args.make_digits, size=settings.model.img_size)
        print(f"wrote {info['train']} train / {info['val']} val digit images to {info['root']}")
        return 0
    if args.out is None:
        raise InputError("--out is required (directory for backbone.safetensors)")
    cfg = settings.pretrain
    if args.data_root:
        cfg = replace(cfg, data_root=args.data_root)
    if args.max_steps is not None:
        cfg = replace(cfg, max_steps=args.max_steps)
    result = pretrain(settings.model, cfg, args.out, device=args.device)
    print(f"pretrained {result['steps']} steps (world size {result['world_size']}), "
          f"val top-1 {result['val_top1']:.3f} → {args.out}")
    return 0
