"""Sharded preprocessing: a shard is a list of subjects; its outputs cover exactly their index rows.

``au-ttt landmarks|crops|heatmaps --subjects S1 S2 …`` run a stage on the *sub-index* of those subjects
(the index rows of those subjects, in index order; :func:`select_subjects`). Every per-row file a shard
writes records the sub-index hash and the subjects, so each stage refuses an input made for another shard,
and a subject with no rows (a licensed copy that lacks it) gives valid empty outputs.

``au-ttt gather`` (:mod:`au_ttt.data.gather`) then checks that the shards cover every index row exactly
once and merges them into the one landmark file, crop store and heatmap cache per dataset that training
and evaluation read — byte-identical to what the unsharded commands write on the same index.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from au_ttt.errors import InputError

__all__ = ["select_subjects"]

log = logging.getLogger(__name__)


def select_subjects(index: pd.DataFrame, subjects: Sequence[str] | None) -> pd.DataFrame:
    """The rows of ``subjects`` in index order (positions reset), ``attrs['subjects']`` = sorted subjects.

    ``None`` returns ``index`` unchanged (the whole index, no shard). Subjects without rows are allowed
    (logged): their shard is simply empty.
    """
    if subjects is None:
        return index
    wanted = tuple(sorted(set(subjects)))
    if not wanted:
        raise InputError("--subjects needs at least one subject name")
    present = set(index["subject"].unique())
    absent = [s for s in wanted if s not in present]
    if absent:
        log.warning("subjects without index rows (their outputs stay empty): %s", ", ".join(absent))
    sub = index[index["subject"].isin(wanted)].reset_index(drop=True)
    sub.attrs = {**index.attrs, "subjects": wanted}
    return sub
