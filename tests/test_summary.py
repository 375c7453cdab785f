"""Summary tables from a Ray Tune results dir: summary.csv, summary.parquet, summary.md."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import pytest

from runner import checkpoints
from runner.results import summary, tables
from runner.results.files import read_results
from runner.results.records import COLUMNS, read_records
from runner.results.render import console_table, markdown
from runner.results.summary import VariantSummary, summarize


def _first_table(md: str) -> list[str]:
    """The rows of summary.md's first table (the variants by the study's metric)."""
    head = md.index("| variant")
    block = md[head:].split("\n\n")[0].splitlines()
    return [ln for ln in block if ln.startswith("| ") and not ln.startswith("| variant")]


def trial_rows(results_dir: Path) -> list[dict]:
    """The summary.csv rows of a results dir."""
    return [r.row() for r in read_records(results_dir)]


def variant_rows(results_dir: Path) -> list[dict]:
    """The variant rows of a results dir, as dicts, compared with the first variant."""
    return [dataclasses.asdict(v) for v in summarize(read_records(results_dir))]


def _epoch(epoch, train_acc, val_acc, best, best_epoch, status, ips=100.0, total=None):
    return {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "train_accuracy": train_acc,
        "val_loss": 2.0 / epoch,
        "val_accuracy": val_acc,
        "best_val_accuracy": best,
        "best_epoch": best_epoch,
        "status": status,
        "time_total_s": total if total is not None else 1.234 * epoch,
        "setup_seconds": 0.567,
        "images_per_second": ips,
        "training_iteration": epoch,
        "trial_id": "x",
    }


def _trial(
    root: Path,
    dirname: str,
    variant: str,
    seed: int,
    order: int,
    results: list[dict],
    tail: str = "",
    error: str | None = None,
) -> Path:
    d = root / dirname
    d.mkdir(parents=True)
    spec = {"variant": variant, "seed": seed, "data": "d0", "order": order, "trial": {"train": {"seed": seed}}}
    (d / "params.json").write_text(
        json.dumps({"spec": spec, "classes": {"d0": ["a", "b"]}, "placement_strategy": "PACK"})
    )
    (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results) + tail)
    if error is not None:
        (d / "error.txt").write_text(error)
    return d


@pytest.fixture
def results(tmp_path) -> Path:
    """2 variants x 2 seeds. Variant 'zeta' comes first in the study, so alphabetical order would be wrong."""
    # fmt: off
    root = tmp_path / "my_study"
    root.mkdir()
    # zeta seed 0: completed, two checkpoints (the newer one is the best)
    d = _trial(root, "zeta_seed0_00000", "zeta", 0, 0, [
        _epoch(1, 0.60, 0.50, 0.50, 1, "running", ips=1000.0),  # first epoch's speed is warm-up, ignored
        _epoch(2, 0.85, 0.80, 0.80, 2, "running", ips=200.0),
        _epoch(3, 0.95, 0.78, 0.80, 2, "completed", ips=300.0, total=9.876),
    ])
    for i, name in enumerate(("checkpoint_000000", "checkpoint_000001")):
        (d / name).mkdir()
        (d / name / "model.pt").write_bytes(b"x")
        os.utime(d / name / "model.pt", (1_000_000 + i, 1_000_000 + i))
    # zeta seed 1: completed; the file ends with a line cut short by a crash
    _trial(root, "zeta_seed1_00001", "zeta", 1, 0, [
        _epoch(1, 0.55, 0.60, 0.60, 1, "running"),
        _epoch(2, 0.80, 0.70, 0.70, 2, "early_stopped"),
    ], tail='{"epoch": 3, "train_accura')
    # alpha seed 0: crashed, Tune wrote error.txt
    _trial(root, "alpha_seed0_00002", "alpha", 0, 1, [
        _epoch(1, 0.40, 0.30, 0.30, 1, "running"),
    ], error="Traceback (most recent call last):\n  File \"x.py\", line 1\n\nRuntimeError: CUDA out of memory\n\n")
    # alpha seed 1: the study was interrupted while it ran
    _trial(root, "alpha_seed1_00003", "alpha", 1, 1, [
        _epoch(1, 0.50, 0.55, 0.55, 1, "running"),
        _epoch(2, 0.65, 0.60, 0.60, 2, "running"),
    ])
    # things Tune leaves around that are not trials
    (root / "study.json").write_text("{}")
    (root / "experiment_state-2024.json").write_text("{}")
    (root / "tensorboard").mkdir()
    # fmt: on
    return root


def test_trial_rows(results):
    rows = trial_rows(results)
    assert [(r["variant"], r["seed"]) for r in rows] == [("zeta", 0), ("zeta", 1), ("alpha", 0), ("alpha", 1)]
    assert all(list(r) == COLUMNS for r in rows)
    by = {(r["variant"], r["seed"]): r for r in rows}

    z0 = by["zeta", 0]
    assert z0["status"] == "completed"
    assert z0["best_val_accuracy"] == 0.80 and z0["best_epoch"] == 2 and z0["epochs_run"] == 3
    assert (
        z0["final_train_accuracy"] == 0.95
        and z0["final_val_accuracy"] == 0.78
        and z0["final_val_loss"] == pytest.approx(2 / 3)
    )
    assert z0["trial_seconds"] == 9.88 and z0["setup_seconds"] == 0.57
    assert z0["images_per_second"] == 250.0  # median of epochs 2..3, the warm-up epoch left out
    assert z0["checkpoint"] == "zeta_seed0_00000/checkpoint_000001"
    assert z0["trial_dir"] == "zeta_seed0_00000" and z0["error"] == ""

    z1 = by["zeta", 1]
    assert z1["status"] == "early_stopped"  # the truncated line is skipped, the last whole line counts
    assert z1["epochs_run"] == 2 and z1["best_val_accuracy"] == 0.70
    assert z1["checkpoint"] == ""

    a0 = by["alpha", 0]
    assert a0["status"] == "error"
    assert a0["error"] == "RuntimeError: CUDA out of memory"
    assert a0["images_per_second"] == 100.0  # one epoch only: its speed is used

    a1 = by["alpha", 1]
    assert a1["status"] == "interrupted"
    assert a1["epochs_run"] == 2 and a1["best_val_accuracy"] == 0.60


def test_trial_without_results_is_pending(tmp_path):
    d = tmp_path / "s" / "t0"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"spec": {"variant": "v", "seed": 3}}))
    (row,) = trial_rows(tmp_path / "s")
    assert row["status"] == "pending" and row["epochs_run"] == 0
    assert row["best_val_accuracy"] is None and row["images_per_second"] is None
    assert row["trial_seconds"] is None and row["checkpoint"] == ""


def test_error_file_without_text(tmp_path):
    d = _trial(tmp_path / "s", "t0", "v", 0, 0, [_epoch(1, 0.5, 0.5, 0.5, 1, "running")], error="\n\n")
    (row,) = trial_rows(d.parent)
    assert row["status"] == "error" and row["error"] == "error"


def test_error_file_of_a_retry_that_finished(tmp_path):
    d = _trial(tmp_path / "s", "t0", "v", 0, 0, [_epoch(1, 0.5, 0.5, 0.5, 1, "completed")], error="RuntimeError: x\n")
    (row,) = trial_rows(d.parent)
    assert row["status"] == "completed" and row["error"] == ""


def test_variant_rows(results):
    vs = variant_rows(results)
    assert [v["variant"] for v in vs] == ["zeta", "alpha"]
    zeta, alpha = vs
    assert zeta["trials"] == 2 and zeta["ok"] == 2
    assert zeta["mean"] == pytest.approx(0.75)
    assert zeta["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert zeta["min"] == 0.70 and zeta["max"] == 0.80
    assert zeta["best_epoch"] == 2
    assert zeta["train_val_gap"] == pytest.approx(((0.95 - 0.78) + (0.80 - 0.70)) / 2)
    assert alpha["trials"] == 2 and alpha["ok"] == 0
    assert alpha["mean"] == pytest.approx(0.60)  # the errored trial is left out of the accuracy stats
    assert alpha["std"] is None and alpha["min"] == alpha["max"] == 0.60


def test_write_csv(results):
    records, _ = write(results)
    with open(results / "summary.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        got = list(reader)
    assert len(got) == 4
    assert [(r["variant"], r["seed"], r["status"]) for r in got] == [
        ("zeta", "0", "completed"),
        ("zeta", "1", "early_stopped"),
        ("alpha", "0", "error"),
        ("alpha", "1", "interrupted"),
    ]
    assert float(got[0]["best_val_accuracy"]) == 0.80
    assert got[2]["error"] == "RuntimeError: CUDA out of memory"
    assert got[1]["checkpoint"] == ""
    assert [r["trial_dir"] for r in got] == [r.trial_dir for r in records]


def test_write_parquet_matches_rows(results):
    import pyarrow.parquet as pq

    rows = [r.row() for r in write(results)[0]]
    table = pq.read_table(results / "summary.parquet")
    assert table.column_names == COLUMNS
    assert table.num_rows == 4
    assert str(table.schema.field("seed").type) == "int64"
    assert str(table.schema.field("best_val_accuracy").type) == "double"
    back = table.to_pylist()
    for got, want in zip(back, rows):
        for k in COLUMNS:
            if isinstance(want[k], float):
                assert got[k] == pytest.approx(want[k]), k
            else:
                assert got[k] == want[k], k


def test_write_markdown(results):
    write(results)
    md = (results / "summary.md").read_text()
    assert md.startswith("# my_study\n")
    table = _first_table(md)
    assert len(table) == 2  # one row per variant
    zeta, alpha = (ln.split("|")[1:-1] for ln in table)
    zeta, alpha = [c.strip() for c in zeta], [c.strip() for c in alpha]
    assert zeta[:8] == ["zeta", "2", "2", "2", "0.750 ± 0.635", "0.071", "0.700", "0.800"]  # t(0.975, 1) * 0.05
    assert zeta[8] == "2.0" and zeta[-1] == "reference"
    assert alpha[:8] == ["alpha", "2", "0", "1", "0.600", "-", "0.600", "0.600"]  # one value: no interval
    assert alpha[-1] == "too few seeds"  # the errored seed 0 leaves one shared seed
    assert "- alpha seed 0: error: RuntimeError: CUDA out of memory" in md
    assert "- alpha seed 1: interrupted" in md
    assert "zeta seed" not in md
    assert "Partial results" not in md


def test_write_markdown_partial_in_the_plans_order(results):
    write(results, partial=True)
    md = (results / "summary.md").read_text()
    assert "Partial results" in md
    assert md.index("| zeta |") < md.index("| alpha |")  # the study's order (params.json), not alphabetical


def test_write_is_rerunnable(results):
    first = write(results)
    second = write(results)  # summary files in the dir are not mistaken for trials
    assert first == second


def test_markdown_all_none():
    empty = VariantSummary(
        variant="v",
        trials=1,
        ok=0,
        n=0,
        mean=None,
        ci=None,
        std=None,
        min=None,
        max=None,
        best_epoch=None,
        train_val_gap=float("nan"),
        overfitting=False,
        mean_diff=None,
        test=None,
        shared_seeds=0,
        p=None,
        p_holm=None,
        verdict="",
    )
    md = markdown("s", [empty], [])
    assert "| v | 1 | 0 | 0 | - | - | - | - | - | - | - | - | - | - |" in md


def test_console_table(results):
    text = console_table(summarize(read_records(results)))
    lines = text.splitlines()
    assert lines[0].startswith("variant")
    assert lines[2].startswith("zeta") and lines[3].startswith("alpha")
    assert "0.750" in lines[2]


@pytest.mark.e2e
def test_cli(results):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    bad = subprocess.run(
        [sys.executable, "-m", "runner.summary", str(results / "missing")], cwd=repo, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "no such results dir" in bad.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "runner.summary", str(results)], cwd=repo, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[2].startswith("zeta")
    assert (results / "summary.csv").exists() and (results / "summary.md").exists()


def test_read_results_keeps_the_later_rows_of_epochs_a_restarted_trial_redid(tmp_path):
    """Restarted from its checkpoint at epoch 2 after reporting epoch 4: epochs 3 and 4 come again; those count."""
    rows = [{"epoch": e, "run": 1} for e in (1, 2, 3, 4)] + [{"epoch": e, "run": 2} for e in (3, 4, 5)]
    p = tmp_path / "result.json"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 6, "ru')
    assert [(r["epoch"], r["run"]) for r in read_results(p)] == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]


def test_read_results_skips_rows_without_epoch(tmp_path):
    p = tmp_path / "result.json"
    p.write_text('{"done": true}\n' + json.dumps(_epoch(1, 0.5, 0.5, 0.5, 1, "running")) + "\nnot json\n")
    assert [r["epoch"] for r in read_results(p)] == [1]
    assert read_results(tmp_path / "absent.json") == []


def test_errored_trials_are_left_out_of_every_variant_stat(results):
    alpha = {v["variant"]: v for v in variant_rows(results)}["alpha"]
    # only alpha seed 1 (interrupted, not errored) contributes: best epoch 2, gap 0.65 - 0.60
    assert alpha["best_epoch"] == 2
    assert alpha["train_val_gap"] == pytest.approx(0.05)


# --------------------------------------------------------------------------- statistics per variant
# A study in the full layout (study.json, confusion matrices, real checkpoints), built by test_evaluate.

from test_evaluate import BEST, CLASSES, crash, make_study  # noqa: E402


def write(results_dir, partial: bool = False):
    """The study's tables written from its one summary; its records and variant rows."""
    s = summary.read(results_dir)
    tables.write(s, partial)
    return s.records, s.variants


