"""The `au-ttt` command line: help, the info command, and one-line errors for user mistakes."""

import pytest
from conftest import REPO

from au_ttt.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_info_reports_parameters_and_flop_shares(capsys):
    assert main(["info", "--config", str(REPO / "config/config.yaml"), "--variant", "baseline",
                 "--variant", "au_roi_ttt"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "au_roi_ttt" in out and "22.05 M" in out


def test_config_error_is_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depht: 3\n")
    assert main(["info", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.depht" in err and str(bad) in err and "Traceback" not in err
