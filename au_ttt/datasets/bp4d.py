"""BP4D-Spontaneous: 41 subjects × tasks T1–T8, AU occurrence CSVs, frames as JPEGs under the copy itself."""

from __future__ import annotations

from au_ttt.data.protocol import (
    BP4D_AUS,
    BP4D_FRAME_SIZE,
    BP4D_PART_FRAMES,
    BP4D_PARTS,
    BP4D_TASKS,
    CROSS_DOMAIN_AUS,
)
from au_ttt.datasets.base import DatasetSpec

SPEC = DatasetSpec(
    name="bp4d", title="BP4D", aus=BP4D_AUS, parts=BP4D_PARTS, part_frames=BP4D_PART_FRAMES,
    reader="au_ttt.data.bp4d:read_bp4d", checker="au_ttt.data.check:check_bp4d",
    landmark_reader="au_ttt.data.landmark_files:read_bp4d_landmarks", cross_domain_aus=CROSS_DOMAIN_AUS,
    loss_margin=0.1, frames_required=False, synth_folder="BP4D",
    frame_size=BP4D_FRAME_SIZE, sequences=len(BP4D_TASKS), synth_frames_key="bp4d_frames",
    synth_sequences_key="bp4d_tasks", synth_frame_size=(240, 320), paper_tables=("I", "II", "III"),
)