@pytest.fixture
def study(tmp_path) -> Path:
    # "overfit": 0.20-0.26 below the reference on every seed, train accuracy 0.30 above val
    return make_study(tmp_path / "colours", variants={**BEST, "overfit": [0.60, 0.62, 0.58]}, gaps={"overfit": 0.30})


def _md_rows(md: str) -> dict[str, list[str]]:
    lines = _first_table(md)
    return {c[0]: c for c in ([x.strip() for x in ln.split("|")[1:-1]] for ln in lines)}


def test_variant_rows_statistics(study):
    import numpy as np

    vs = {v["variant"]: v for v in variant_rows(study)}
    base, better, same = vs["base"], vs["better"], vs["same"]
    assert base["n"] == 3 and base["mean"] == pytest.approx(0.82)
    assert base["ci"] == pytest.approx(4.302653 * 0.02 / 3**0.5, rel=1e-6)  # sd 0.02, t(0.975, 2)
    assert base["verdict"] == "reference" and base["p_holm"] is None
    assert better["test"] == "paired t" and better["mean_diff"] == pytest.approx(0.11)
    d = np.array([0.10, 0.11, 0.12])
    t = d.mean() / (d.std(ddof=1) / 3**0.5)
    p = 1 - t / (2 + t * t) ** 0.5  # two-sided p for t with 2 degrees of freedom, closed form
    assert better["p"] == pytest.approx(p) and better["p_holm"] == pytest.approx(3 * p)  # smallest of 3: x3
    assert better["verdict"] == "better"
    assert same["verdict"] == "no detectable difference" and vs["overfit"]["verdict"] == "worse"
    assert vs["overfit"]["train_val_gap"] == pytest.approx(0.30) and vs["overfit"]["overfitting"]
    assert not any(v["overfitting"] for v in (base, better, same))


