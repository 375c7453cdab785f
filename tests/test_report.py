"""report.html: self-contained, every variant, embedded figures; interrupted and errored studies too."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_evaluate import BEST, crash, make_study

from runner import cli
from runner.results import report, summary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(tmp_path) -> Path:
    return make_study(tmp_path / "colours", checkpoints=False)


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def test_report_is_self_contained(study):
    path = report.write_report(summary.read(study))
    assert path == study / "report.html"
    page = path.read_text()
    for v in BEST:
        assert f">{v}<" in page
    pngs = _pngs(page)
    assert len(pngs) == 2 + len(BEST)  # val overview, per-variant curves, one confusion matrix per variant
    assert all(p.startswith(b"\x89PNG") for p in pngs)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)  # nothing loaded from anywhere
    assert "<style>" in page and "<link" not in page and "<script" not in page


def test_report_sections(study):
    page = report.write_report(summary.read(study)).read_text()
    assert "mean ± 95% CI" in page and "p (Holm)" in page and ">reference<" in page and ">better<" in page
    assert "0123abc" in page and "versions.torch" in page and "machine.hostname" in page
    assert "runner/tune.py configs/x.py" in page  # the command, as typed
    assert "Data audit" not in page  # no audit.json: no section
    assert "Partial results" not in page
    assert "<h2>Answer</h2>" not in page and "Best sample" not in page  # no search: no answer


def test_report_renders_audit_json_generically(study):
    (study / "audit.json").write_text(
        json.dumps({"duplicates": 3, "per_class": {"red": 10, "blue": 2}, "warnings": ["class blue has 2 images <b>"]})
    )
    page = report.write_report(summary.read(study)).read_text()
    assert "Data audit" in page
    assert "per_class.red" in page and ">10<" in page
    assert "class blue has 2 images &lt;b&gt;" in page  # escaped


def test_report_interrupted_and_errored(study):
    crash(next(study.glob("same_seed0_*")))  # errored
    (next(study.glob("same_seed1_*")) / "confusion_matrix.json").unlink()
    d = next(study.glob("better_seed2_*"))  # never started: no result.json
    (d / "result.json").unlink()
    (d / "confusion_matrix.json").unlink()
    lines = (next(study.glob("base_seed1_*")) / "result.json").read_text().splitlines()
    (next(study.glob("base_seed1_*")) / "result.json").write_text(
        "\n".join(lines[:-1] + [json.dumps({**json.loads(lines[-2]), "status": "running"})]) + "\n"
    )  # interrupted
    page = report.write_report(summary.read(study)).read_text()
    assert "Partial results" in page
    assert ">error<" in page and ">pending<" in page and ">interrupted<" in page
    assert "RuntimeError: boom" in page
    assert len(_pngs(page)) == 2 + len(BEST)


def test_report_without_any_epoch(tmp_path):
    root = tmp_path / "fresh"
    d = root / "v_seed0_x_00000"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"spec": {"variant": "v", "seed": 0}}))
    page = report.write_report(summary.read(root)).read_text()
    assert ">v<" in page and "No epoch has finished yet" in page and "no study.json" in page


@pytest.mark.e2e
def test_report_cli(study, tmp_path):
    r = subprocess.run([sys.executable, "-m", "runner.report", str(study)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(study / "report.html") and (study / "report.html").exists()
    assert cli.command("report", [str(tmp_path / "gone")]) == 2
    (tmp_path / "empty").mkdir()
    assert cli.command("report", [str(tmp_path / "empty")]) == 2
    with pytest.raises(SystemExit) as e:
        cli.command("report", [])  # argparse: one line on stderr
    assert e.value.code == 2
