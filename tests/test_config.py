"""Strict configuration: every typo or bad value is an error naming the file, the key and what is allowed."""

import pytest
from conftest import REPO

from au_ttt.config import ConfigError
from au_ttt.settings import load_settings


def _write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_shipped_configs_load():
    paper = load_settings(REPO / "config/paper.yaml")
    assert (paper.model.patch_size, paper.model.embed_dim, paper.model.depth, paper.model.num_heads) == (16, 384, 12, 6)
    assert paper.model.msp_dilations == (1, 3, 5) and paper.model.mini_batch_size == 14
    assert paper.model_for("original_ttt").mini_batch_size == 16
    assert load_settings(REPO / "config/config.yaml").model.grid_size == (4, 4)


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = _write(tmp_path, "model:\n  embed_dims: 384\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert str(path) in msg and "model.embed_dims" in msg and "embed_dim" in msg


def test_bad_choice_lists_allowed_values(tmp_path):
    with pytest.raises(ConfigError, match=r"model.mixer.*'mamba'.*one of 'linear', 'ttt', 'attention'"):
        load_settings(_write(tmp_path, "model:\n  mixer: mamba\n"))
    with pytest.raises(ConfigError, match=r"model.ttt_mini_batch.*an integer or one of 'row'"):
        load_settings(_write(tmp_path, "model:\n  ttt_mini_batch: rows\n"))
    with pytest.raises(ConfigError, match=r"model.msp.*true/false"):
        load_settings(_write(tmp_path, "model:\n  msp: 'yes'\n"))


def test_unknown_section_and_bad_variant(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'modle'"):
        load_settings(_write(tmp_path, "modle: {}\n"))
    with pytest.raises(ConfigError, match=r"variants.row2.bidirectinal"):
        load_settings(_write(tmp_path, "variants:\n  row2: {bidirectinal: true}\n"))
    settings = load_settings(_write(tmp_path, "variants:\n  a: {msp: false}\n"))
    with pytest.raises(ConfigError, match="unknown variant 'b'; defined variants: a"):
        settings.model_for("b")


def test_cross_field_check_is_reported_with_the_file(tmp_path):
    with pytest.raises(ConfigError, match="must be a multiple of patch_size"):
        load_settings(_write(tmp_path, "model:\n  img_size: 100\n"))


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(_write(tmp_path, "model: [unclosed\n"))