def test_summary_md_has_ci_and_verdict_columns(study):
    write(study)
    md = (study / "summary.md").read_text()
    assert "| variant | trials | ok | n | mean ± 95% CI |" in md and "| p (Holm) | verdict |" in md
    assert "Reference: base." in md
    rows = _md_rows(md)
    assert rows["base"][4] == "0.820 ± 0.050" and rows["base"][-1] == "reference"
    assert rows["better"][4] == "0.930 ± 0.075"
    assert rows["better"][10:] == ["+0.110", "paired t", "0.008", "better"]
    assert rows["same"][-1] == "no detectable difference" and rows["overfit"][-1] == "worse"
    assert rows["overfit"][9] == "0.300 overfits" and not rows["base"][9].endswith("overfits")
    assert rows["base"][8] == "3.0"  # median best epoch


def test_reference_from_study_json(study):
    info = json.loads((study / "study.json").read_text())
    (study / "study.json").write_text(json.dumps({**info, "reference": "same"}))
    write(study)
    assert _md_rows((study / "summary.md").read_text())["same"][-1] == "reference"
    (study / "study.json").write_text(json.dumps({**info, "reference": "better"}))
    write(study)
    rows = _md_rows((study / "summary.md").read_text())
    assert rows["better"][-1] == "reference" and rows["base"][-1] == "worse"


