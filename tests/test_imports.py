"""The package's import structure: no circular import anywhere in au_ttt/ (module-level and function-level
imports alike), and loading the settings — what the Snakemake DAG does at parse time — imports no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import au_ttt

PACKAGE = Path(au_ttt.__file__).resolve().parent


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module → the au_ttt modules it imports anywhere in its body (``from a import b`` → ``a.b`` if a module)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "au_ttt"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "train" / "loop.py").write_text("from au_ttt.train.evaluate import score\n")
    (pkg / "train" / "evaluate.py").write_text("def score():\n    from au_ttt.train import loop\n")
    graph = import_graph(pkg)
    assert graph["au_ttt.train.loop"] == {"au_ttt.train.evaluate"}
    assert graph["au_ttt.train.evaluate"] == {"au_ttt.train.loop"}  # function-level `from pkg import module`
    assert find_cycle(graph) == ["au_ttt.train.evaluate", "au_ttt.train.loop", "au_ttt.train.evaluate"]


def test_no_circular_import_in_the_package():
    graph = import_graph()
    assert {"au_ttt.train.loop", "au_ttt.train.evaluate", "au_ttt.settings"} <= set(graph)
    assert "au_ttt.train.runtime" in graph["au_ttt.train.evaluate"]  # the walk sees real edges
    cycle = find_cycle(graph)
    assert cycle is None, "circular import: " + " → ".join(cycle or [])


def test_loading_settings_imports_no_torch():
    code = ("import sys; from au_ttt.settings import load_settings; "
            f"load_settings({str(PACKAGE.parent / 'config' / 'paper.yaml')!r}); "
            "bad = sorted(m for m in ('torch', 'timm', 'mlflow') if m in sys.modules); print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"loading settings imported {out}"
