"""Thin CLI glue: one module per ``au-ttt`` subcommand.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Heavy
imports (torch, timm, cv2) happen inside ``run`` so that ``au-ttt --help`` stays instant.
"""