def test_stats_leave_out_errored_trials(study):
    crash(next(study.glob("better_seed2_*")))
    better = {v["variant"]: v for v in variant_rows(study)}["better"]
    assert better["n"] == 2 and better["mean"] == pytest.approx(0.915) and better["test"] == "paired t"


def test_confusion_by_variant(study):
    crash(next(study.glob("same_seed0_*")))
    write(study)
    cms = json.loads((study / "confusion_by_variant.json").read_text())
    assert list(cms) == ["base", "better", "same", "overfit"]
    # each trial: diagonal 4 + seed, one error per row; summed over seeds 0, 1, 2 -> 15 (same: seeds 1, 2 -> 11)
    assert cms["base"] == {"classes": CLASSES, "matrix": [[15, 3, 0], [0, 15, 3], [3, 0, 15]], "trials": 3}
    assert cms["same"]["trials"] == 2 and cms["same"]["matrix"][0] == [11, 2, 0]


def test_confusion_by_variant_skips_other_classes(study):
    d = next(study.glob("base_seed0_*"))
    (d / "confusion_matrix.json").write_text(
        json.dumps({"epoch": 1, "classes": ["x", "y"], "matrix": [[1, 0], [0, 1]]})
    )
    cms = summary.confusion_by_variant(study, read_records(study))
    assert cms["base"]["classes"] == ["x", "y"] and cms["base"]["trials"] == 1  # the first trial sets the classes


