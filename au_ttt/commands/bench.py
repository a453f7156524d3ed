"""Benchmark AU-TTT ViT-S/16 against timm ViT-S/16 (img/s forward and forward+backward, peak memory).

Both models run in the same process with the same batch at each size; the table shows the ratios.
Results are written as JSON under --out (default results/bench/).
"""

from __future__ import annotations

import argparse

HELP = "speed/memory of AU-TTT ViT-S/16 vs timm ViT-S/16 at 224 and 448 px, side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448], help="image sizes")
    parser.add_argument("--batch", type=int, nargs="+", help="batch per size (default CPU 8/2, GPU 64/16)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="autocast dtype")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (median reported)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default="results/bench", help="output directory for the JSON report")


def run(args: argparse.Namespace) -> int:
    from au_ttt.bench import ratio_table, run_bench, write_report

    batches = dict(zip(args.sizes, args.batch, strict=False)) if args.batch else None
    if args.batch and len(args.batch) != len(args.sizes):
        from au_ttt.errors import InputError
        raise InputError(f"--batch needs one value per size ({len(args.sizes)}), got {len(args.batch)}")
    report = run_bench(tuple(args.sizes), batches, device=args.device, amp=args.amp, warmup=args.warmup,
                       iters=args.iters, threads=args.threads)
    path = write_report(report, args.out)
    env = report["env"]
    print(f"\n{env['device']} ({env['device_type']}), torch {env['torch']}, {env['threads']} threads, "
          f"amp={env['amp']}, median of {env['iters']} after {env['warmup']} warm-up")
    print(ratio_table(report))
    print(f"\nwritten {path}")
    return 0
