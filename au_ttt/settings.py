"""The whole project configuration file (``config/config.yaml``, ``config/paper.yaml``) as typed sections.

One YAML file drives every step; each top-level section maps to a frozen dataclass (:data:`au_ttt.sections.SECTIONS`).
Unknown sections or keys are errors naming the file and the allowed names. Loading settings imports no numpy,
pandas or torch: the Snakemake DAG loads them at parse time, every job at start-up (tests/test_imports_config.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from au_ttt.config import ConfigError, from_dict, load_yaml, to_dict
from au_ttt.loss_config import LossConfig
from au_ttt.model.config import ModelConfig
from au_ttt.sections import SECTIONS, AlignConfig, HeatmapConfig, LandmarkConfig, TrackingConfig
from au_ttt.train.config import PretrainConfig, TrainConfig

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    source: str
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    crops: AlignConfig = field(default_factory=AlignConfig)
    heatmaps: HeatmapConfig = field(default_factory=HeatmapConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Table III rows: name -> overrides of `model` (validated against ModelConfig when loaded)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resolved(self, variant: str | None = None) -> dict[str, Any]:
        """Plain dict of every section as one run sees it (the variant applied), for logs and hashes."""
        out = {f.name: to_dict(getattr(self, f.name)) for f in fields(self) if f.name not in ("source", "variants")}
        out["model"] = to_dict(self.model_for(variant))
        return out

    def model_for(self, variant: str | None = None) -> ModelConfig:
        """The model config of a named variant (None = the `model` section as written)."""
        if variant is None:
            return self.model
        if variant not in self.variants:
            raise ConfigError(f"{self.source}: unknown variant {variant!r}; defined variants: "
                              f"{', '.join(self.variants) or '(none)'}")
        return _apply_overrides(self.model, self.variants[variant], f"variants.{variant}.", self.source)


def _apply_overrides(base: ModelConfig, overrides: dict[str, Any], prefix: str, source: str) -> ModelConfig:
    return from_dict(ModelConfig, {**to_dict(base), **overrides}, source=source, prefix=prefix)


def load_settings(path: str | Path) -> Settings:
    """Load and validate a project config file; every variant is checked eagerly."""
    data = load_yaml(path)
    source = str(path)
    allowed = [*SECTIONS, "variants", "workflow"]  # `workflow` is the DAG's own (workflow/schemas/)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ConfigError(f"{source}: unknown section '{unknown[0]}'; allowed sections: {', '.join(allowed)}")
    kwargs: dict[str, Any] = {
        name: from_dict(cls, data[name] or {}, source=source, prefix=f"{name}.")
        for name, cls in SECTIONS.items() if name in data
    }
    variants = data.get("variants") or {}
    if not isinstance(variants, dict) or not all(isinstance(v, dict | None) for v in variants.values()):
        raise ConfigError(f"{source}: 'variants' must map variant names to mappings of model keys")
    settings = Settings(source=source, variants={str(k): dict(v or {}) for k, v in variants.items()}, **kwargs)
    for name in settings.variants:  # fail at load time, not hours later in the DAG
        settings.model_for(name)
    return settings
