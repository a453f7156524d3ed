"""The steps whose op lists the GPU cost model prices: timm's benchmark steps and AU-TTT's own, on fake tensors.

``au-ttt bench --profile-ops`` runs :func:`write_profiles` and writes one JSON per step into
``au_ttt/planning/profiles/`` (format: :mod:`au_ttt.planning.op_profile`). Each step reproduces what was
timed, op for op:

* **timm 0.6.6 benchmark** (the ``pt112`` result files; huggingface/pytorch-image-models ``benchmark.py``
  at that release): training = ``zero_grad()`` (zero-filled, PyTorch 1.12's default), forward under
  float16 autocast, a random integer target, cross-entropy, backward, SGD (momentum 0.9, Nesterov, the
  per-parameter loop PyTorch 1.12 ran by default); inference = forward under ``no_grad`` and autocast.
  timm 0.6.6's attention is explicit (q·kᵀ scaled, softmax, ·v), which :func:`_attention_pt112` restores.
* **timm 1.x benchmark** (``pt240`` files): the same inference step with today's timm, whose attention is
  PyTorch's fused ``scaled_dot_product_attention``.
* ResNet-50's NCHW profiles also stand for the channels-last result files: recorded channels-last, the
  training step has 2 more kernels (1,490) and 0.005 % more bytes — the layout changes which cuDNN kernels
  run, not the op list.
* **AU-TTT**: training = :func:`au_ttt.train.recipe.update` (finite check, backward, clipping, AdamW) on
  the paper loss (eq. 11) under bf16 autocast, as ``au-ttt train`` runs it; evaluation = the forward of
  :func:`au_ttt.train.evaluate.predict`; pretraining = the ImageNet classifier step of ``au-ttt pretrain``
  (RoI branch off, 1,000 classes, soft-target cross-entropy after mixup). Each on two scan paths: ``eager``
  (the fused PyTorch loop of :mod:`au_ttt.model.ttt_fused`, a few kernels per mini-batch; CUDA without
  Triton) and ``triton`` (what ``backend="auto"`` runs on CUDA: each scan one kernel forward and one
  backward, priced by the FLOPs and bytes of :mod:`au_ttt.model.ttt_triton`'s registered formulas).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily

from au_ttt.data.protocol import DATASETS
from au_ttt.planning.gpu_model import PROFILE_DIR
from au_ttt.planning.op_profile import fake_module, fake_session, profile_fn, profile_json

__all__ = ["PROFILE_DIR", "STANDARD", "ProfileSpec", "profile_spec", "write_profiles"]

COMMAND = "au-ttt bench --profile-ops"


@dataclass(frozen=True)
class ProfileSpec:
    """One step to profile: a timm model name or ``au_ttt`` (the config's model), its mode and batch."""

    name: str            # file stem
    model: str
    mode: str            # "train" | "infer" | "pretrain"
    batch: int
    software: str = ""   # "pt112" | "pt240" for timm benchmark steps
    ttt_impl: str = "fast"   # "fast" (eager scan core), "triton" (the scan kernels), "reference"

    @property
    def path(self) -> str:
        """The execution path the profile prices: eager PyTorch, or the named TTT scan implementation."""
        return "eager" if self.ttt_impl == "fast" else self.ttt_impl


STANDARD = (
    *(ProfileSpec(f"timm-{m}-{mode}-pt112", m, mode, b, "pt112") for m, mode, b in (
        ("vit_tiny_patch16_224", "train", 512), ("vit_small_patch16_224", "train", 384),
        ("vit_base_patch16_224", "train", 192), ("resnet50", "train", 512),
        ("vit_tiny_patch16_224", "infer", 1024), ("vit_small_patch16_224", "infer", 1024),
        ("vit_base_patch16_224", "infer", 1024), ("resnet50", "infer", 1024))),
    *(ProfileSpec(f"timm-{m}-infer-pt240", m, "infer", 1024, "pt240") for m in (
        "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224", "resnet50")),
    *(ProfileSpec(f"au_ttt-{mode}-{path}", "au_ttt", mode, b, ttt_impl=impl)
      for path, impl in (("eager", "fast"), ("triton", "triton"))
      for mode, b in (("train", 64), ("infer", 64), ("pretrain", 256))),
)


def _attention_pt112(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **_: object) -> torch.Tensor:
    """timm 0.6.6's ViT attention: softmax(q·kᵀ × scale)·v with explicit matmuls, then the projection
    (it had no mask; today's timm passes ``attn_mask=None``)."""
    b, n, c = x.shape
    q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
    weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
    return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


def _timm_step(spec: ProfileSpec, mode: FakeTensorMode) -> Callable[[], None]:
    import timm
    from timm.models.vision_transformer import Attention

    with unset_fake_temporarily():     # real initialisation (it reads values), then fake parameters
        model = fake_module(timm.create_model(spec.model), mode)
    if spec.software == "pt112":
        for m in model.modules():
            if isinstance(m, Attention):
                m.forward = _attention_pt112.__get__(m)
    x = torch.randn(spec.batch, 3, 224, 224)

    def autocast():
        return torch.autocast("cpu", dtype=torch.float16)

    if spec.mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.no_grad(), autocast():
                model(x)
        return infer
    model.train()
    sgd = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True, foreach=False)
    classes = model.num_classes

    def train() -> None:
        sgd.zero_grad(set_to_none=False)
        with autocast():
            target = torch.empty(spec.batch, dtype=torch.long).random_(classes)
            nn.functional.cross_entropy(model(x), target).backward()
        sgd.step()
    return train


