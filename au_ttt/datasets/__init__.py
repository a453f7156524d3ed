"""Dataset plug-ins: one module per dataset declares what is specific to it; :mod:`.registry` lists them.

Only the standard library is imported here, so the Snakefile's parse and ``--help`` stay light.
"""

from au_ttt.datasets.base import DatasetSpec
from au_ttt.datasets.registry import get, names, register

__all__ = ["DatasetSpec", "get", "names", "register"]
