"""The AU-TTT network: TTT-Linear math, token mixers, the AU-TTT block, backbone and heads."""
