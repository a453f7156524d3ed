"""Published protocol facts for BP4D and DISFA: AU sets, subject-exclusive parts, fold numberings.

Subject lists and fold numberings are the ones ME-GraphAU, JAA-Net, FG-Net, AUNCE and MDHR publish in
their code (e.g. ME-GraphAU ``data/BP4D/list/``, FG-Net ``code/data_utils.py``). Folds are always *named by
their test part*; the two published numberings are kept as explicit maps so a user can translate either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from au_ttt.datasets import registry

__all__ = [
    "AUS", "BP4D_AUS", "BP4D_CSV_AUS", "BP4D_FRAME_SIZE", "BP4D_PARTS", "BP4D_PART_FRAMES", "BP4D_TASKS",
    "CROSS_DOMAIN_AUS", "DATASETS", "DISFA_AUS", "DISFA_FRAMES_PER_VIDEO", "DISFA_FRAME_SIZE",
    "DISFA_OCCURRENCE_THRESHOLD", "DISFA_PARTS", "DISFA_PART_FRAMES", "DISFA_SHORT_VIDEOS", "FGNET_FOLD_TEST_PART",
    "MAX_SUBJECTS_PER_PART", "MEGRAPHAU_FOLD_TEST_PART", "PARTS", "PART_FRAMES", "TITLES", "Dataset", "au_columns",
    "bp4d_segments", "cross_domain_indices", "cross_pairs", "disfa_label_lines", "first_subjects", "part_of_subject",
    "published_frames", "shard_subjects", "train_parts",
]

Dataset = str   # a registered dataset name (au_ttt.datasets.registry)


class _Names(Sequence[str]):
    """The registered dataset names, read at use (a plug-in registered later is included)."""

    def __getitem__(self, i):  # type: ignore[override]
        return registry.names()[i]

    def __len__(self) -> int:
        return len(registry.names())

    def __repr__(self) -> str:
        return repr(registry.names())


class _SpecField(Mapping[str, Any]):
    """dataset → one field of its registered spec (``AUS[name]`` is that spec's ``aus``)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getitem__(self, dataset: str) -> Any:
        if dataset not in registry.names():
            raise KeyError(dataset)
        return getattr(registry.get(dataset), self._name)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.names())

    def __len__(self) -> int:
        return len(registry.names())


DATASETS: Sequence[str] = _Names()
TITLES: Mapping[str, str] = _SpecField("title")   # dataset → the name tables and messages print


def cross_pairs() -> list[tuple[str, str]]:
    """(source, target) of the paper's cross-domain evaluations (Table II), in registration order."""
    table2 = registry.in_paper_table("II")
    return [(s, t) for s in table2 for t in table2 if s != t]

# The AUs each dataset is evaluated on (paper §III-A, following DRML [16]).
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
AUS: Mapping[str, tuple[int, ...]] = _SpecField("aus")

# AU columns of a BP4D AU_OCC CSV (after the frame column '0'): more AUs than the 12 evaluated. This is the set
# the project's format replicas write; readers select the evaluated columns by name, so a licensed copy with
# more or fewer extra columns reads the same.
BP4D_CSV_AUS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24,
                                 27, 28)

# DISFA intensity (0-5) → occurrence: intensity >= 2 (ME-GraphAU tool/DISFA_image_label_process.py).
DISFA_OCCURRENCE_THRESHOLD = 2

# AUs shared by the two datasets, scored in cross-domain evaluation (FG-Net eval_interpreter.py).
CROSS_DOMAIN_AUS: tuple[int, ...] = (1, 2, 4, 6, 12)

# Subject-exclusive parts (ME-GraphAU / JAA-Net lists). Order inside a part is the published order.
BP4D_PARTS: dict[int, tuple[str, ...]] = {
    1: ("F001", "M007", "F018", "F008", "F002", "M004", "F010", "F009", "M012", "M001", "F016", "M014", "F023",
        "M008"),
    2: ("M011", "F003", "M010", "M002", "F005", "F022", "M018", "M017", "F013", "M016", "F020", "F011", "M013",
        "M005"),
    3: ("F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021", "F017", "M015", "F014"),
}
DISFA_PARTS: dict[int, tuple[str, ...]] = {
    1: ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    2: ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    3: ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
}
PARTS: Mapping[str, Mapping[int, tuple[str, ...]]] = _SpecField("parts")
# The largest part of either dataset: `first_subjects(…, MAX_SUBJECTS_PER_PART)` lists every published subject.
MAX_SUBJECTS_PER_PART = max(len(p) for table in (BP4D_PARTS, DISFA_PARTS) for p in table.values())

# Labelled frames of the published protocol, per part. BP4D: every data row of the AU_OCC CSVs of the
# part's subjects × tasks T1–T8 (ME-GraphAU tool/BP4D_image_label_process.py reads all of them; line counts
# of ME-GraphAU data/BP4D/list/BP4D_test_img_path_fold{1,2,3}.txt). DISFA: one frame per line of each
# subject's SN###_au1.txt (ME-GraphAU tool/DISFA_image_label_process.py; data/DISFA/list/…fold*.txt):
# 4,845 per video, SN010 4,844. Totals 146,847 and 130,814.
BP4D_TASKS: tuple[str, ...] = ("T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8")
BP4D_PART_FRAMES: dict[int, int] = {1: 50_631, 2: 50_182, 3: 46_034}
DISFA_FRAMES_PER_VIDEO = 4_845
DISFA_SHORT_VIDEOS: dict[str, int] = {"SN010": 4_844}
DISFA_PART_FRAMES: dict[int, int] = {1: 43_604, 2: 43_605, 3: 43_605}
PART_FRAMES: Mapping[str, Mapping[int, int]] = _SpecField("part_frames")

