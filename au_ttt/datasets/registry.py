"""The dataset registry: the index, the check, the plan, the CLI's choices and the DAG ask it, not a literal.

The built-in plug-ins (``BUILTIN``) load on first use, so importing this module costs nothing and a spec
module may import :mod:`au_ttt.data.protocol` without a cycle. A new dataset calls :func:`register`.
"""

from __future__ import annotations

import importlib

from au_ttt.datasets.base import DatasetSpec

BUILTIN: tuple[str, ...] = ("au_ttt.datasets.bp4d", "au_ttt.datasets.disfa")

_SPECS: dict[str, DatasetSpec] = {}
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            register(importlib.import_module(module).SPEC, replace=True)


def register(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add a dataset; a second spec under a taken name is an error unless ``replace``."""
    _load_builtins()
    if spec.name in _SPECS and not replace and _SPECS[spec.name] != spec:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a dataset (tests that register their own)."""
    _SPECS.pop(name, None)


def get(name: str) -> DatasetSpec:
    """The spec of a registered dataset; an unknown name lists the known ones."""
    _load_builtins()
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(_SPECS)}") from None


def names() -> tuple[str, ...]:
    """Registered dataset names, built-ins first, in registration order."""
    _load_builtins()
    return tuple(_SPECS)


def in_paper_table(table: str) -> tuple[str, ...]:
    """The datasets the paper's Table ``table`` ("I", "II", "III") reports, in registration order."""
    return tuple(n for n in names() if table in _SPECS[n].paper_tables)


def synth_names() -> tuple[str, ...]:
    """The datasets SynthAU renders (a spec with a ``synth_folder``)."""
    return tuple(n for n in names() if _SPECS[n].synth_folder)
