"""Searches on a real local Ray: a random search's rows and columns, ASHA pruning the hopeless samples, a
learning (TPE) search killed with -9 and resumed with the same samples and its searcher state replayed."""

import csv
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import run_cli, start_cli, write_study

pytestmark = pytest.mark.e2e

STUDY = """
study = Study(
    name="NAME",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), model=ModelConfig(hidden=(16,)),
                     train=TrainConfig(epochs=EPOCHS, batch_size=64)),
    variants={"base": {}},
    search=Search(space=SPACE, samples=SAMPLES, algorithm="ALGORITHM", seed=0),
    scheduler=SCHEDULER,
    seeds=(0, 1),
)
"""
# half the learning rates are hopeless (<= 1e-7: nothing moves in a few epochs), half train
SPACE = '{"optim.lr": choice([1e-9, 1e-8, 1e-7, 3e-3, 1e-2, 3e-2]), "model.dropout": uniform(0.0, 0.3)}'


def _study(path: Path, name: str, samples: int, algorithm="random", epochs=2, scheduler="None", space=SPACE) -> Path:
    body = STUDY.replace("NAME", name).replace("SAMPLES", str(samples)).replace("ALGORITHM", algorithm)
    return write_study(
        path, body.replace("EPOCHS", str(epochs)).replace("SCHEDULER", scheduler).replace("SPACE", space)
    )


def _rows(results: Path) -> list[dict]:
    return list(csv.DictReader(open(results / "summary.csv")))


def test_random_search_with_asha_prunes_hopeless_samples_and_reports_them(tmp_path):
    study = _study(tmp_path / "s.py", "asha", samples=6, epochs=4, scheduler="ASHA(grace_epochs=1, reduction_factor=2)")
    dry = run_cli(str(study), "--storage", str(tmp_path / "out"), "--dry-run")
    assert dry.returncode == 0 and "search 6 random samples, seed 0" in dry.stdout, dry.stderr[-2000:]
    r = run_cli(str(study), "--storage", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-3000:]  # pruned trials are results, not failures
    results = tmp_path / "out" / "asha"
    rows = _rows(results)
    assert len(rows) == 14 and {row["variant"] for row in rows} == {"base", *(f"s{k:03d}" for k in range(6))}
    assert list(rows[0])[:4] == ["variant", "seed", "optim.lr", "model.dropout"]  # sampled values are columns
    for row in rows[2:]:
        assert (
            float(row["optim.lr"]) in (1e-9, 1e-8, 1e-7, 3e-3, 1e-2, 3e-2) and 0 <= float(row["model.dropout"]) <= 0.3
        )
    pruned = [row for row in rows if row["status"] == "pruned"]
    assert pruned, [(row["variant"], row["status"], row["epochs_run"]) for row in rows]
    assert all(int(row["epochs_run"]) < 4 for row in pruned)
    assert [row["status"] for row in rows if row["variant"] == "base"] == ["completed"] * 2  # the reference is spared
    hopeless = {row["variant"] for row in rows if float(row["optim.lr"] or 1) <= 1e-7}
    assert hopeless and any(row["variant"] in hopeless for row in pruned)
    # the same study file gives the same samples
    again = run_cli(str(study), "--storage", str(tmp_path / "out"), "--dry-run")
    assert again.stdout.split("variant  seed")[1] == dry.stdout.split("variant  seed")[1]
    md = (results / "summary.md").read_text()
    assert "## Search" in md and "trials were pruned (stopped early by ASHA)" in md
    assert "top samples" in r.stdout
    study_json = json.loads((results / "study.json").read_text())
    assert study_json["search"]["space"]["model.dropout"] == "uniform(0, 0.3)"
    html = (results / "report.html").read_text()
    assert "<h2>Search</h2>" in html and "alt='sampled values against the score, one line per sample'" in html

    # more samples, resumed: only the new samples run; the old ones keep their values and results
    more = _study(
        tmp_path / "more.py", "asha", samples=8, epochs=4, scheduler="ASHA(grace_epochs=1, reduction_factor=2)"
    )
    grown = run_cli(str(more), "--storage", str(tmp_path / "out"), "--resume", str(results))
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert "grow   4 new trials (s006, s007)" in grown.stdout
    after = _rows(results)
    assert len(after) == 18 and {r["variant"]: r["optim.lr"] for r in after[:14]} == {
        r["variant"]: r["optim.lr"] for r in rows
    }
    assert json.loads((results / "study.json").read_text())["search"]["batches"] == [[f"s{k:03d}" for k in range(8)]]
    _check_tensorboard_groups(results, {"base", *(f"s{k:03d}" for k in range(8))})


