"""Initial weights of a training run: the one place that decides how a weights file becomes the model's start.

* a backbone written by ``au-ttt pretrain`` (safetensors, metadata ``format: au_ttt``) → the strict loader
  :func:`au_ttt.model.au_ttt.load_pretrained` (missing backbone keys are an error; the RoI branch and the
  heads may be new);
* a same-protocol baseline (:class:`au_ttt.model.baselines.TimmAUModel`) → a timm state dict of its own
  architecture (:func:`au_ttt.model.baselines.load_timm_weights`);
* anything else — a timm ``vit_small_patch16_224`` state dict as ``.safetensors`` or ``.pth`` (read with
  ``weights_only=True``) — → the timm ViT-S/16 transfer :func:`au_ttt.model.transfer.load_timm_vit_s16`
  (``pretrain.source: timm_checkpoint``); a file of another architecture is refused, naming the keys.

Unreadable or corrupt files are :class:`InputError`s naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from torch import nn

from au_ttt.errors import InputError

__all__ = ["initialise_from_file", "weights_kind"]

log = logging.getLogger(__name__)

_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def weights_kind(path: str | Path) -> Literal["au_ttt", "timm"]:
    """``au_ttt`` for this package's safetensors (its metadata says so), else ``timm``."""
    from au_ttt.model.au_ttt import CHECKPOINT_FORMAT

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: pretrained weights not found (run `au-ttt pretrain`, give a local timm "
                         "vit_small_patch16_224 file, or pass --pretrained none)")
    if path.suffix in _TORCH_SUFFIXES:
        return "timm"
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # SafetensorError, OSError: a truncated or foreign file
        raise InputError(f"{path}: not a readable safetensors file ({type(err).__name__}: {str(err)[:200]}); "
                         "re-create it with `au-ttt pretrain` or download the weights again") from None
    return "au_ttt" if meta.get("format") == CHECKPOINT_FORMAT else "timm"


def initialise_from_file(model: nn.Module, path: str | Path) -> str:
    """Load ``path`` into ``model`` by its kind (module docstring); returns a one-line summary for the log."""
    from au_ttt.model.au_ttt import load_pretrained
    from au_ttt.model.baselines import TimmAUModel, load_timm_weights
    from au_ttt.model.transfer import load_timm_vit_s16

    if isinstance(model, TimmAUModel):  # a same-protocol baseline starts from a timm file of its own architecture
        return f"timm weights {path}: {load_timm_weights(model, path)}"
    kind = weights_kind(path)
    try:
        report = (load_pretrained if kind == "au_ttt" else load_timm_vit_s16)(model, path)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: cannot initialise the model from it ({type(err).__name__}: {str(err)[:200]}); "
                         "give an `au-ttt pretrain` backbone or a timm vit_small_patch16_224 state dict") from None
    summary = f"{kind} weights {path}: {report.summary()}"
    log.info("initialised from %s", summary)
    return summary
