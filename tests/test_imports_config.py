"""Job start-up stays cheap: parsing the Snakefile, loading a config's sections and starting the `au-ttt` command
line import no numpy, pandas or torch (each is 0.3-3 CPU-seconds that every one of hundreds of DAG jobs would pay).

Each check runs in a fresh interpreter, so nothing another test imported can hide an import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pandas", "torch")


def fresh(code: str, cwd: Path = REPO) -> str:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def heavy_loaded(code: str) -> list[str]:
    """The heavy modules loaded after running ``code`` in a fresh interpreter."""
    out = fresh(textwrap.dedent(code) + f"\nimport sys\nprint('heavy:', *(m for m in {HEAVY!r} if m in sys.modules))")
    return out.strip().splitlines()[-1].split()[1:]


def test_config_sections_load_without_numpy_pandas_torch() -> None:
    assert heavy_loaded(f"""
        from au_ttt.sections import SECTIONS
        from au_ttt.settings import load_settings
        for config in ("config/config.yaml", "config/paper.yaml"):
            settings = load_settings({str(REPO)!r} + "/" + config)
        assert set(SECTIONS) <= set(settings.resolved())
    """) == []


@pytest.mark.parametrize("argv", [["--help"], ["heatmaps", "--help"], ["crops", "--help"], ["nope"]])
def test_the_command_line_starts_without_numpy_pandas_torch(argv) -> None:
    """A command's options are added only for the command that runs (bench's would import torch)."""
    assert heavy_loaded(f"""
        from au_ttt.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
    """) == []


def test_help_lists_every_command_with_its_one_line_help() -> None:
    from au_ttt.cli import COMMANDS

    out = fresh("from au_ttt.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n")
    flat = " ".join(out.split())
    for name, module in COMMANDS.items():
        help_line = fresh(f"from au_ttt.commands import {module}\nprint({module}.HELP)").strip()
        assert name in flat and " ".join(help_line.split()[:4]) in flat, name


def test_snakefile_parse_imports_no_numpy_pandas_torch(tmp_path: Path) -> None:
    """Parse the DAG (`snakemake --list-rules`) with every import statement recorded by where it is written:
    Snakemake itself may import numpy and pandas, but no line of the workflow or of au_ttt that runs at parse
    time may (on Slurm, every job parses the Snakefile again)."""
    pytest.importorskip("snakemake")
    records = fresh(f"""
        import builtins, json, sys
        project = ({str(REPO / "au_ttt")!r}, {str(REPO / "workflow")!r}, {str(REPO / "Snakefile")!r})
        seen, real = [], builtins.__import__

        def recording(name, globals=None, locals=None, fromlist=(), level=0):
            where = sys._getframe(1).f_code.co_filename
            if where.startswith(project) and not level:
                seen.append([name, where])
            return real(name, globals, locals, fromlist, level)

        builtins.__import__ = recording
        from snakemake.cli import main
        sys.argv = ["snakemake", "--snakefile", {str(REPO / "Snakefile")!r}, "--directory", {str(tmp_path)!r},
                    "--configfile", {str(REPO / "config/config.yaml")!r}, "--list-rules", "--quiet"]
        try:
            main()
        except SystemExit as end:
            assert not end.code, end.code
        builtins.__import__ = real
        print(json.dumps(seen))
    """, cwd=REPO)
    seen = json.loads(records.strip().splitlines()[-1])
    names = {name.split(".")[0] for name, _ in seen}
    assert {"yaml", "au_ttt"} <= names                     # the recorder sees the workflow's own imports
    assert (tmp_path / "results/config/resolved.yaml").is_file()  # ... and the parse ran the config code
    assert [(name, where) for name, where in seen if name.split(".")[0] in HEAVY] == []
