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


def test_os_error_is_one_line_naming_the_path(tmp_path, capsys):
    """A real OS refusal (an output folder below a file) ends as one line with the path and a fix, exit 2."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    assert main(["synth", "--out", str(blocker / "synth"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(blocker) in err and "in the way" in err


@pytest.mark.parametrize(("code", "fix"), [(28, "disk is full"), (30, "read-only"), (13, "permissions")])
def test_os_error_names_the_fix(code, fix):
    from au_ttt.cli import describe_os_error

    text = describe_os_error(OSError(code, "refused", "/data/out/crops"))
    assert text.startswith("/data/out/crops: refused") and fix in text
