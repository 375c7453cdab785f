"""The `runner` command: each subcommand is its module's own arguments and run()."""

import subprocess
import sys
from pathlib import Path

import pytest
from test_evaluate import make_study

from runner import cli


def test_subcommands_run_their_module(tmp_path, capsys):
    study = make_study(tmp_path / "colours")
    assert cli.main(["summary", str(study)]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("base")
    assert (study / "summary.md").exists()
    assert cli.main(["report", str(study)]) == 0
    assert (study / "report.html").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["tune"], "the following arguments are required: config"),
        (["evaluate", "somewhere"], "the following arguments are required: --data"),
    ],
)
def test_bad_subcommand_or_flags_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.e2e
def test_console_script_is_installed():
    """pyproject's [project.scripts] entry, as a user runs it from the venv."""
    r = subprocess.run([str(Path(sys.executable).parent / "runner"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "tune" in r.stdout and "evaluate" in r.stdout