def _check_tensorboard_groups(results: Path, variants: set[str]) -> None:
    """A real tensorboard on the results dir: one HParams session group per variant or sample, pruned trials in."""
    import socket
    import subprocess

    from test_tblog import STATUSES, TENSORBOARD, _poll

    if not TENSORBOARD.exists():
        pytest.skip(f"no tensorboard executable at {TENSORBOARD}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(TENSORBOARD), "--logdir", str(results), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/data/plugin/hparams"
        exp = _poll(proc, f"{url}/experiment", {"experimentName": ""}, lambda e: e.get("hparamInfos"))
        infos = {i["name"]: i for i in exp["hparamInfos"]}
        assert set(infos["variant"]["domainDiscrete"]) == variants and "train.seed" not in infos
        assert 3e-2 in infos["optim.lr"]["domainDiscrete"]  # a choice: its options (and the base's 1e-3)
        assert infos["model.dropout"]["domainInterval"]["maxValue"] == pytest.approx(0.3)
        body = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": [], "startIndex": 0, "sliceSize": 100}
        answer = _poll(proc, f"{url}/session_groups", body,
                       lambda a: sum(len(g["sessions"]) for g in a.get("sessionGroups", [])) == 2 * len(variants))  # fmt: skip
        assert {g["name"] for g in answer["sessionGroups"]} == variants
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_killed_tpe_search_resumes_with_the_same_samples(tmp_path):
    space = '{"optim.lr": loguniform(1e-6, 1e-1), "model.dropout": uniform(0.0, 0.3)}'
    study = _study(tmp_path / "s.py", "tpe", samples=10, algorithm="optuna", space=space)
    out, results = tmp_path / "out", tmp_path / "out" / "tpe"
    proc = start_cli(str(study), "--storage", str(out), "--name", "tpe")
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:  # kill -9 once the second batch has been asked
        try:
            if len(json.loads((results / "study.json").read_text())["search"]["batches"]) == 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads((results / "study.json").read_text())
    asked = {v: before["variants"][v] for batch in before["search"]["batches"] for v in batch}
    assert len(asked) == 10

    r = run_cli(str(study), "--storage", str(out), "--resume", str(results))
    assert r.returncode == 0, r.stderr[-3000:]
    after = json.loads((results / "study.json").read_text())
    assert after["search"]["batches"] == before["search"]["batches"]
    assert {v: after["variants"][v] for v in asked} == asked  # the same samples, none asked again
    rows = _rows(results)
    assert len(rows) == 22 and all(row["status"] == "completed" for row in rows)
    assert len(list(results.glob("*_seed*_*"))) == 22  # no trial ran twice in a dir of its own


def _result_rows(results: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in results.glob("*_seed*_*/result.json"))


def test_a_search_with_a_strong_reference_confirms_its_best_and_answers_after_kill_9(tmp_path):
    """The issue's study: a reference that beats every sample early. ASHA cuts samples against samples, so some
    sample runs every epoch on its own; the 3 best are confirmed over every seed (pruned trials carry on, the run is
    killed with -9 in the middle of it and resumed), get verdicts, and the console ends with the config to paste."""
    body = STUDY.replace('variants={"base": {}}', 'variants={"base": {"optim.lr": 3e-3}}').replace(
        "seed=0)", "seed=1, confirm=3)"
    )
    space = '{"optim.lr": loguniform(1e-6, 1e-1), "model.dropout": uniform(0.0, 0.3)}'
    study = write_study(tmp_path / "s.py", body.replace("NAME", "strong").replace("SAMPLES", "6")
                        .replace("ALGORITHM", "random").replace("EPOCHS", "4").replace("SPACE", space)
                        .replace("SCHEDULER", "ASHA(grace_epochs=1, reduction_factor=2)"))  # fmt: skip
    out, results = tmp_path / "out", tmp_path / "out" / "strong"
    proc = start_cli(str(study), "--storage", str(out))
    try:
        deadline, started = time.time() + 400, None
        while time.time() < deadline and proc.poll() is None:  # kill -9 once the confirmation has made progress
            try:
                confirmed = json.loads((results / "study.json").read_text())["search"]["confirmed"]
            except (OSError, ValueError, KeyError):
                confirmed = []
            if confirmed and started is None:  # the confirmation joins the search's Tune run
                started = _result_rows(results)
            if started is not None and _result_rows(results) > started:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    killed = json.loads((results / "study.json").read_text())
    confirmed = killed["search"]["confirmed"]
    assert len(confirmed) == 3 and killed["search"]["confirm"] == 3
    confirming = {(p["variant"], p["seed"]) for p in killed["phases"][-1] if "carry_on" in p}
    assert confirming and {v for v, _ in confirming} <= set(confirmed)

    r = run_cli(str(study), "--storage", str(out), "--resume", str(results))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(results)
    by = {(row["variant"], int(row["seed"])): row for row in rows}
    assert len(rows) == 14  # no trial twice: carried trials went on in their own dirs
    # ASHA alone ran at least one sample's trial to the last epoch in the search (not carried on afterwards)
    alone = [k for k, row in by.items() if k[0] != "base" and k not in confirming and row["status"] == "completed"]
    assert alone and all(by[k]["epochs_run"] == "4" for k in alone)
    for v in confirmed:  # every epoch over every seed, with a verdict against the reference
        assert [(by[(v, s)]["status"], by[(v, s)]["epochs_run"]) for s in (0, 1)] == [("completed", "4")] * 2
    md = (results / "summary.md").read_text()
    table = md.split("| variant | trials |")[1].split("\n\n")[0].splitlines()[2:]
    verdicts = {cells[1].strip(): cells[-2].strip() for cells in (line.split("|") for line in table)}
    assert set(verdicts) == {"base", *confirmed}  # the summary compares the reference and the confirmed samples
    assert all(verdicts[v] not in ("", "-", "reference") for v in confirmed), verdicts
    last = r.stdout.strip().splitlines()[-6:]
    assert any(line.startswith("answer ") and " vs base: " in line for line in last), r.stdout[-3000:]
    variant_line = next(line for line in last if line.strip().startswith("as variant:"))
    pasted = eval(variant_line.split("as variant:")[1])  # noqa: S307 - what the user pastes into a study file
    best = next(v for v in confirmed if json.loads((results / "study.json").read_text())["variants"][v] == pasted)
    assert f"answer {best} vs base" in r.stdout
    assert "## Answer" in md
    assert "<h2>Answer</h2>" in (results / "report.html").read_text()
