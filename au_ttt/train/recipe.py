"""The optimisation recipe shared by ``au-ttt train`` and ``au-ttt pretrain``: AdamW with a warm-up cosine
schedule (timm's ``create_optimizer_v2`` / ``CosineLRScheduler``, stepped per update as DeiT does) and one
update step with gradient clipping and a non-finite guard.

A NaN or infinite loss (or gradient norm) stops the run before the optimiser touches the weights, with an
error naming the epoch, step and loss parts (:class:`NonFiniteLoss`, an :class:`InputError`: the CLI prints
one line and exits 2). Callers write no final model after it; the last good checkpoint stays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from au_ttt.errors import InputError

__all__ = ["NonFiniteLoss", "Optimisation", "build_optimisation", "update"]


class NonFiniteLoss(InputError):
    """The training loss or gradient norm became NaN/Inf; the message says where and what to change."""


@dataclass
class Optimisation:
    optimizer: torch.optim.Optimizer
    scheduler: object  # timm CosineLRScheduler (step_update per optimiser step)
    grad_clip: float
    step: int = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def build_optimisation(model: nn.Module, *, lr: float, weight_decay: float, total_steps: int, warmup_steps: int,
                       warmup_lr: float, min_lr: float, grad_clip: float) -> Optimisation:
    """AdamW (timm: no weight decay on norms, biases, position embeddings) + per-step warm-up cosine."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    optimizer = create_optimizer_v2(model, "adamw", lr=lr, weight_decay=weight_decay)
    scheduler = CosineLRScheduler(optimizer, t_initial=max(total_steps, 1), lr_min=min_lr, warmup_t=warmup_steps,
                                  warmup_lr_init=warmup_lr, t_in_epochs=False)
    return Optimisation(optimizer, scheduler, grad_clip)


def _describe(parts: Mapping[str, Tensor | float]) -> str:
    return ", ".join(f"{k} {float(v.detach() if torch.is_tensor(v) else v):.4g}" for k, v in parts.items())


def _finite_everywhere(loss: Tensor, all_ranks: bool) -> bool:
    ok = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
    if all_ranks:  # DDP: one rank's NaN must stop every rank, or the others wait in backward forever
        import torch.distributed as dist

        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def update(opt: Optimisation, model: nn.Module, loss: Tensor, *, parts: Mapping[str, Tensor] | None = None,
           where: str, hint: str, all_ranks: bool = False) -> None:
    """One step: check the loss, zero_grad, backward, clip, check the norm, optimiser step, schedule.

    ``where`` names the position ("epoch 3, step 41"), ``hint`` the config key to change ("train.lr 0.002");
    ``all_ranks`` makes every DDP process agree on the loss check.
    """
    if not _finite_everywhere(loss, all_ranks):
        raise NonFiniteLoss(f"{where}: the training loss is not finite ({_describe(parts or {'loss': loss})}); "
                            f"the run stopped without a final model — lower {hint}, or check the inputs")
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # the norm is computed even without clipping (max_norm = inf leaves the gradients as they are): a NaN
    # gradient must not reach the weights, least of all in the last step before the final model is saved
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip if opt.grad_clip > 0 else math.inf))
    if not math.isfinite(norm):
        raise NonFiniteLoss(f"{where}: the gradient norm is {norm} (loss {_describe(parts or {'loss': loss})}); "
                            f"the run stopped without a final model — lower {hint}, or check the inputs")
    opt.optimizer.step()
    opt.step += 1
    opt.scheduler.step_update(opt.step)
