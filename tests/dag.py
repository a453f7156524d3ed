"""Helpers for tests that run the Snakemake DAG in a scratch working directory."""

import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def address_space_limit(max_bytes: int | None):
    """A ``preexec_fn`` capping the child's address space: a run that would eat the machine fails instead."""
    if max_bytes is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def snakemake(workdir: Path, *args: str, timeout: int = 900, max_bytes: int | None = None
              ) -> subprocess.CompletedProcess:
    """Run the repository's DAG in ``workdir`` (a killed run cannot hang a test: `timeout -k`); ``max_bytes``
    caps its address space."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = ["timeout", "-k", "10", str(timeout), str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"),
           "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60, env=env,
                          preexec_fn=address_space_limit(max_bytes))


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule name → count), without its total line."""
    counts, in_table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            if line.strip().startswith("total"):
                break
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
    return counts


def job_blocks(output: str) -> list[tuple[str, str]]:
    """(rule, text) of each job a dry run prints, from its `rule NAME:` line to the next blank line."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^(?:local)?rule (\w+):\n(.*?)(?=\n\n|\Z)", output,
                                                          flags=re.M | re.S)]


def workdir(path: Path, config: Path) -> Path:
    """A fresh working directory whose config/config.yaml is a copy of ``config``."""
    (path / "config").mkdir(parents=True)
    shutil.copy(config, path / "config" / "config.yaml")
    return path