def test_console_table_shows_ci_and_verdict(study):
    lines = console_table(summarize(read_records(study))).splitlines()
    assert "±95%ci" in lines[0] and lines[0].endswith("verdict")
    table = lines[2:6]
    assert [ln.split()[0] for ln in table] == ["base", "better", "same", "overfit"]
    assert table[0].endswith("reference") and table[1].endswith("better") and table[2].endswith("no diff")
    assert table[3].endswith("worse") and "0.300!" in table[3]
    assert table[1].split()[4] == "0.075"  # the CI half-width follows the mean
    head = lines[0]
    for col in ("mean", "±95%ci", "gap", "p holm"):  # fixed columns: every value ends where its header ends
        end = head.index(col) + len(col)
        assert all(ln[end - 1] != " " and (len(ln) == end or ln[end] in " !") for ln in table), col
    assert any("no diff = no detectable difference" in ln for ln in lines[6:])
    assert any(ln.startswith("! train-val gap above 0.20") for ln in lines[6:])


def test_trials_that_never_started_are_pending_rows(tmp_path):
    """After Ctrl-C some planned trials have no dir yet: the summary still has a row for each."""
    import json

    from runner.results import summary

    (tmp_path / "study.json").write_text(
        json.dumps(
            {
                "trials": [
                    {"variant": "a", "seed": 0, "order": 0},
                    {"variant": "a", "seed": 1, "order": 0},
                    {"variant": "b", "seed": 0, "order": 1},
                ]
            }
        )
    )
    d = tmp_path / "a_seed0_x"
    d.mkdir()
    (d / "params.json").write_text(json.dumps({"spec": {"variant": "a", "seed": 0, "order": 0}}))
    (d / "result.json").write_text(
        json.dumps(
            {
                "epoch": 1,
                "status": "completed",
                "best_val_accuracy": 0.5,
                "best_epoch": 1,
                "train_accuracy": 0.6,
                "val_accuracy": 0.5,
                "val_loss": 1.0,
                "images_per_second": 100.0,
            }
        )
        + "\n"
    )
    rows = trial_rows(tmp_path)
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("a", 0, "completed"),
        ("a", 1, "pending"),
        ("b", 0, "pending"),
    ]
    tables.write(summary.read(tmp_path), partial=True)  # writes every table with the pending rows
    assert (tmp_path / "summary.csv").read_text().count("pending") == 2


def test_checkpoint_column_points_at_the_best_not_the_latest(tmp_path):
    """Ray keeps the best and the latest checkpoint; the summary (and evaluate/predict) must use the best."""
    import json

    d = tmp_path / "a_seed0_x"
    for name, epoch, acc in (("checkpoint_000002", 3, 0.8), ("checkpoint_000004", 5, 0.7)):  # latest is worse
        (d / name).mkdir(parents=True)
        (d / name / "model.pt").write_bytes(b"")
        (d / name / "meta.json").write_text(json.dumps({"epoch": epoch, "val_accuracy": acc}))
    assert checkpoints.best(d) == "a_seed0_x/checkpoint_000002"
