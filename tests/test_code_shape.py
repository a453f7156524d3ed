"""The package's shape rules, checked on its source: they hold now and a change that breaks one fails here.

Why: "one place for each rule" and "small functions" decay one commit at a time; a reviewer misses a 61st
line or a ``"bp4d"`` pasted into the tables, a parser does not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

from au_ttt.datasets import registry

PACKAGE = REPO / "au_ttt"
MAX_FUNCTION_LINES = 60
SETTINGS_NAMES = {"settings", "cfg", "model_cfg"}  # (`config`: the generic serialisers take any mapping)
# where a dataset's name may be written out: its plug-in, its format reader, SynthAU's generator of both
# datasets, and the paper's published numbers (which are facts about named datasets)
DATASET_HOMES = ("au_ttt/datasets/", "au_ttt/data/synth/", "au_ttt/tables/published.py")


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), filename=str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _logic_lines(path: Path) -> int:
    """Statement lines of a module, without its docstrings, comments, blank lines and imports."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip.update(range(node.lineno, node.end_lineno + 1))
    lines = path.read_text().splitlines()
    return sum(1 for i, line in enumerate(lines, 1)
               if i not in skip and line.strip() and not line.strip().startswith("#"))


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = [f"{p.relative_to(REPO)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p, tree in _modules() for f in _functions(tree) if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_every_settings_parameter_is_typed() -> None:
    loose = []
    for p, tree in _modules():
        for f in _functions(tree):
            for a in (*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs):
                if a.arg in SETTINGS_NAMES and (a.annotation is None or ast.unparse(a.annotation).startswith("Any")):
                    loose.append(f"{p.relative_to(REPO)}:{f.lineno} {f.name}({a.arg})")
    assert not loose, "give these parameters their settings type:\n" + "\n".join(loose)


def test_the_train_command_is_thin() -> None:
    """`au-ttt train` parses and calls the engine; the work lives below it."""
    assert _logic_lines(PACKAGE / "commands/train.py") <= 30


@pytest.mark.parametrize("name", ["bp4d", "disfa"])
def test_dataset_names_live_in_the_dataset_modules(name: str) -> None:
    assert name in registry.names()
    found = []
    for p, tree in _modules():
        rel = p.relative_to(REPO).as_posix()
        if rel.startswith(DATASET_HOMES) or rel == f"au_ttt/data/{name}.py":
            continue
        found += [f"{rel}:{n.lineno}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.lower() == name]
    assert not found, f"{name!r} written as a literal outside its dataset modules (use the registry):\n" + \
        "\n".join(found)


@pytest.mark.parametrize("name", ["bp4d", "disfa"])
def test_the_workflow_names_no_dataset(name: str) -> None:
    """The rules take datasets from the config and the registry: no quoted name or path segment in them."""
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk")), REPO / "workflow/Snakefile"]
    found = [f"{p.relative_to(REPO)}:{i}" for p in rules for i, line in enumerate(p.read_text().splitlines(), 1)
             if any(f"{q}{name}{q}" in line.lower() for q in ('"', "'", "/"))]
    assert not found, f"{name!r} written in the workflow (use the registry):\n" + "\n".join(found)


def test_the_shape_checks_can_fail(tmp_path: Path) -> None:
    """The checks above see what they look for: a planted long function and a planted literal."""
    planted = tmp_path / "planted.py"
    planted.write_text("def f(settings):\n" + "    x = 'bp4d'\n" * MAX_FUNCTION_LINES + "    return x\n")
    tree = ast.parse(planted.read_text())
    (f,) = _functions(tree)
    assert f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES and f.args.args[0].annotation is None
    assert any(isinstance(n, ast.Constant) and n.value == "bp4d" for n in ast.walk(tree))
    assert _logic_lines(planted) == MAX_FUNCTION_LINES + 2
