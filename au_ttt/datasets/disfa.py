"""DISFA: 27 subjects, one left-camera video each (decoded by ``au-ttt data frames``), AU intensity files."""

from __future__ import annotations

from pathlib import Path

from au_ttt.data.protocol import CROSS_DOMAIN_AUS, DISFA_AUS, DISFA_FRAME_SIZE, DISFA_PART_FRAMES, DISFA_PARTS
from au_ttt.datasets.base import DatasetSpec


def read_landmarks(root: str | Path, subject: str, sequence: str):
    """DISFA ships one landmark folder per subject (its one video): the sequence is not needed."""
    from au_ttt.data.landmark_files import read_disfa_landmarks

    return read_disfa_landmarks(root, subject)


SPEC = DatasetSpec(
    name="disfa", title="DISFA", aus=DISFA_AUS, parts=DISFA_PARTS, part_frames=DISFA_PART_FRAMES,
    reader="au_ttt.data.disfa:read_disfa", checker="au_ttt.data.check:check_disfa",
    landmark_reader="au_ttt.datasets.disfa:read_landmarks", cross_domain_aus=CROSS_DOMAIN_AUS,
    loss_margin=0.15, frames_required=True, synth_folder="DISFA",
    frame_size=DISFA_FRAME_SIZE, subject_frames="au_ttt.data.protocol:disfa_label_lines",
    synth_frames_key="disfa_frames", synth_frame_size=(256, 192), paper_tables=("I", "II"),
)
