"""Growing a study on a real local Ray: more seeds or variants run only the new trials, a changed variant is
refused, and sequential seeds stop each variant once it is decided."""

import csv
import hashlib
import re
import shlex
from pathlib import Path

import pytest
from conftest import run_cli, write_study

pytestmark = pytest.mark.e2e

STUDY = """
study = Study(
    name="grow",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), model=ModelConfig(hidden=(16,)),
                     train=TrainConfig(epochs=2, batch_size=64)),
    variants=VARIANTS,
    seeds=SEEDS,
)
"""
TWO = '{"base": {}, "dropout": {"model.dropout": 0.2}}'


def _study(path: Path, variants: str = TWO, seeds: str = "(0, 1)") -> Path:
    return write_study(path, STUDY.replace("VARIANTS", variants).replace("SEEDS", seeds))


def _fingerprints(results: Path) -> dict[str, str]:
    """A hash of every file of every trial dir: result.json, checkpoints, TensorBoard events."""
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(results.glob("*_seed*/**/*")) if p.is_file()}  # fmt: skip


def _rows(results: Path) -> list[dict]:
    return list(csv.DictReader(open(results / "summary.csv")))


def test_more_seeds_then_a_new_variant_run_only_the_new_trials(tmp_path):
    study = _study(tmp_path / "s.py")
    out, results = tmp_path / "out", tmp_path / "out" / "grow"
    first = run_cli(str(study), "--storage", str(out), "--name", "grow")
    assert first.returncode == 0, first.stderr[-3000:]
    before = _fingerprints(results)

    # the printed advice adds seeds, and works as printed
    advice = re.search(r"python -m runner\.tune (.*)", first.stdout)
    assert advice and "--seeds=" in advice.group(1), first.stdout[-2000:]
    grown = run_cli(*shlex.split(advice.group(1)))
    assert grown.returncode == 0, grown.stderr[-3000:]
    n_seeds = len(_rows(results)) // 2
    assert n_seeds > 2 and f"grow   {2 * (n_seeds - 2)} new trials" in grown.stdout
    assert re.search(rf"\[{2 * (n_seeds - 2)}/{2 * (n_seeds - 2)}\]", grown.stdout)  # only the new trials ran
    after = _fingerprints(results)
    assert {k: after[k] for k in before} == before  # the old trials' files are byte-identical
    md = (results / "summary.md").read_text()
    assert f"| base | {n_seeds} | {n_seeds} | {n_seeds} |" in md

    # a new variant: only its trials run
    seeds = f"0-{n_seeds - 1}"
    three = _study(tmp_path / "s3.py", TWO[:-1] + ', "wide": {"model.hidden": [32]}}')
    added = run_cli(str(three), "--seeds", seeds, "--storage", str(out), "--resume", str(results))
    assert added.returncode == 0, added.stderr[-3000:]
    assert f"grow   {n_seeds} new trials (wide)" in added.stdout
    assert len(_rows(results)) == 3 * n_seeds

    # a changed variant is refused, naming it and the key
    changed = _study(tmp_path / "changed.py", '{"base": {}, "dropout": {"model.dropout": 0.3}}')
    refused = run_cli(str(changed), "--seeds", seeds, "--storage", str(out), "--resume", str(results))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "variant 'dropout' (model.dropout: 0.2 -> 0.3)" in refused.stderr
    # removed seeds stay on disk and leave the tables
    fewer = run_cli(str(three), "--seeds", "0-1", "--storage", str(out), "--resume", str(results))
    assert fewer.returncode == 0, fewer.stderr[-2000:]
    assert len(_rows(results)) == 6 and "kept on disk and left out" in fewer.stdout


def test_sequential_seeds_decide_the_clear_variant_early_and_run_the_close_one_to_max_seeds(tmp_path):
    study = _study(tmp_path / "s.py", '{"base": {}, "near": {"model.dropout": 0.05}, "hopeless": {"optim.lr": 1e-6}}',
                   "(0, 1, 2)").read_text().replace("seeds=(0, 1, 2),", "seeds=(0, 1, 2),\n    max_seeds=5,")  # fmt: skip
    path = tmp_path / "seq.py"
    path.write_text(study)
    proc = run_cli(str(path), "--storage", str(tmp_path / "out"), "--name", "seq")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(tmp_path / "out" / "seq")
    seeds = {v: sorted(int(r["seed"]) for r in rows if r["variant"] == v) for v in ("base", "near", "hopeless")}
    assert seeds["hopeless"] == [0, 1, 2]  # decided at the first look
    assert seeds["near"] == seeds["base"] == [0, 1, 2, 3, 4]  # to max_seeds
    assert "worse (at 3 seeds)" in proc.stdout and "no diff (at 5 seeds)" in proc.stdout
    assert "adding seed 3" in proc.stdout and "adding seed 4" in proc.stdout
    results = tmp_path / "out" / "seq"
    for page in ((results / "summary.md").read_text(), (results / "report.html").read_text()):
        assert "worse (at 3 seeds)" in page and "no detectable difference (at 5 seeds)" in page
        assert "Pocock-type alpha spending" in page


def test_resume_needs_the_studys_own_results_dir(tmp_path):
    study = _study(tmp_path / "s.py")
    out = tmp_path / "out"
    assert run_cli(str(study), "--storage", str(out), "--name", "grow").returncode == 0
    (out / "grow" / "study.json").rename(out / "grow" / "study.json.bak")
    missing = run_cli(str(study), "--storage", str(out), "--resume", str(out / "grow"))
    assert missing.returncode == 2 and "no study.json there" in missing.stderr
    (out / "grow" / "study.json.bak").rename(out / "grow" / "study.json")
    other = write_study(tmp_path / "other.py", 'study = Study(name="other", seeds=(0, 1))\n')
    wrong = run_cli(str(other), "--storage", str(out), "--resume", str(out / "grow"))
    assert wrong.returncode == 2 and "holds study 'grow'" in wrong.stderr
