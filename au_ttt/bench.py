"""Speed, memory and FLOPs: AU-TTT ViT-S/16 against timm ``vit_small_patch16_224``, side by side in one process.

For each image size every model runs the same batch in the same process: forward (inference mode) and a
training step (forward + backward, no optimiser), after warm-up; the median time per batch gives img/s.
Models are interleaved per size so that a change in machine load hits all of them alike, and the load
average is recorded. Peak memory: CUDA ``max_memory_allocated`` above the pre-step baseline (bf16 autocast,
synchronised timing); CPU has no allocator statistics, so a fresh process per (model, size) samples its
resident set every millisecond during one step of each mode (malloc's trim threshold pinned so that freed
tensors leave the resident set). FLOPs come from one counter for all models
(:func:`au_ttt.model.flops.flop_counter`): forward GFLOPs per image at the benchmark batch, and
FLOP efficiency = (AU-TTT img/s ÷ ViT-S img/s) × (AU-TTT GFLOPs ÷ ViT-S GFLOPs): 1.0 means AU-TTT turns
FLOPs into images as fast as ViT-S does. Operations per call (:func:`au_ttt.model.opcount.count_ops`: aten
operations dispatched, matrix products among them; one untimed call per mode at the benchmark batch) size
the per-launch cost a GPU adds on top of the FLOPs.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from au_ttt.fileio import atomic_write, atomic_write_json
from au_ttt.train.runtime import resolve_device

__all__ = ["CUDA_ONLY", "MODELS", "BenchResult", "default_batches", "plot_scaling", "ratio_table", "run_bench",
           "summarise", "write_report"]

# name → what it is; the first is the subject, REFERENCE the yardstick of every ratio
MODELS = {
    "au_ttt_vit_s16": "AU-TTT ViT-S/16 (full model: Bi-TTT + MSP + AU RoI TTT)",
    "timm_vit_s16": "timm vit_small_patch16_224",
    "au_ttt_attention": "AU-TTT ViT-S/16 with timm attention instead of Bi-TTT (our control)",
    "au_ttt_reference": "AU-TTT ViT-S/16, plain dual form through autograd (before the fast scan)",
    "au_ttt_compiled": "AU-TTT ViT-S/16, model.compile: true (torch.compile of the whole scan, forward and backward)",
    "au_ttt_graphs": "AU-TTT ViT-S/16, the whole model through torch.compile(mode='reduce-overhead', fullgraph=True): "
                     "inductor kernels around the Triton scan, replayed as CUDA graphs (CUDA only)",
}
CUDA_ONLY = frozenset({"au_ttt_graphs"})
SUBJECT, REFERENCE = "au_ttt_vit_s16", "timm_vit_s16"
DEFAULT_MODELS = ("au_ttt_vit_s16", "timm_vit_s16", "au_ttt_attention")
MODES = ("forward", "train_step")


def default_batches(device_type: str) -> dict[int, int]:
    """CPU: about 1.6–3k tokens per batch at every size; CUDA: a batch that fills an 80 GB GPU comfortably."""
    if device_type == "cuda":
        return {224: 128, 448: 32, 672: 12, 896: 6}
    return {224: 8, 448: 2, 672: 1, 896: 1}


@dataclass
class BenchResult:
    model: str
    img_size: int
    tokens: int          # tokens per image (patches + CLS)
    batch: int
    mode: str            # "forward" | "train_step"
    img_per_s: float
    ms_per_batch: float
    peak_mem_mb: float
    params_m: float
    gflops_per_img: float        # forward FLOPs per image at this batch (the model's cost)
    step_gflops_per_img: float   # FLOPs of this mode per image as run (a training step includes backward)
    ops: int = -1                # aten operations one call of this mode dispatches (-1: not counted)
    matmul_ops: int = -1         # … of which matrix products (mm, bmm, baddbmm, addmm, convolution, attention …)


def _build(name: str, img_size: int, num_aus: int, device: torch.device) -> tuple[nn.Module, Callable]:
    """One benchmark model and its forward-to-scalar-loss function."""
    if name == REFERENCE:
        import timm

        vit = timm.create_model("vit_small_patch16_224", img_size=img_size, num_classes=num_aus).to(device)
        return vit, lambda x: vit(x).float().sum()
    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    if name in CUDA_ONLY and device.type != "cuda":
        raise ValueError(f"{name} captures CUDA graphs: run it with --device cuda (scripts/gpu_check.sh does)")
    from au_ttt.model.au_ttt import AUTTT
    from au_ttt.model.config import ModelConfig
    from au_ttt.model.layers import set_ttt_impl

    cfg = ModelConfig(img_size=img_size)
    if name == "au_ttt_attention":
        cfg = cfg.with_overrides(mixer="attention", bidirectional=False)
    elif name == "au_ttt_compiled":
        cfg = cfg.with_overrides(compile=True)
    au = AUTTT(cfg, num_aus).to(device)
    if name == "au_ttt_reference":
        set_ttt_impl(au, "reference")
    masks = torch.rand(1, num_aus, *cfg.grid_size, device=device)
    # one graph forward and backward with the Triton scan (tests/triton_checks.py: whole_model_graph); while a
    # dispatch mode counts FLOPs or operations dynamo does not run, so the eager program is what is counted
    compiled = torch.compile(au, mode="reduce-overhead", fullgraph=True) if name == "au_ttt_graphs" else au

    def fwd(x):
        run = au if torch._C._len_torch_dispatch_stack() else compiled
        out = run(x, masks.expand(x.shape[0], -1, -1, -1))
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

    return {"forward": forward, "train_step": train_step}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step: Callable[[], None], device: torch.device, warmup: int, iters: int) -> tuple[float, float]:
    """Median seconds per call over ``iters`` timed calls, and peak CUDA memory above baseline (MB; NaN on CPU)."""
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


# ---------------------------------------------------------------- CPU peak memory in a fresh process

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_freed_memory() -> None:
    """Pin glibc's mmap threshold (freed big tensors are unmapped at once) and trim the heap."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)   # M_MMAP_THRESHOLD: fixed, so the dynamic threshold cannot grow
        libc.malloc_trim(0)
    except OSError:  # not glibc: growth of the resident set is then an upper bound
        pass


