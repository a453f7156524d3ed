"""The one file hasher, JSON hasher and dataclass walker: their spelling is pinned, because run keys, bundle
checksums, config hashes and the DAG's params hashes already stored by users are made of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from au_ttt.config import to_dict
from au_ttt.digests import file_digest, json_digest
from au_ttt.train.provenance import config_hash, flatten

OBJ = {"b": [1, 2.5, (3, 4)], "a": {"z": None, "y": "x"}}


def test_json_digest_spelling_is_pinned() -> None:
    # the run key's and config hash's compact spelling, and the DAG params hash's default spelling
    assert json_digest(OBJ) == "eee78b47d3efac1e6b7bb39a166a2914dcc6a5a48ec4a908afdd243bb24cd2d1"
    assert json_digest(OBJ, compact=False) == "9fb53f17e5055302e833a5639eafaa5d96d3c722697204658aa1b015b81dbaf8"
    assert json_digest({"a": OBJ["a"], "b": OBJ["b"]}) == json_digest(OBJ)          # key order is not content


def test_file_digest_streams_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"au-ttt\n" * 100_000)                                           # several read chunks
    assert file_digest(path) == "7373c81fa11eef93b1b3fa9a7d355953fd7ca826f0bf3265cc39862cac8cc7c9"


@dataclass(frozen=True)
class _Inner:
    where: Path = Path("/data/x")
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    extra: dict[str, object] = field(default_factory=lambda: {"k": (_Inner(),)})


def test_one_walker_for_configs_hashes_and_params() -> None:
    plain = {"inner": {"where": "/data/x", "sizes": [1, 2]},
             "extra": {"k": [{"where": "/data/x", "sizes": [1, 2]}]}}
    assert to_dict(_Outer()) == plain
    assert to_dict(_Outer) is _Outer                                   # a class is not an instance to walk
    assert config_hash(_Outer()) == json_digest(plain)
    assert flatten(_Outer()) == {"inner.where": "/data/x", "inner.sizes": [1, 2], "extra.k": plain["extra"]["k"]}
