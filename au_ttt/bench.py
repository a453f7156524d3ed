"""Speed and memory: AU-TTT ViT-S/16 against timm ``vit_small_patch16_224``, side by side in one process.

For each image size, both models run the same batch in the same process: forward (inference mode) and
forward+backward (training step without the optimiser), after warm-up, reporting the median time per
batch as img/s and the peak memory (CUDA: ``max_memory_allocated``; CPU: growth of the peak resident set
during one step, measured in a fresh process because freed CPU memory is reused without statistics).
Ratios are AU-TTT / ViT-S so a reader compares like with like.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from au_ttt.fileio import atomic_write_json

__all__ = ["BenchResult", "run_bench"]


@dataclass
class BenchResult:
    model: str
    img_size: int
    batch: int
    mode: str            # "forward" | "forward+backward"
    img_per_s: float
    ms_per_batch: float
    peak_mem_mb: float
    params_m: float


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_peak_child(name: str, size: int, batch: int, mode: str, num_aus: int, amp: str, threads: int,
                    queue) -> None:
    """In a fresh process: peak RSS growth (MB) during one step of ``mode``, sampled every millisecond."""
    import threading

    torch.set_num_threads(threads)
    model, fwd = _build(name, size, num_aus, torch.device("cpu"))
    step = _steps(model, fwd, torch.randn(batch, 3, size, size), amp)[mode]
    gc.collect()
    base = peak = _rss_bytes()
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    step()
    done.set()
    watcher.join()
    queue.put((max(peak, _rss_bytes()) - base) / 2**20)


def _cpu_peak_mb(*args) -> float:
    """CPU memory has no allocator statistics and glibc reuses freed pages, so measure in a clean child."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step: Callable[[], None], device: torch.device, warmup: int, iters: int) -> tuple[float, float]:
    """Median seconds per call over ``iters`` timed calls, and peak CUDA memory (MB; NaN on CPU)."""
    for _ in range(warmup):
        step()
    _sync(device)
    peak = float("nan")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return statistics.median(times), peak


MODELS = ("au_ttt_vit_s16", "timm_vit_s16")


def _build(name: str, img_size: int, num_aus: int, device: torch.device) -> tuple[nn.Module, Callable]:
    """One benchmark model and its forward-to-scalar function."""
    if name == "timm_vit_s16":
        import timm

        vit = timm.create_model("vit_small_patch16_224", img_size=img_size, num_classes=num_aus).to(device)
        return vit, lambda x: vit(x).float().sum()
    from au_ttt.model.au_ttt import AUTTT
    from au_ttt.model.config import ModelConfig

    cfg = ModelConfig(img_size=img_size)
    au = AUTTT(cfg, num_aus).to(device)

    def fwd(x):
        out = au(x, torch.rand(x.shape[0], num_aus, *cfg.grid_size, device=x.device))
        return out.logits.float().sum() + out.heatmaps.float().pow(2).sum()

    return au, fwd


def _steps(model: nn.Module, fwd: Callable, x: torch.Tensor, amp: str) -> dict[str, Callable[[], None]]:
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]

    def autocast():
        return torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None)

    def forward():
        model.eval()
        with torch.inference_mode(), autocast():
            fwd(x)

    def train_step():
        model.train()
        with autocast():
            loss = fwd(x)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return {"forward": forward, "forward+backward": train_step}


def run_bench(sizes: tuple[int, ...] = (224, 448), batches: dict[int, int] | None = None, *,
              device: str = "auto", amp: str = "none", warmup: int = 2, iters: int = 5, num_aus: int = 12,
              threads: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Benchmark both models at each size; returns a JSON-ready dict with environment and results."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if threads:
        torch.set_num_threads(threads)
    if batches is None:
        batches = {224: 64, 448: 16} if dev.type == "cuda" else {224: 8, 448: 2}
    results: list[BenchResult] = []
    for size in sizes:
        batch = batches.get(size, batches[min(batches)])
        for name in MODELS:
            model, fwd = _build(name, size, num_aus, dev)
            x = torch.randn(batch, 3, size, size, device=dev)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            steps = _steps(model, fwd, x, amp)
            for mode, step in steps.items():
                sec, mem = _time(step, dev, warmup, iters)
                if dev.type == "cpu":
                    mem = _cpu_peak_mb(name, size, batch, mode, num_aus, amp, torch.get_num_threads())
                res = BenchResult(name, size, batch, mode, batch / sec, 1000 * sec, mem, params)
                results.append(res)
                log(f"  {name:<16} {size}px b={batch:<3} {mode:<17} {res.img_per_s:8.1f} img/s "
                    f"{res.peak_mem_mb:8.0f} MB")
            del model, x
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    env = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "device_type": dev.type, "torch": torch.__version__, "threads": torch.get_num_threads(), "amp": amp,
        "warmup": warmup, "iters": iters, "num_aus": num_aus,
        "memory": "cuda max_memory_allocated above baseline" if dev.type == "cuda"
        else "peak RSS growth of one step in a fresh process",
    }
    return {"env": env, "results": [asdict(r) for r in results]}


def ratio_table(report: dict) -> str:
    """Markdown table: both models side by side and the AU-TTT / ViT-S ratios."""
    rows = {(r["img_size"], r["mode"], r["model"]): r for r in report["results"]}
    lines = ["| size | batch | mode | AU-TTT img/s | ViT-S img/s | speed ratio | AU-TTT MB | ViT-S MB | "
             "memory ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for (size, mode, model), au in rows.items():
        if model != "au_ttt_vit_s16":
            continue
        vit = rows[(size, mode, "timm_vit_s16")]
        mem_ratio = au["peak_mem_mb"] / vit["peak_mem_mb"] if vit["peak_mem_mb"] > 0 else float("nan")
        lines.append(f"| {size} | {au['batch']} | {mode} | {au['img_per_s']:.1f} | {vit['img_per_s']:.1f} | "
                     f"{au['img_per_s'] / vit['img_per_s']:.2f}× | {au['peak_mem_mb']:.0f} | "
                     f"{vit['peak_mem_mb']:.0f} | {mem_ratio:.2f}× |")
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = report["env"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return atomic_write_json(out_dir / f"bench-{env['device_type']}-{env['amp']}-{stamp}.json", report)
