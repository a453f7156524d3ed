"""Inputs that would eat the machine ("billion laughs" configs) and the address-space cap of the runs that get them."""

from pathlib import Path

from conftest import REPO

# 6 GiB: what a process that imports torch maps, with room to spare; a run that expands a bomb fails instead of
# swapping the machine
CAP = 6 << 30
BOMB_MESSAGE = "expands to more than 100,000 YAML values once its aliases (*name) are written out"


def laughs(levels: int = 9, mapping: bool = False) -> str:
    """`variants` entries l0..l{levels-1}, each repeating the previous one 9 times (a list or a mapping): 9 x 9
    is 387 M values once written out, a few hundred bytes on disk."""
    def level(i: int) -> str:
        item = "lol" if i == 0 else f"*l{i - 1}"
        body = ", ".join(f"k{j}: {item}" for j in range(9)) if mapping else ", ".join([item] * 9)
        return f"  l{i}: &l{i} {'{' + body + '}' if mapping else '[' + body + ']'}"
    return "\n".join(level(i) for i in range(levels)) + "\n"


def bomb_config(path: Path, mapping: bool = False) -> Path:
    """The CI config with a 9 x 9 bomb added to its `variants` (where it was reported)."""
    text = (REPO / ".test/config/config.yaml").read_text()
    assert "\nvariants:\n" in text
    path.write_text(text.replace("\nvariants:\n", "\nvariants:\n" + laughs(mapping=mapping), 1))
    return path
