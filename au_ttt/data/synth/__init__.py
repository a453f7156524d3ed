"""SynthAU: a synthetic AU dataset written in the exact BP4D and DISFA on-disk formats (docs/synthau.md).

``face`` (parametric face, landmarks, AU motion) → ``sequences`` (intensity trajectories, pose tracks) →
``render`` (drawing, AU appearance, domain camera) → ``writers`` (file formats) → ``generate`` (the tree).
"""

from au_ttt.data.synth.generate import BP4D_COLUMNS, generate_synthau

__all__ = ["BP4D_COLUMNS", "generate_synthau"]
