"""Same-protocol baselines: a plain timm ViT and a timm ResNet behind AU-TTT's interface.

Why: a number of AU-TTT means little without the plain backbone it extends trained the same way — same
folds, crops, loader, input handling, threshold, epoch policy and loss. :class:`TimmAUModel` is that
backbone and nothing else: ``arch: vit`` is timm's ``VisionTransformer`` at the ``model`` section's sizes
(at paper size exactly ``vit_small_patch16_224``), its CLS token → a linear AU head; ``arch: resnet`` is the
timm model ``timm_model`` (``resnet50`` at paper size; ``widths`` narrows its stages for the CPU demo), global
average pooling → a linear AU head. No TTT, MSP, AU RoI branch or heatmap head: ``forward`` returns
``heatmaps=None`` and the loss drops its heatmap term.

Weights: :func:`load_timm_weights` initialises either from a local timm state dict of the same
architecture (``.safetensors``, or ``.pth`` via ``torch.load(weights_only=True)``; nothing is downloaded) —
the classifier is dropped, a ViT's position table is resampled to the input size by timm's own
``checkpoint_filter_fn``; any other missing, unexpected or misshapen key is an :class:`InputError`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from au_ttt.errors import InputError
from au_ttt.model.au_ttt import AUTTT, AUOutput, GreyStandardize
from au_ttt.model.config import ModelConfig
from au_ttt.model.weights import read_state_dict

__all__ = ["TimmAUModel", "build_model", "load_timm_weights", "state_shapes"]

log = logging.getLogger(__name__)
_VIT_NAME = "vit_small_patch16_224"  # the timm entry point whose sizes the `model` section overrides
_HEADS = ("head.", "fc.")            # timm classifier prefixes (ViT, ResNet): task-specific, never loaded


class TimmAUModel(nn.Module):
    """A timm backbone with an AU head, called like :class:`~au_ttt.model.au_ttt.AUTTT` (RoI masks ignored)."""

    def __init__(self, cfg: ModelConfig, num_aus: int):
        super().__init__()
        import timm

        self.cfg, self.num_aus = cfg, num_aus
        self.input_norm = GreyStandardize() if cfg.input_norm == "grey_standardize" else nn.Identity()
        if cfg.arch == "vit":
            self.net = timm.create_model(_VIT_NAME, pretrained=False, num_classes=num_aus, img_size=cfg.img_size,
                                         patch_size=cfg.patch_size, in_chans=cfg.in_chans, embed_dim=cfg.embed_dim,
                                         depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
                                         drop_path_rate=cfg.drop_path_rate)
        elif cfg.arch == "resnet":
            widths = {"channels": tuple(cfg.widths)} if cfg.widths else {}  # the stages; timm's stem stays 64 wide
            self.net = timm.create_model(cfg.timm_model, pretrained=False, num_classes=num_aus,
                                         in_chans=cfg.in_chans, drop_path_rate=cfg.drop_path_rate, **widths)
        else:
            raise ValueError(f"TimmAUModel builds arch 'vit' or 'resnet', not {cfg.arch!r}")

    def forward(self, x: Tensor, roi_masks: Tensor | None = None) -> AUOutput:
        return AUOutput(self.net(self.input_norm(x)), None)  # type: ignore[arg-type]


def build_model(cfg: ModelConfig, num_aus: int) -> nn.Module:
    """The one factory of trainable AU models: AU-TTT (every Table III variant) or a timm baseline."""
    return AUTTT(cfg, num_aus) if cfg.arch == "au_ttt" else TimmAUModel(cfg, num_aus)


def state_shapes(cfg: ModelConfig, num_aus: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``build_model(cfg, num_aus)``'s state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build_model(cfg, num_aus)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_timm_weights(model: TimmAUModel, path: str | Path) -> str:
    """Initialise ``model.net`` from a local timm state dict of its architecture; returns a log line."""
    path = Path(path)
    name = _VIT_NAME if model.cfg.arch == "vit" else model.cfg.timm_model
    fix = (f"give a state dict of timm `{name}` at these sizes (e.g. saved with `safetensors.torch.save_file("
           f"timm.create_model('{name}', pretrained=True).state_dict(), path)`)")
    state, _ = read_state_dict(path, fix, allow_torch=True)
    state = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    if model.cfg.arch == "vit" and "pos_embed" in state:
        from timm.models.vision_transformer import checkpoint_filter_fn

        state = {k: v for k, v in checkpoint_filter_fn(state, model.net).items() if not k.startswith(_HEADS)}
    own = model.net.state_dict()
    missing = sorted(k for k in own if k not in state and not k.startswith(_HEADS))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
                    if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{what}: {', '.join(keys[:6])}{f' … ({len(keys)} in all)' if len(keys) > 6 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes))
                 if keys]
        raise InputError(f"{path}: does not fit the {model.cfg.arch} baseline ({name}); " + "; ".join(parts)
                         + f"; {fix}")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)
    line = f"{len(state)} tensors from timm {name}, classifier fresh"
    log.info("initialised from %s: %s", path, line)
    return line
