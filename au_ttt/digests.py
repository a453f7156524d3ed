"""The project's two content hashes: a file's bytes and a JSON-able value, both SHA-256 hex.

One place, so a run key, a bundle's weights checksum, a config hash and the DAG's params hash cannot drift
apart in how they spell the same content. Standard library only: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["file_digest", "json_digest"]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed (a multi-GiB weights file is never held in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def json_digest(obj: Any, *, compact: bool = True) -> str:
    """SHA-256 of the canonical JSON of ``obj``: keys sorted, non-JSON values as ``str``.

    ``compact=False`` keeps json's default ``", "``/``": "`` separators, the spelling the DAG's params hash
    (``section_params``) has always used: changing it would make Snakemake rerun every job once.
    """
    separators = (",", ":") if compact else None
    text = json.dumps(obj, sort_keys=True, separators=separators, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