def _foreach(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """AdamW on the multi-tensor kernels, PyTorch's default for CUDA parameters."""
    for group in optimizer.param_groups:
        group["foreach"] = True
    return optimizer


def _au_ttt_step(spec: ProfileSpec, mode: FakeTensorMode, config: str) -> Callable[[], None]:
    from dataclasses import replace

    from au_ttt.losses import AULoss
    from au_ttt.model.au_ttt import AUTTT
    from au_ttt.settings import load_settings
    from au_ttt.train.recipe import build_optimisation, update

    settings = load_settings(config)
    cfg, aus, b = settings.model, 12, spec.batch
    pretrain = spec.mode == "pretrain"
    with unset_fake_temporarily():     # real initialisation (it reads values), then fake parameters
        model = AUTTT(replace(cfg, au_roi=False) if pretrain else cfg, 1000 if pretrain else aus)
        fake_module(_scan_impl(model, spec.ttt_impl), mode)
    x = torch.randn(b, 3, cfg.img_size, cfg.img_size)
    dtype = torch.bfloat16

    if spec.mode == "infer":
        model.eval()
        masks = torch.rand(b, aus, *cfg.grid_size)

        def infer() -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
                out = model(x, masks)
            torch.sigmoid(out.logits.float())
        return infer
    model.train()
    train = settings.train if not pretrain else settings.pretrain
    opt = build_optimisation(model, lr=train.lr, weight_decay=train.weight_decay, total_steps=1000,
                             warmup_steps=10, warmup_lr=1e-6, min_lr=train.min_lr, grad_clip=train.grad_clip)
    _foreach(opt.optimizer)
    if pretrain:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        p = settings.pretrain
        mix = Mixup(mixup_alpha=p.mixup, cutmix_alpha=p.cutmix, label_smoothing=p.label_smoothing, num_classes=1000)
        soft_ce, y = SoftTargetCrossEntropy(), torch.zeros(b, dtype=torch.long)

        def pretrain_step() -> None:
            xm, ym = mix(x.clone(), y)
            with torch.autocast("cpu", dtype=dtype):
                loss = soft_ce(model.forward_cls(xm).float(), ym)
            update(opt, model, loss, where="profile", hint="-")
        return pretrain_step
    import numpy as np

    with unset_fake_temporarily():
        criterion = fake_module(AULoss(settings.loss, DATASETS[0], np.full(aus, 0.2, dtype=np.float32)), mode)
    hm = model.heatmap_size
    masks, labels = torch.rand(b, aus, *cfg.grid_size), torch.zeros(b, aus)
    heat, label_mask = torch.rand(b, aus, hm, hm), torch.ones(b, aus)

    def train_step() -> None:
        with torch.autocast("cpu", dtype=dtype):
            out = model(x, masks)
        parts = criterion(out.logits.float(), out.heatmaps.float(), labels, heat, label_mask)
        update(opt, model, parts["total"], parts=parts, where="profile", hint="-")
    return train_step


def _scan_impl(model: nn.Module, impl: str) -> nn.Module:
    """Set the model's TTT scan: ``fast`` (eager core: fake tensors are CPU tensors, which ``auto`` would pick
    anyway), ``triton`` (the kernels' custom ops, with their FLOP formulas) or ``reference``."""
    from au_ttt.model.layers import set_scan_backend, set_ttt_impl

    if impl == "triton":
        import au_ttt.model.ttt_triton  # noqa: F401  (registers the ops' FLOP formulas before recording)

        return set_scan_backend(set_ttt_impl(model, "fast"), "triton")
    return set_scan_backend(set_ttt_impl(model, impl), "eager")  # type: ignore[arg-type]


def profile_spec(spec: ProfileSpec, config: str = "config/paper.yaml") -> dict:
    """The JSON-ready op profile of one step (after one unrecorded warm-up step, so optimiser state exists)."""
    t0 = time.perf_counter()
    with fake_session() as mode:
        step = _timm_step(spec, mode) if spec.model != "au_ttt" else _au_ttt_step(spec, mode, config)
        recorder = profile_fn(step)
    meta = {"name": spec.name, "model": spec.model, "mode": spec.mode, "batch": spec.batch, "img_size": 224,
            "path": spec.path, "amp": "bf16" if spec.model == "au_ttt" else "fp16",
            "software": spec.software or "this repository", "made_by": COMMAND + (f" --config {config}"
                                                                                  if spec.model == "au_ttt" else ""),
            "profile_seconds": round(time.perf_counter() - t0, 1)}
    if spec.model == "au_ttt":
        meta["config"] = config
    return profile_json(recorder, meta)


def write_profiles(names: list[str] | None = None, out: Path = PROFILE_DIR, config: str = "config/paper.yaml",
                   ttt_impl: str = "fast") -> list[Path]:
    """Profile the STANDARD steps (or those named; AU-TTT's with ``ttt_impl``) and write compact JSON files."""
    from dataclasses import replace

    specs = [s for s in STANDARD if not names or s.name in names or s.model in names]
    if ttt_impl != "fast":
        specs = [replace(s, ttt_impl=ttt_impl, name=s.name.replace("-eager", f"-{ttt_impl}"))
                 for s in specs if s.model == "au_ttt" and s.ttt_impl == "fast"]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        path = out / f"{spec.name}.json"
        data = profile_spec(spec, config)
        rows = ",\n".join(json.dumps(r) for r in data.pop("ops"))    # one op per line: readable diffs
        path.write_text(json.dumps(data, indent=1).removesuffix("\n}") + ',\n "ops": [\n' + rows + "\n]}\n")
        written.append(path)
    return written
