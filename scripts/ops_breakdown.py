"""Where the operations of one AU-TTT training step go: the sequential scan core against everything else.

Why: issue 18 asks for at most 3× ViT-S's operations per training step on the default CPU path. This splits
the operations a step dispatches, counted as :func:`au_ttt.model.opcount.count_ops` counts them (aten operations,
views included, after one warm-up call) into the scan core's
forward and backward sweeps (``ttt_fused.scan_forward`` / ``scan_backward``, the loops over mini-batches) and
the rest of the step, and the forward pass by block component, so the floor is plain: however few operations
the rest ran, the loops alone set a lower bound on the ratio for any eager path.

With ``--time``, the same split in seconds instead of operations, at 1 and at 2 threads: how much of a step the
scan core's loops take and how each part speeds up with a second thread beside ViT-S's whole step — what
the 2-thread FLOP efficiency is made of — and the seconds of each block component's forward and backward
(module hooks, in separate steps) beside ViT-S's (median of ``--iters`` steps after one warm-up; wall clock,
so run it on a quiet machine).

Usage: python scripts/ops_breakdown.py [--size 224] [--batch 1] [--out results/bench/scan/ops-breakdown.json]
       python scripts/ops_breakdown.py --time --batch 4 [--iters 5] [--out results/bench/scan/time-breakdown.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from au_ttt.bench import _build, _steps
from au_ttt.model import ttt_fused

CORE = ("scan_forward", "scan_backward")


class _Regions(TorchDispatchMode):
    """Counts each aten operation under the innermost region label active when it dispatched."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ["rest of the step"]
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[self.stack[-1]] += 1
        return func(*args, **(kwargs or {}))

    def labelled(self, fn, label: str):
        def run(*a, **k):
            self.stack.append(label)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
        return run


@contextlib.contextmanager
def _core_wrapped(wrap):
    """The scan core's sweeps replaced by ``wrap(fn, name)`` while the block runs, restored after."""
    saved = {name: getattr(ttt_fused, name) for name in CORE}
    try:
        for name, fn in saved.items():
            setattr(ttt_fused, name, wrap(fn, name))
        yield
    finally:
        for name, fn in saved.items():
            setattr(ttt_fused, name, fn)


def _attribute(step, model: torch.nn.Module, per_component: bool) -> Counter[str]:
    """Run ``step`` once with the scan core (and, for a forward, each block component) labelled."""
    mode = _Regions()
    hooks = []
    if per_component:
        for block in getattr(model, "blocks", []):
            for name, sub in block.named_children():
                hooks.append(sub.register_forward_pre_hook(lambda m, i, n=name: mode.stack.append(f"block.{n}")))
                hooks.append(sub.register_forward_hook(lambda m, i, o: mode.stack.pop() and None))
    try:
        with _core_wrapped(lambda fn, name: mode.labelled(fn, f"scan core: {name}")), mode:
            step()
    finally:
        for h in hooks:
            h.remove()
    return mode.counts


def _timed_core(step, iters: int) -> dict[str, float]:
    """Median seconds of ``step`` and of the scan-core calls inside it, over ``iters`` calls."""
    spent = [0.0]

    def clocked(fn, _name):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0
        return run

    steps, cores = [], []
    with _core_wrapped(clocked):
        for _ in range(iters):
            spent[0] = 0.0
            t0 = time.perf_counter()
            step()
            steps.append(time.perf_counter() - t0)
            cores.append(spent[0])
    step_s, core_s = statistics.median(steps), statistics.median(cores)
    return {"step_s": round(step_s, 4), "scan_core_s": round(core_s, 4), "rest_s": round(step_s - core_s, 4)}


def _component_seconds(model: torch.nn.Module, step, iters: int) -> dict[str, float]:
    """Seconds per block component (summed over the blocks), forward and backward, median over ``iters`` steps.

    Module hooks mark where each component's forward and backward start and end, so a component's backward
    includes whatever its autograd nodes run (the scan's recomputation and reverse sweep for the mixer)."""
    spent: Counter[str] = Counter()
    start: dict[str, float] = {}
    hooks = []

    def mark(key: str):
        return lambda *_: start.__setitem__(key, time.perf_counter())

    def add(key: str):
        return lambda *_: spent.__setitem__(key, spent[key] + time.perf_counter() - start[key]) or None

    for block in getattr(model, "blocks", []):
        for name, sub in block.named_children():
            if not any(p.requires_grad for p in sub.parameters()):
                continue                                            # no backward of its own to time
            hooks += [sub.register_forward_pre_hook(mark(f"{name} forward")),
                      sub.register_forward_hook(add(f"{name} forward")),
                      sub.register_full_backward_pre_hook(mark(f"{name} backward")),
                      sub.register_full_backward_hook(add(f"{name} backward"))]
    runs = []
    try:
        for _ in range(iters):
            spent.clear()
            step()
            runs.append(dict(spent))
    finally:
        for h in hooks:
            h.remove()
    return {k: round(statistics.median(r.get(k, 0.0) for r in runs), 4) for k in sorted(runs[0], key=lambda k:
                                                                                            -runs[0][k])}


