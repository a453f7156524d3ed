"""AU-TTT: a vision test-time-training backbone for facial action unit detection.

Reproduction of Xing et al., "AU-TTT: Vision Test-Time Training model for Facial Action Unit
Detection" (arXiv 2503.23450). Importing this package has no side effects on torch state.
"""

__version__ = "0.1.0"
