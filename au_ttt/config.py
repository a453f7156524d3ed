"""Strict YAML → frozen-dataclass configuration.

Every section of a config file becomes a typed, frozen dataclass. An unknown key, a wrong type or a
value outside its allowed set is a :class:`ConfigError` that names the file, the dotted key and what
would have been accepted — so a typo fails before any compute starts, never silently.

Supported field types: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``Literal[...]``,
``tuple[T, ...]``, ``dict[str, T]``, unions such as ``int | Literal["row"]`` or ``T | None``, and
nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from au_ttt.errors import InputError

T = TypeVar("T")

__all__ = ["MAX_CONFIG_BYTES", "MAX_CONFIG_VALUES", "ConfigError", "describe_type", "from_dict", "load_section",
           "load_yaml", "to_dict"]

# A float literal as YAML 1.2 and every user writes it. PyYAML follows YAML 1.1, whose float needs a dot,
# so `lr: 2e-3` arrives as the *string* "2e-3"; float fields accept such strings (and nothing else).
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class ConfigError(InputError):
    """A configuration file or value is invalid; the message names the file, key and fix."""


# A project config is a few KB and a few hundred YAML values. Both limits are checked before anything walks the
# data: a "billion laughs" file (aliases of aliases) is a few KB on disk but expands to hundreds of millions of
# values in any walk (validation, merge, json.dumps), and a 69 MB file took Snakemake 384 s and 4.5 GB to read.
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 100_000


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file; oversized files and alias bombs are refused unparsed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (pass an existing YAML file, e.g. config/config.yaml)")
    with path.open("rb") as stream:
        raw = stream.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes, which no config is (config/paper.yaml "
                          "is a few KB): pass the project's YAML config, not a data file")
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, path)
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply for a config") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuse a document whose values, every alias written out, exceed MAX_CONFIG_VALUES, or that contains itself.

    PyYAML's composer keeps an alias as a second reference to its anchor's node, so counting with one memo per
    node costs the size of the file, not of the expansion (iterative: deep nesting cannot overflow the stack).
    """
    size: dict[int, int] = {}
    open_nodes: set[int] = set()          # the nodes on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if finished:
            open_nodes.discard(id(node))
            size[id(node)] = min(1 + sum(size[id(c)] for c in children), MAX_CONFIG_VALUES + 1)
            continue
        if id(node) in size:
            continue
        if id(node) in open_nodes:
            raise ConfigError(f"{path}: a YAML alias (*name) refers to an anchor (&name) that contains it, a "
                              "structure without end: write the values out")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children)
    if size[id(root)] > MAX_CONFIG_VALUES:
        raise ConfigError(f"{path}: expands to more than {MAX_CONFIG_VALUES:,} YAML values once its aliases (*name) "
                          "are written out (a project config has a few hundred): remove the aliases that repeat "
                          "anchors (&name) of anchors and write the values out")


def describe_type(tp: Any) -> str:
    """Human wording of what a field accepts, used in error messages."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {describe_type(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of names to {describe_type(get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    def fail() -> typing.NoReturn:
        raise ConfigError(f"{source}: key '{key}' has value {value!r}; allowed: {describe_type(tp)}")

    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}:
            return value
        fail()
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _convert(option, value, key, source)
            except ConfigError:
                continue
        fail()
    if origin is tuple:
        if not isinstance(value, list | tuple):
            fail()
        item_tp = get_args(tp)[0]
        return tuple(_convert(item_tp, v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            fail()
        val_tp = get_args(tp)[1]
        return {str(k): _convert(val_tp, v, f"{key}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            fail()
        return from_dict(tp, value, source=source, prefix=f"{key}.")
    if tp is type(None):
        if value is None:
            return None
        fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) or (isinstance(value, str) and _FLOAT_TEXT.match(value.strip())
                                        and not value.strip().lstrip('+-').isdigit()):
            raise ConfigError(f"{source}: key '{key}' has value {value!r}; allowed: an integer written with digits "
                              "only (e.g. 384): a decimal point or an exponent (1e9) makes it a float")
        fail()
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{source}: key '{key}' has value {value!r}; allowed: a finite number "
                                  "(NaN and infinity would silently break training)")
            return float(value)
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    raise TypeError(f"unsupported config field type {tp!r} for '{key}'")  # programming error


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; allowed keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _convert(hints[name], data[name], f"{prefix}{name}", source) for name in data}
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{source}: required key '{prefix}{missing[0]}' is missing")
    try:
        return cls(**kwargs)
    except ValueError as err:  # __post_init__ cross-field checks
        raise ConfigError(f"{source}: section '{prefix.rstrip('.') or '<root>'}': {err}") from err


def load_section(path: str | Path, section: str, cls: type[T], *, required: bool = False) -> T:
    """Load one top-level ``section`` of a YAML file into ``cls`` (defaults if absent and not required)."""
    data = load_yaml(path)
    if section not in data:
        if required:
            raise ConfigError(f"{path}: section '{section}' is missing")
        return cls()
    return from_dict(cls, data[section] or {}, source=str(path), prefix=f"{section}.")


def to_dict(obj: Any) -> Any:
    """Plain-Python (YAML/JSON-serialisable) view of a config dataclass, tuples as lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