def time_split(size: int, batch: int, iters: int) -> dict:
    """Training-step seconds at 1 and 2 threads: AU-TTT's scan core and rest, ViT-S's whole step."""
    x = torch.randn(batch, 3, size, size)
    out: dict = {}
    for name in ("au_ttt_vit_s16", "timm_vit_s16"):
        model, fwd = _build(name, size, 12, torch.device("cpu"))
        step = _steps(model, fwd, x, "none")["train_step"]
        for threads in (1, 2):
            torch.set_num_threads(threads)
            step()                                                  # warm-up at this thread count
            out.setdefault(name, {})[f"{threads}_threads"] = _timed_core(step, iters)
            out[name][f"{threads}_threads"]["by_component_s"] = _component_seconds(model, step, iters)
    au, vit = out["au_ttt_vit_s16"], out["timm_vit_s16"]
    speedup = lambda d, k: round(d["1_threads"][k] / d["2_threads"][k], 2)  # noqa: E731
    out["speedup_with_2_threads"] = {"au_ttt step": speedup(au, "step_s"),
                                     "au_ttt scan core": speedup(au, "scan_core_s"),
                                     "au_ttt rest": speedup(au, "rest_s"), "vit_s step": speedup(vit, "step_s")}
    out["scan_core_share"] = {t: round(au[t]["scan_core_s"] / au[t]["step_s"], 3) for t in ("1_threads", "2_threads")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None,
                        help="default results/bench/scan/ops-breakdown.json (time-breakdown.json with --time)")
    parser.add_argument("--time", action="store_true", help="seconds at 1 and 2 threads instead of operations")
    parser.add_argument("--iters", type=int, default=5, help="with --time: timed steps per thread count")
    args = parser.parse_args()
    if args.time:
        doc = {"command": f"python scripts/ops_breakdown.py --time --size {args.size} --batch {args.batch} "
                          f"--iters {args.iters}", "torch": torch.__version__, "host": platform.machine(),
               "load_before": os.getloadavg(), **time_split(args.size, args.batch, args.iters),
               "load_after": os.getloadavg()}
        _write(args.out or Path("results/bench/scan/time-breakdown.json"), doc)
        print(json.dumps({k: doc[k] for k in ("speedup_with_2_threads", "scan_core_share")}, indent=1))
        return
    torch.set_num_threads(1)
    x = torch.randn(args.batch, 3, args.size, args.size)
    rows = {}
    for name in ("au_ttt_vit_s16", "timm_vit_s16"):
        model, fwd = _build(name, args.size, 12, torch.device("cpu"))
        steps = _steps(model, fwd, x, "none")
        for step in steps.values():   # once unlabelled: first-call caches (RoPE tables, scan layouts) are built
            step()
        rows[name] = {}
        for mode, step in steps.items():
            regions = _attribute(step, model, False)
            rows[name][mode] = {"total": sum(regions.values()), "by_region": dict(regions)}
        rows[name]["forward"]["by_component"] = dict(_attribute(steps["forward"], model, True))
    au, vit = rows["au_ttt_vit_s16"]["train_step"], rows["timm_vit_s16"]["train_step"]
    core = sum(v for k, v in au["by_region"].items() if k.startswith("scan core"))
    summary = {
        "ratio": round(au["total"] / vit["total"], 2),
        "scan_core_ops": core, "rest_ops": au["total"] - core,
        "floor_ratio_if_the_rest_matched_vit_s": round((core + vit["total"]) / vit["total"], 2),
        "note": "scan core = the loops over mini-batches of every TTT scan (Bi-TTT and AU RoI TTT, forward and "
                "backward); the floor assumes everything else cost no more operations than ViT-S's whole step",
    }
    doc = {"command": f"python scripts/ops_breakdown.py --size {args.size} --batch {args.batch}",
           "torch": torch.__version__, "host": platform.machine(), "img_size": args.size, "batch": args.batch,
           "models": rows, "summary": summary}
    _write(args.out or Path("results/bench/scan/ops-breakdown.json"), doc)
    print(json.dumps(summary, indent=1))


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