# Raw frame size (width, height): a BP4D frame is a 1040×1392 portrait JPEG, a DISFA left-camera frame
# 1024×768 (measured on the sample frames PyTorch-JAANet ships: dataset/BP4D/F001/T1/2440.jpg,
# dataset/DISFA/SN002/0.jpg).
BP4D_FRAME_SIZE: tuple[int, int] = (1040, 1392)
DISFA_FRAME_SIZE: tuple[int, int] = (1024, 768)

# Published fold numberings → the part each fold tests on (ME-GraphAU, FG-Net). We name folds by test part.
MEGRAPHAU_FOLD_TEST_PART: dict[int, int] = {1: 3, 2: 2, 3: 1}   # ME-GraphAU / MDHR / JAA-Net "combine_1_2"
FGNET_FOLD_TEST_PART: dict[int, int] = {0: 1, 1: 2, 2: 3}       # FG-Net labels/{0,1,2}/test.csv


def au_columns(dataset: str) -> list[str]:
    """Index column names of a dataset's AUs, e.g. ['AU1', 'AU2', …]."""
    return [f"AU{au}" for au in AUS[_check_dataset(dataset)]]


def part_of_subject(dataset: str, subject: str) -> int:
    """The published part (1, 2, 3) of a subject; unknown subjects are an error, not a silent drop."""
    for part, subjects in PARTS[_check_dataset(dataset)].items():
        if subject in subjects:
            return part
    raise KeyError(f"subject {subject!r} is not in any published {dataset.upper()} part "
                   f"(known: {', '.join(s for p in PARTS[dataset].values() for s in p)})")


def train_parts(test_part: int) -> tuple[int, ...]:
    """Training parts of the fold that tests on ``test_part``."""
    if test_part not in (1, 2, 3):
        raise ValueError(f"test part must be 1, 2 or 3, got {test_part!r}")
    return tuple(p for p in (1, 2, 3) if p != test_part)


def cross_domain_indices(dataset: str) -> list[int]:
    """Output indices of the cross-domain AUs in a dataset's AU order (BP4D [0,1,2,3,6]; DISFA [0,1,2,3,5])."""
    spec = registry.get(dataset)
    return [spec.aus.index(au) for au in spec.cross_domain_aus]


def published_frames(dataset: str) -> int:
    """All labelled frames of the published protocol (BP4D 146,847; DISFA 130,814)."""
    return sum(PART_FRAMES[_check_dataset(dataset)].values())


def disfa_label_lines(subject: str) -> int:
    """Label lines (= labelled frames) of one DISFA subject in the published lists."""
    return DISFA_SHORT_VIDEOS.get(subject, DISFA_FRAMES_PER_VIDEO)


@cache
def bp4d_segments() -> dict[str, dict[str, tuple[int, int]]]:
    """subject → task → (first frame, frames) of every AU-coded BP4D segment (au_ttt/data/bp4d_segments.py).

    Each segment is a run of consecutive frame numbers; the counts sum to :data:`BP4D_PART_FRAMES` per part.
    """
    from au_ttt.data.bp4d_segments import SEGMENTS

    out: dict[str, dict[str, tuple[int, int]]] = {}
    for line in SEGMENTS.splitlines():
        subject, *runs = line.split()
        out[subject] = {task: (int(first), int(n)) for task, (first, n) in
                        zip(BP4D_TASKS, (r.split("+") for r in runs), strict=True)}
    return out


def first_subjects(dataset: str, per_part: int) -> list[str]:
    """The first ``per_part`` subjects of each published part, in part order (all of a smaller part).

    SynthAU generates exactly these subjects; ``per_part`` = 14 (the largest part of either dataset) gives the
    complete published lists (41 BP4D / 27 DISFA subjects).
    """
    parts = PARTS[_check_dataset(dataset)]
    most = MAX_SUBJECTS_PER_PART
    if not 1 <= per_part <= most:
        raise ValueError(f"subjects_per_part={per_part} is out of range: use 1..{most} ({most} takes every "
                         "published subject of both datasets)")
    return [s for part in (1, 2, 3) for s in parts[part][:per_part]]


def shard_subjects(subjects: list[str] | tuple[str, ...], per_shard: int) -> dict[str, tuple[str, ...]]:
    """Preprocessing shards (one DAG job each): consecutive groups of ``per_shard`` subjects, by name.

    A one-subject shard is named after its subject; larger ones ``s000``, ``s001``, … in list order.
    """
    if per_shard < 1:
        raise ValueError(f"shard size must be >= 1 subject, got {per_shard}")
    groups = [tuple(subjects[i:i + per_shard]) for i in range(0, len(subjects), per_shard)]
    return {(g[0] if per_shard == 1 else f"s{k:03d}"): g for k, g in enumerate(groups)}


def _check_dataset(dataset: str) -> str:
    return registry.get(dataset).name
