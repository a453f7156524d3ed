"""BP4D-Spontaneous: 41 subjects × tasks T1–T8, AU occurrence CSVs, frames as JPEGs under the copy itself."""

from __future__ import annotations

from au_ttt.data.protocol import BP4D_AUS, BP4D_PART_FRAMES, BP4D_PARTS, CROSS_DOMAIN_AUS
from au_ttt.datasets.base import DatasetSpec

SPEC = DatasetSpec(
    name="bp4d", title="BP4D", aus=BP4D_AUS, parts=BP4D_PARTS, part_frames=BP4D_PART_FRAMES,
    reader="au_ttt.data.bp4d:read_bp4d", checker="au_ttt.data.check:check_bp4d",
    landmark_reader="au_ttt.data.landmark_files:read_bp4d_landmarks", cross_domain_aus=CROSS_DOMAIN_AUS,
    loss_margin=0.1, frames_required=False, synth_folder="BP4D",
    paper_tables=("I", "II", "III"),
)
