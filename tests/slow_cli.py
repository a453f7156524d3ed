"""Test-only wrapper: run the ``au-ttt`` CLI with one function slowed down, so a test can kill the stage at
a chosen point (tests/test_faults_data.py). Production code has no fault hooks; this patches from outside.

    python tests/slow_cli.py MODULE:FUNCTION SECONDS -- <au-ttt arguments>

Each call of MODULE.FUNCTION sleeps SECONDS first, after creating the file named by $SLOW_CLI_MARK (if
set), so the test knows the stage has reached that point. Worker processes forked later inherit the patch.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from pathlib import Path


def main() -> int:
    target, delay = sys.argv[1], float(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1:]
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, attr)

    @functools.wraps(real)
    def slow(*args, **kwargs):
        if os.environ.get("SLOW_CLI_MARK"):
            Path(os.environ["SLOW_CLI_MARK"]).touch()
        time.sleep(delay)
        return real(*args, **kwargs)

    setattr(module, attr, slow)
    from au_ttt.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