def _peak_growth_mb(step: Callable[[], None]) -> float:
    """Peak resident-set growth (MB) while ``step()`` runs, sampled every millisecond by a second thread."""
    import threading

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
    return (max(peak, _rss_bytes()) - base) / 2**20


def _cpu_peak_child(name: str, size: int, batch: int, num_aus: int, amp: str, threads: int, queue) -> None:
    """In a fresh process: peak RSS growth (MB) during one step of each mode."""
    torch.set_num_threads(threads)
    _release_freed_memory()
    model, fwd = _build(name, size, num_aus, torch.device("cpu"))
    steps = _steps(model, fwd, torch.randn(batch, 3, size, size), amp)
    if name == "au_ttt_compiled":   # compile first: its own memory is not the model's
        for mode in MODES:
            steps[mode]()
    out = {}
    for mode in MODES:
        gc.collect()
        _release_freed_memory()
        out[mode] = _peak_growth_mb(steps[mode])
    queue.put(out)


def _cpu_peak_mb(name: str, size: int, batch: int, num_aus: int, amp: str, threads: int) -> dict[str, float]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child, args=(name, size, batch, num_aus, amp, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# ---------------------------------------------------------------- the run

def _gflops_per_img(model: nn.Module, fwd: Callable, x: torch.Tensor, train: bool) -> float:
    from au_ttt.model.flops import count_fn_flops

    def run():
        if train:
            model.train()
            fwd(x).backward()
            model.zero_grad(set_to_none=True)
        else:
            model.eval()
            with torch.no_grad():
                fwd(x)

    return count_fn_flops(run) / x.shape[0] / 1e9


def _count_ops(steps: dict[str, Callable[[], None]]) -> dict:
    """Operation counts of one call per mode (after the timing, so nothing is warming up), flat field names."""
    from au_ttt.model.opcount import count_ops

    out: dict = {}
    for mode in MODES:
        c = count_ops(steps[mode])
        out.update({f"ops_{mode}": c.ops, f"matmul_ops_{mode}": c.matmul_ops, f"view_ops_{mode}": c.view_ops,
                    f"ops_by_name_{mode}": c.by_name})
    return out


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_bench(sizes: tuple[int, ...] = (224, 448, 672, 896), batches: dict[int, int] | None = None, *,
              models: tuple[str, ...] = DEFAULT_MODELS, device: str = "auto", amp: str = "none", warmup: int = 1,
              iters: int = 3, num_aus: int = 12, threads: int | None = None, memory: bool = True,
              ops: bool = True, progress: bool = True) -> dict:
    """Benchmark ``models`` at each size; returns a JSON-ready dict with environment, results and summary."""
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    batches = {**default_batches(dev.type), **(batches or {})}
    load_before = _load()
    results: list[BenchResult] = []
    op_counts: dict[str, dict[str, dict]] = {}
    bar = tqdm(total=len(sizes) * len(models), desc="bench", unit="model", disable=not progress)
    for size in sizes:
        batch = batches.get(size, min(batches.values()))
        for name in models:
            bar.set_postfix_str(f"{name} {size}px b={batch}")
            model, fwd = _build(name, size, num_aus, dev)
            x = torch.randn(batch, 3, size, size, device=dev)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            fwd_gflops = _gflops_per_img(model, fwd, x, train=False)
            step_gflops = {"forward": fwd_gflops, "train_step": _gflops_per_img(model, fwd, x, train=True)}
            mems = ({m: float("nan") for m in MODES} if dev.type == "cuda" or not memory
                    else _cpu_peak_mb(name, size, batch, num_aus, amp, torch.get_num_threads()))
            steps = _steps(model, fwd, x, amp)
            timed = {mode: _time(step, dev, warmup, iters) for mode, step in steps.items()}
            counted = _count_ops(steps) if ops else {}
            op_counts.setdefault(name, {})[str(size)] = counted
            for mode, (sec, mem) in timed.items():
                if dev.type == "cpu":
                    mem = mems[mode]
                tokens = (size // 16) ** 2 + 1
                results.append(BenchResult(name, size, tokens, batch, mode, batch / sec, 1000 * sec, mem, params,
                                           fwd_gflops, step_gflops[mode], counted.get(f"ops_{mode}", -1),
                                           counted.get(f"matmul_ops_{mode}", -1)))
            del model, x
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            bar.update()
    bar.close()
    env = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "device_type": dev.type, "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "amp": amp, "warmup": warmup, "iters": iters, "num_aus": num_aus,
        "load_average_1_5_15min": {"before": load_before, "after": _load()},
        "memory": "cuda max_memory_allocated above the pre-step baseline" if dev.type == "cuda"
        else "peak resident-set growth during one step, in a fresh process per model and size",
        "flops": "torch FlopCounterMode + CPU flash attention; forward GFLOPs per image at the benchmark batch",
        "ops": "aten operations one call dispatches (TorchDispatchMode, views included; au_ttt.model.opcount), "
               "at the benchmark batch; ops[model][size] has the per-mode totals and the count per operation name",
        "models": {m: MODELS[m] for m in models},
    }
    report = {"env": env, "results": [asdict(r) for r in results], "ops": op_counts}
    report["summary"] = summarise(report)
    return report


# ---------------------------------------------------------------- ratios, table, figure

def _index(report: dict) -> dict[tuple[str, int, str], dict]:
    return {(r["model"], r["img_size"], r["mode"]): r for r in report["results"]}


def _ratio(a: float, b: float) -> float:
    return a / b if b and b > 0 and not math.isnan(b) else float("nan")


def summarise(report: dict, subject: str = SUBJECT) -> dict:
    """Per size and mode: AU-TTT ÷ ViT-S speed and memory ratios, FLOP ratio and FLOP efficiency; plus how
    the training cost per image grows from the smallest to the largest size."""
    rows = _index(report)
    sizes = sorted({r["img_size"] for r in report["results"]})
    out: dict = {"per_size": []}
    for size in sizes:
        for mode in MODES:
            au, vit = rows.get((subject, size, mode)), rows.get((REFERENCE, size, mode))
            if au is None or vit is None:
                continue
            speed = _ratio(au["img_per_s"], vit["img_per_s"])
            flops = _ratio(au["gflops_per_img"], vit["gflops_per_img"])
            out["per_size"].append({"img_size": size, "mode": mode, "speed_ratio": speed,
                                    "memory_ratio": _ratio(au["peak_mem_mb"], vit["peak_mem_mb"]),
                                    "flop_ratio": flops, "flop_efficiency": speed * flops,
                                    "ops_ratio": _ratio(au.get("ops", -1), vit.get("ops", -1))})
    for model in sorted({r["model"] for r in report["results"]}):
        train = [rows[(model, s, "train_step")] for s in sizes if (model, s, "train_step") in rows]
        if len(train) >= 2:
            first, last = train[0], train[-1]
            out.setdefault("train_cost_growth", {})[model] = {
                "from_px": first["img_size"], "to_px": last["img_size"],
                "tokens_ratio": last["tokens"] / first["tokens"],
                "time_per_img_ratio": first["img_per_s"] / last["img_per_s"],
                "log_log_slope_time": _slope([r["tokens"] for r in train], [1 / r["img_per_s"] for r in train]),
                "log_log_slope_memory": _slope([r["tokens"] for r in train],
                                               [r["peak_mem_mb"] / r["batch"] for r in train]),
            }
    return out


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x (1 = linear, 2 = quadratic); NaN if anything is not positive."""
    if any(not (v > 0) for v in [*xs, *ys]):
        return float("nan")
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / den if den else float("nan")


def ratio_table(report: dict, subject: str = SUBJECT) -> str:
    """Markdown: AU-TTT and ViT-S side by side per size and mode, with ratios and FLOP efficiency."""
    rows = _index(report)
    summary = {(s["img_size"], s["mode"]): s for s in summarise(report, subject)["per_size"]}
    lines = ["| size | batch | mode | AU-TTT img/s | ViT-S img/s | speed ratio | AU-TTT MB | ViT-S MB | memory ratio "
             "| AU-TTT GFLOPs | ViT-S GFLOPs | FLOP efficiency | AU-TTT ops (matmul) | ViT-S ops (matmul) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ops(r: dict) -> str:
        return f"{r['ops']} ({r['matmul_ops']})" if r.get("ops", -1) >= 0 else "–"

    for (size, mode), s in summary.items():
        au, vit = rows[(subject, size, mode)], rows[(REFERENCE, size, mode)]
        lines.append(f"| {size} | {au['batch']} | {mode} | {au['img_per_s']:.2f} | {vit['img_per_s']:.2f} | "
                     f"{s['speed_ratio']:.2f}× | {au['peak_mem_mb']:.0f} | {vit['peak_mem_mb']:.0f} | "
                     f"{s['memory_ratio']:.2f}× | {au['gflops_per_img']:.2f} | {vit['gflops_per_img']:.2f} | "
                     f"{s['flop_efficiency']:.2f} | {ops(au)} | {ops(vit)} |")
    return "\n".join(lines)


def plot_scaling(report: dict, path: str | Path) -> Path:
    """Training img/s and peak memory per image against tokens per image, log-log, one line per model,
    each labelled with its fitted slope (1 = linear in tokens, 2 = quadratic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if r["mode"] == "train_step"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for model in sorted({r["model"] for r in rows}):
        pts = sorted((r for r in rows if r["model"] == model), key=lambda r: r["tokens"])
        tokens = [r["tokens"] for r in pts]
        for ax, values in ((axes[0], [r["img_per_s"] for r in pts]),
                           (axes[1], [r["peak_mem_mb"] / r["batch"] for r in pts])):
            slope = _slope(tokens, values)
            ax.plot(tokens, values, marker="o", label=f"{model} (slope {slope:+.2f})")
    ticks = sorted({(r["tokens"], r["img_size"]) for r in rows})
    for ax, ylabel in ((axes[0], "training img/s (slope −1: cost linear in tokens, −2: quadratic)"),
                       (axes[1], "peak training memory per image, MB (slope 1: linear)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([t for t, _ in ticks], [f"{t}\n{px} px" for t, px in ticks])
        ax.minorticks_off()
        ax.set_xlabel("tokens per image (patches + CLS)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    env = report["env"]
    fig.suptitle(f"{env['device']} ({env['device_type']}, {env['threads']} threads, amp={env['amp']}); "
                 f"batch per size {sorted({(r['img_size'], r['batch']) for r in rows})}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)
    return path


def write_report(report: dict, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = report["env"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return atomic_write_json(out_dir / f"bench-{env['device_type']}-{env['amp']}-{stamp}.json", report)
