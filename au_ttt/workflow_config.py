"""The one check of a whole project config: every section, the DAG's `workflow` schema, the SynthAU sizes.

The `workflow` section's rules live in one file, the DAG's JSON schema (workflow/schemas/config.schema.yaml);
`au-ttt plan`, `au-ttt dvc-stage` and the Snakefile all check it through :func:`check_workflow`, so a key the
DAG would refuse is refused by the plan too, in the package's one-line wording (file, key, what is allowed).
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from au_ttt.config import ConfigError, load_yaml

__all__ = ["SCHEMA", "check_config_file", "check_workflow", "guard_config_files"]

# The repository's workflow folder beside the package (the project is used from a checkout: `make setup`).
SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
_JSON_TYPES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true/false",
               "array": "a list", "object": "a mapping", "null": "null"}
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 60, 60, 6, 6


@cache
def _validator() -> Any:
    try:
        from jsonschema.validators import validator_for
    except ImportError as err:  # shipped with snakemake; pinned in requirements.txt
        raise ConfigError("the workflow schema needs the jsonschema package: `make setup` installs it") from err
    if not SCHEMA.is_file():
        raise ConfigError(f"{SCHEMA}: the DAG's config schema is missing; run from a checkout of the repository")
    schema = load_yaml(SCHEMA)
    return validator_for(schema)(schema)


def _allowed(error: Any) -> str:
    """The package's wording of what the failed schema rule accepts."""
    rule, value = error.validator, error.validator_value
    if rule == "enum":
        return "one of " + ", ".join(repr(v) for v in value)
    if rule == "type":
        return " or ".join(_JSON_TYPES.get(t, t) for t in ([value] if isinstance(value, str) else value))
    words = {"minimum": f">= {value}", "maximum": f"<= {value}", "minItems": f"a list of at least {value} items",
             "uniqueItems": "a list without repeated items", "minProperties": f"at least {value} entries"}
    return words.get(rule, error.message)


def _describe(error: Any, source: str) -> ConfigError:
    key = ".".join(str(p) for p in error.absolute_path)
    here = f"{key}." if key else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = next(k for k in error.instance if k not in allowed)
        return ConfigError(f"{source}: unknown key '{here}{unknown}'; allowed keys here: {', '.join(allowed)} "
                           f"(schema: {SCHEMA.name})")
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = next(k for k in error.validator_value if k not in error.instance)
        return ConfigError(f"{source}: required key '{here}{missing}' is missing")
    return ConfigError(f"{source}: key '{key}' has value {_REPR.repr(error.instance)}; allowed: {_allowed(error)}")


def check_workflow(config: Mapping[str, Any], source: str) -> None:
    """Check a (merged) config against the DAG's schema, then the SynthAU sizes; raise one :class:`ConfigError`."""
    from jsonschema.exceptions import best_match

    from au_ttt.data.synth_limits import check_synthau_sizes

    error = best_match(_validator().iter_errors(config))
    if error is not None:
        raise _describe(error, source)
    synthau = config["workflow"].get("synthau")
    if synthau is not None:
        check_synthau_sizes(synthau, source)


def check_config_file(path: str | Path) -> dict[str, Any]:
    """The whole check of one project config file (every section strictly, then the workflow): its data."""
    from au_ttt.settings import load_settings

    load_settings(path)
    data = load_yaml(path)
    check_workflow(data, str(path))
    return data


def guard_config_files(paths: Iterable[str | Path]) -> None:
    """Read each config file with the package's loader (size and alias limits) before anything walks its data.

    The Snakefile calls this first: Snakemake's own walks (schema validation, merges, dumps) would expand an
    alias bomb into hundreds of millions of values before any other check could refuse it.
    """
    for path in paths:
        load_yaml(path)
