"""Benchmark AU-TTT ViT-S/16 against timm ViT-S/16: img/s (forward and training step), peak memory, FLOPs.

All models run in one process with the same batch at each size (interleaved per size); the table shows
AU-TTT ÷ ViT-S ratios and FLOP efficiency. Writes results/bench/bench-<device>-<amp>-<time>.json and
results/bench/scaling.png (img/s and memory per image against tokens, log-log, slopes annotated).

Examples: `au-ttt bench --threads 1` (CPU: 224/448/672/896 px, batch 8/2/1/1); `au-ttt bench --device cuda`
(GPU: batch 128/32/12/6, bf16 autocast); `au-ttt bench --sizes 224 896 --models au_ttt_vit_s16 au_ttt_reference
au_ttt_compiled timm_vit_s16` (before/after the fast scan, model.compile); `au-ttt bench --no-bench
--train-check 60` (a short real training of config/paper.yaml's model; scripts/gpu_check.sh runs both on a GPU).
"""

from __future__ import annotations

import argparse

HELP = "speed/memory/FLOPs of AU-TTT ViT-S/16 vs timm ViT-S/16 at 224–896 px, side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from au_ttt.bench import DEFAULT_MODELS, MODELS

    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448, 672, 896], help="image sizes (px)")
    parser.add_argument("--batch", type=int, nargs="+",
                        help="batch per size, one value per --sizes entry (default CPU 8/2/1/1, CUDA 128/32/12/6)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(MODELS),
                        help="models to run; ratios compare au_ttt_vit_s16 with timm_vit_s16 "
                             f"({'; '.join(f'{k}: {v}' for k, v in MODELS.items())})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], help="autocast dtype (default: bf16 on CUDA, "
                        "none on CPU)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--iters", type=int, default=3, help="timed calls (the median is reported)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-memory", action="store_true", help="skip the CPU memory processes (faster)")
    parser.add_argument("--no-ops", action="store_true", help="skip counting the aten operations per call (one "
                        "untimed call per model and mode)")
    parser.add_argument("--out", default="results/bench", help="output directory (JSON report, scaling.png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--train-check", type=int, default=0, metavar="STEPS",
                        help="also run a short real training (AdamW, the paper's losses, amp) of --config's model on "
                             "one fixed batch for STEPS steps and check that its loss falls (GPU readiness)")
    parser.add_argument("--config", default="config/paper.yaml", help="config for --train-check")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark (with --train-check)")
    parser.add_argument("--profile-ops", nargs="*", metavar="NAME",
                        help="instead of timing: record the op lists the GPU cost model prices (fake tensors, no "
                             "compute) into au_ttt/planning/profiles/; names (e.g. au_ttt, resnet50) pick some, "
                             "none = all (au_ttt/planning/profile_steps.py)")
    parser.add_argument("--profile-dir", default=None,
                        help="with --profile-ops: where to write them (default au_ttt/planning/profiles/)")
    parser.add_argument("--ttt-impl", default="fast", choices=["fast", "triton", "reference"],
                        help="with --profile-ops: the TTT scan AU-TTT's profiles use: fast (the eager core), triton "
                             "(the scan kernels' custom ops), reference; the standard set records eager and triton")


def run(args: argparse.Namespace) -> int:
    if args.profile_ops is not None:
        from pathlib import Path

        from au_ttt.planning.profile_steps import PROFILE_DIR, write_profiles

        out = Path(args.profile_dir) if args.profile_dir else PROFILE_DIR
        for path in write_profiles(args.profile_ops or None, out, args.config, args.ttt_impl):
            print(f"written {path}")
        return 0
    from au_ttt.errors import InputError
    from au_ttt.train.runtime import resolve_device

    if args.batch and len(args.batch) != len(args.sizes):
        raise InputError(f"--batch needs one value per size ({len(args.sizes)}), got {len(args.batch)}")
    if any(s % 16 or s < 16 for s in args.sizes):
        raise InputError(f"--sizes must be positive multiples of the patch size 16, got {args.sizes}")
    args.device = str(resolve_device(args.device))        # the one device policy (au_ttt.train.runtime)
    cuda = args.device.startswith("cuda")
    from au_ttt.bench import CUDA_ONLY

    if not cuda and not args.no_bench and (wanted := sorted(CUDA_ONLY & set(args.models))):
        raise InputError(f"--models {' '.join(wanted)} capture CUDA graphs and need a CUDA device ({args.device} "
                         "here): leave them out, or run scripts/gpu_check.sh on a GPU machine")
    amp = args.amp or ("bf16" if cuda else "none")
    batches = dict(zip(args.sizes, args.batch, strict=True)) if args.batch else None
    if not args.no_bench:
        _benchmark(args, batches, amp)
    if args.train_check:
        import json
        import time

        from au_ttt.bench_train import train_check
        from au_ttt.fileio import atomic_write_json

        result = train_check(args.config, device=args.device, steps=args.train_check, amp=amp)
        path = atomic_write_json(f"{args.out}/train-check-{'cuda' if cuda else 'cpu'}-{time.strftime('%Y%m%d-%H%M%S')}"
                                 ".json", result)
        print(json.dumps({k: v for k, v in result.items() if k != "losses"}, indent=1))
        print(f"loss {result['losses'][0]:.4f} → {result['losses'][-1]:.4f}; written {path}")
        if not (result["all_finite"] and result["loss_fell"]):
            raise InputError(f"train check failed: losses finite {result['all_finite']}, fell by half "
                             f"{result['loss_fell']} ({path})")
    return 0


def _benchmark(args: argparse.Namespace, batches: dict[int, int] | None, amp: str) -> None:
    from au_ttt.bench import REFERENCE, SUBJECT, plot_scaling, ratio_table, run_bench, write_report

    report = run_bench(tuple(args.sizes), batches, models=tuple(args.models), device=args.device, amp=amp,
                       warmup=args.warmup, iters=args.iters, threads=args.threads, memory=not args.no_memory,
                       ops=not args.no_ops, progress=not args.no_progress)
    path = write_report(report, args.out)
    env = report["env"]
    print(f"\n{env['device']} ({env['device_type']}), torch {env['torch']}, {env['threads']} threads, "
          f"amp={env['amp']}, median of {env['iters']} after {env['warmup']} warm-up, load average "
          f"{env['load_average_1_5_15min']}")
    if {SUBJECT, REFERENCE} <= set(args.models):
        print(ratio_table(report))
        for model, g in report["summary"].get("train_cost_growth", {}).items():
            print(f"{model}: training time per image ×{g['time_per_img_ratio']:.1f} from {g['from_px']} to "
                  f"{g['to_px']} px (tokens ×{g['tokens_ratio']:.1f}; log-log slope {g['log_log_slope_time']:.2f})")
        if len(set(args.sizes)) > 1:
            print(f"figure: {plot_scaling(report, path.parent / 'scaling.png')}")
    print(f"written {path}")
