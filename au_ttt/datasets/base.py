"""What a dataset plug-in declares: protocol facts as data, and the heavy code as lazily imported callables.

A spec is read by the frame index (``reader``), the pre-flight check (``checker``), the landmark stage
(``landmark_reader``), the plan, the CLI's ``choices=`` and the DAG. Callables are named ``"module:function"``
so that importing a spec never imports numpy, pandas or torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def load_callable(ref: str) -> Callable[..., Any]:
    """The function a ``"package.module:function"`` reference names (imported on first use)."""
    module, _, name = ref.partition(":")
    if not module or not name:
        raise ValueError(f"callable reference {ref!r} is not 'module:function'")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its name (the index's ``dataset`` value, the results folder), AUs and protocol.

    ``reader(root, frames_root, allow_unknown_subjects, progress=...)`` returns (index rows, IndexReport);
    ``checker(root, frames, **options)`` returns a CheckReport; ``landmark_reader(root, subject, sequence)``
    the shipped 68-point landmarks of one sequence. ``parts`` maps part 1-3 to its subjects in published order;
    ``part_frames`` the published labelled frames per part (for the check and the plan; empty: unknown).
    """

    name: str
    title: str
    aus: tuple[int, ...]
    parts: Mapping[int, tuple[str, ...]]
    reader: str
    part_frames: Mapping[int, int] = field(default_factory=dict)
    checker: str | None = None
    landmark_reader: str | None = None
    cross_domain_aus: tuple[int, ...] = ()
    loss_margin: float | None = None
    frames_required: bool = False   # the index reads decoded frames (``--frames``), not images under ``--root``
    synth_folder: str | None = None   # its folder inside a SynthAU root, when SynthAU renders it
    frame_size: tuple[int, int] = (0, 0)   # raw frame (width, height) of a licensed copy, for the plan
    sequences: int = 1                     # published sequences per subject
    subject_frames: str | None = None      # "module:function" (subject) -> labelled frames; None: part mean
    synth_frames_key: str | None = None    # workflow.synthau key of frames per sequence
    synth_sequences_key: str | None = None  # workflow.synthau key of sequences per subject (None: one)
    synth_frame_size: tuple[int, int] = (0, 0)   # SynthAU's rendered (width, height)
    paper_tables: tuple[str, ...] = ()   # the paper's tables that report it ("I", "II", "III"): the tables
    #                                      compare these with published numbers; other datasets get our own rows

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.isidentifier():
            raise ValueError(f"dataset name {self.name!r} must be a lower-case identifier (it names folders)")
        if sorted(self.parts) != [1, 2, 3]:
            raise ValueError(f"{self.name}: parts must be 1, 2 and 3 (folds are named by test part)")
        if not self.aus:
            raise ValueError(f"{self.name}: no AUs")

    def subjects(self) -> list[str]:
        """Every published subject, part by part in published order."""
        return [s for part in (1, 2, 3) for s in self.parts[part]]

    def published_subject_frames(self, subject: str, part: int) -> float:
        """Labelled frames of one published subject (the part's mean where only part totals are published)."""
        if self.subject_frames is not None:
            return load_callable(self.subject_frames)(subject)
        return self.part_frames[part] / len(self.parts[part])

    def read(self, root: Any, frames_root: Any = None, allow_unknown_subjects: bool = False,
             progress: bool = True) -> tuple[Any, Any]:
        """Index rows and report of a copy (``frames_root``: image root; default ``root``)."""
        return load_callable(self.reader)(root, frames_root, allow_unknown_subjects, progress=progress)

    def check(self, root: Any, frames: Any = None, **options: Any) -> Any:
        """Pre-flight report of a copy; a dataset without a checker cannot be checked."""
        if self.checker is None:
            raise ValueError(f"dataset {self.name!r} declares no pre-flight check")
        return load_callable(self.checker)(root, frames, **options)

    def landmarks(self, root: Any, subject: str, sequence: str) -> Any:
        """Shipped landmarks of one sequence (None reader: the dataset ships none)."""
        if self.landmark_reader is None:
            raise ValueError(f"dataset {self.name!r} ships no landmarks; use --backend dlib or face_alignment")
        return load_callable(self.landmark_reader)(root, subject, sequence)
