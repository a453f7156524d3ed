"""INPUT arguments → the image and video files they name, for ``au-ttt predict`` and the served model.

An INPUT is an image, a video, a folder (searched recursively), a glob (``**`` allowed) or a text list
(``.txt``/``.lst``/``.list``, one INPUT per line, ``#`` comments, relative to the list's folder). What cannot
be found is returned as a named :class:`Unreadable` entry, never an exception, so one bad path does not stop
a run. Expansion always ends, and ends small:

* folders and globs are walked here (not by :func:`glob.glob`, which follows directory links forever inside
  ``ln -s .. up`` and sorts every path before returning one): links to folders are followed, but each real
  folder is entered once, so a link back to an ancestor ends there; a glob only enters folders that can
  still match it; hidden files and folders are skipped;
* a list file that names itself (directly or through other lists) is a cycle: reported once, not expanded
  again; a list named twice adds nothing the second time; every file is kept once;
* past ``max_inputs`` files (or as many folders walked) expansion stops with an :class:`InputError`.

With ``root`` (the served model), every path must resolve, links followed, inside that folder; any other
path, and any path with a ``..`` part, gets the one message :data:`OUTSIDE_ROOT` whether it exists or not,
so a client cannot probe the server's files. List files are not read there: their lines would come back to
the client as input names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Literal

from au_ttt.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "LIST_SUFFIXES", "MAX_INPUTS", "MAX_PIXELS", "OUTSIDE_ROOT", "VIDEO_SUFFIXES",
           "InputBudget", "Source", "Unreadable", "expand_inputs"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                            ".pbm", ".gif", ".jp2"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                            ".flv", ".3gp", ".mts", ".m2ts", ".ts", ".ogv"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
# files per run: BP4D's 146k frames fit; a loop or a glob over `/` stops here instead of filling memory
MAX_INPUTS = 200_000
# decode limit for one still image (read by au_ttt.predict.inputs): above the 102–108 MP of the largest camera
# and phone sensors in common use; 150 MP of RGB is 0.45 GB decoded (Pillow refuses over 2 × 89.5 MP itself)
MAX_PIXELS = 150_000_000
OUTSIDE_ROOT = "not an allowed input: paths must lie inside the served folder (AU_TTT_SERVE_ROOT)"
_GLOB_CHARS = frozenset("*?[")
_MAX_LIST_DEPTH = 5


@dataclass(frozen=True)
class Source:
    """One input file: its absolute path, ``image`` or ``video``, and the name the user gave for it."""

    path: Path
    kind: Literal["image", "video"]
    name: str


@dataclass(frozen=True)
class Unreadable:
    """An input that produced no frames, with the reason shown in the summary."""

    name: str
    reason: str


def _kind(path: Path) -> Literal["image", "video"]:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _known(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES


@dataclass
class InputBudget:
    """Files kept and folders walked so far, shared by the expansions of one run or one request."""

    max_inputs: int = MAX_INPUTS
    files: int = 0
    folders: int = 0

    def take(self, what: str) -> None:
        if what == "file":
            self.files += 1
        else:
            self.folders += 1
        if max(self.files, self.folders) > self.max_inputs:
            raise InputError(f"the INPUTs expand to more than {self.max_inputs} {what}s; split the run into smaller "
                             "INPUTs or raise --max-inputs")


@dataclass
class _Expansion:
    budget: InputBudget
    root: str | None = None
    sources: list[Source] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)
    reported: set[tuple[str, str]] = field(default_factory=set)
    lists_open: set[Path] = field(default_factory=set)       # list files being expanded now
    lists_done: set[Path] = field(default_factory=set)       # list files expanded before

    def inside(self, real: str) -> bool:
        return self.root is None or real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def add(self, path: Path, name: str) -> bool:
        """Keep ``path`` once; False if it resolves outside the root (then it is passed over)."""
        path = path.resolve()
        if not self.inside(str(path)):
            return False
        if path not in self.seen:
            self.budget.take("file")
            self.seen.add(path)
            self.sources.append(Source(path, _kind(path), name))
        return True

    def fail(self, name: str, reason: str) -> None:
        if (name, reason) not in self.reported:
            self.reported.add((name, reason))
            self.unreadable.append(Unreadable(name, reason))


def _tree(top: Path, acc: _Expansion, enter: Callable[[tuple[str, ...]], bool] = lambda rel: True
          ) -> Iterator[tuple[tuple[str, ...], Path, list[str]]]:
    """(folder relative to ``top``, folder, its sorted non-hidden file names), depth first in sorted order.

    Links to folders are followed, each real folder once (a loop ends where it comes back); ``enter(rel)``
    says whether a sub-folder can hold anything wanted. Unreadable folders are passed over.
    """
    visited: set[str] = set()
    stack: list[tuple[tuple[str, ...], Path]] = [((), top)]
    while stack:
        rel, folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited or not acc.inside(real):
            continue
        visited.add(real)
        acc.budget.take("folder")
        files, dirs = [], []
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            for e in entries:
                if e.is_dir():
                    dirs.append(e.name)
                elif e.is_file():
                    files.append(e.name)
        except OSError:
            continue
        yield rel, folder, files
        stack.extend(((*rel, d), folder / d) for d in reversed(dirs) if enter((*rel, d)))


def _matcher(pattern: tuple[str, ...]) -> Callable[[tuple[str, ...], bool], bool]:
    """``match(parts, prefix)``: do path parts match the glob parts (``**``: any number of folders)? With
    ``prefix``, could they still grow into a match?"""

    def match(parts: tuple[str, ...], prefix: bool = False) -> bool:
        @cache
        def m(i: int, j: int) -> bool:
            if j == len(parts):
                return prefix or all(p == "**" for p in pattern[i:])
            if i == len(pattern):
                return False
            if pattern[i] == "**":
                return m(i + 1, j) or m(i, j + 1)
            return fnmatchcase(parts[j], pattern[i]) and m(i + 1, j + 1)

        return m(0, 0)

    return match


def _glob(path: Path, item: str, acc: _Expansion) -> None:
    parts = path.parts
    first = next(i for i, p in enumerate(parts) if any(c in p for c in _GLOB_CHARS))
    top, match = Path(*parts[:first]), _matcher(parts[first:])
    found = 0
    matched: set[tuple[str, ...]] = set()       # folders the pattern names: everything below them counts

    def under_match(rel: tuple[str, ...]) -> bool:
        return any(rel[:k] in matched for k in range(len(rel) + 1))

    if top.is_dir():
        for rel, folder, files in _tree(top, acc, lambda rel: under_match(rel[:-1]) or match(rel, True)):
            if rel and match(rel):
                matched.add(rel)
            whole = under_match(rel)
            for f in files:
                if _known(f) and (whole or match((*rel, f))):
                    found += acc.add(folder / f, str(folder / f))
    if not found:
        acc.fail(item, "the pattern matched no image or video file")


def _list_file(path: Path, item: str, acc: _Expansion, depth: int) -> None:
    real = path.resolve()
    if real in acc.lists_open:
        acc.fail(str(real), "the list file names itself (directly or through another list): not expanded again")
        return
    if real in acc.lists_done:                  # its entries are in already
        return
    if depth >= _MAX_LIST_DEPTH:
        acc.fail(item, f"list files nested more than {_MAX_LIST_DEPTH} deep")
        return
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        acc.fail(item, f"cannot read the list file ({err})")
        return
    acc.lists_open.add(real)
    try:
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                _expand_one(line, path.parent, acc, depth + 1)
    finally:
        acc.lists_open.discard(real)
        acc.lists_done.add(real)


def _expand_one(item: str, base: Path, acc: _Expansion, depth: int) -> None:
    path = Path(item) if acc.root is not None else Path(item).expanduser()
    if not path.is_absolute():
        path = base / path
    if acc.root is not None and (".." in path.parts or not acc.inside(os.path.normpath(path))
                                 or not acc.inside(os.path.realpath(path))):
        acc.fail(item, OUTSIDE_ROOT)             # decided before anything is looked up: existence stays hidden
        return
    if any(c in item for c in _GLOB_CHARS) and not path.exists():
        _glob(path, item, acc)
        return
    if path.is_dir():
        found = 0
        for _, folder, files in _tree(path, acc):
            found += sum(acc.add(folder / f, str(folder / f)) for f in files if _known(f))
        if not found:
            acc.fail(item, "folder holds no image or video file")
        return
    if not path.exists():
        acc.fail(item, "not found")
        return
    if path.suffix.lower() in LIST_SUFFIXES:
        if acc.root is not None:                 # its lines would come back as input names: a text-file reader
            acc.fail(item, "list files are not read by the served model; send the paths themselves")
        else:
            _list_file(path, item, acc, depth)
        return
    acc.add(path, item)


def expand_inputs(items: list[str], base: str | Path | None = None, *, root: str | Path | None = None,
                  budget: InputBudget | None = None) -> tuple[list[Source], list[Unreadable]]:
    """Sources in the order given (each file once) and the inputs that led to nothing.

    ``root``: only paths resolving inside it are expanded (relative ones are taken from ``base``, default the
    current folder); ``budget``: the file/folder allowance, shared when several calls make one request.
    """
    acc = _Expansion(budget or InputBudget(), os.path.realpath(root) if root is not None else None)
    start = Path(base) if base is not None else Path.cwd()
    for item in items:
        _expand_one(str(item), start, acc, 0)
    return acc.sources, acc.unreadable
