"""End to end: the CLI starts a real local Ray, runs a tiny study, and leaves complete results."""

import csv
import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli, start_cli, write_study
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.e2e

COURSE_TAGS = {"train/loss", "train/accuracy", "val/loss", "val/accuracy"}


def _events(trial_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(trial_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0, "histograms": 0})
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    storage = tmp_path_factory.mktemp("results")
    before = _pids()
    cli = start_cli("configs/smoke.py", "--storage", str(storage), "--name", "smoke")
    stdout, stderr = cli.communicate(timeout=600)
    proc = subprocess.CompletedProcess(cli.args, cli.returncode, stdout, stderr)
    proc.started_since = _pids() - before  # what the study started that is still there once it returned
    return proc, storage / "smoke"


def _pids() -> set[int]:
    """Live processes (zombies aside)."""
    out = set()
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if (p / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.add(int(p.name))
        except OSError:
            continue
    return out


def test_smoke_study_exits_zero_and_prints_where_results_are(smoke):
    proc, results = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"tensorboard --logdir {results}" in proc.stdout
    assert "[4/4]" in proc.stdout  # a progress line per finished trial
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_local_ray_is_gone_when_the_command_returns(smoke):
    """The CLI kills the local Ray it started once every file is written: none of its processes outlive it (Ray's
    per-node agents, which do not carry the driver's mark, included)."""
    proc, _ = smoke
    assert proc.returncode == 0
    left = []
    for pid in proc.started_since:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # ended since
        if b"ray" in cmdline:  # Ray's processes (ray::..., raylet, gcs_server, its agents), not the machine's own
            left.append((pid, cmdline[:120]))
    assert not left, left


def test_smoke_summary_has_a_row_per_trial(smoke):
    _, results = smoke
    rows = list(csv.DictReader(open(results / "summary.csv")))
    assert sorted((r["variant"], int(r["seed"])) for r in rows) == [
        ("base", 0),
        ("base", 1),
        ("dropout_0.2", 0),
        ("dropout_0.2", 1),
    ]
    for r in rows:
        assert r["status"] == "completed"
        assert 0.3 < float(r["best_val_accuracy"]) <= 1.0  # digits at 16x16 learn fast; chance is 0.1
        assert int(r["epochs_run"]) == 2 and 1 <= int(r["best_epoch"]) <= 2
        assert (results / r["checkpoint"] / "model.pt").exists()
    assert pq.read_table(results / "summary.parquet").num_rows == 4
    md = (results / "summary.md").read_text()
    assert "| base | 2 | 2 |" in md and "| dropout_0.2 | 2 | 2 |" in md


def test_smoke_tensorboard_has_the_course_tags(smoke):
    _, results = smoke
    trial_dirs = sorted(p.parent for p in results.glob("*/params.json"))
    assert len(trial_dirs) == 4
    for d in trial_dirs:
        tags = _events(d).Tags()
        assert COURSE_TAGS <= set(tags["scalars"])
        assert {"val/confusion_matrix", "val/images"} <= set(tags["images"])
        assert any(t.startswith("val/classification_report") for t in tags["tensors"])
        assert tags["histograms"], "weight histograms missing"
        assert [e.step for e in _events(d).Scalars("val/accuracy")] == [1, 2]
    # Tune's own TBX logger is off: no duplicate ray/tune/* tags in the run
    assert not any(t.startswith("ray/") for t in _events(trial_dirs[0]).Tags()["scalars"])


def test_smoke_report_covers_every_variant(smoke):
    _, results = smoke
    html = (results / "report.html").read_text()
    # a row of the summary table per variant ("base" alone would match the figures' "base64")
    assert "<tr><td class=text>base</td>" in html and "<tr><td class=text>dropout_0.2</td>" in html
    assert "data:image/png;base64," in html  # figures embedded: opens from disk
    assert "http://" not in html and "https://" not in html
    assert json.loads((results / "confusion_by_variant.json").read_text()).keys() == {"base", "dropout_0.2"}
    assert json.loads((results / "audit.json").read_text())


def test_smoke_study_json_records_provenance(smoke):
    _, results = smoke
    doc = json.loads((results / "study.json").read_text())
    assert doc["study"] == "smoke" and len(doc["trials"]) == 4
    assert doc["versions"]["ray"] and doc["versions"]["torch"]
    assert doc["trials"][0]["trial"]["model"]["hidden"] == [32]


def test_worker_group_ddp_and_divergence(tmp_path):
    """Two DDP workers per trial (gloo), and a diverging variant that stops without failing the study."""
    cfg = write_study(
        tmp_path / "ddp.py",
        """
        study = Study(
            name="ddp",
            base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=12), model=ModelConfig(hidden=(16,)),
                             train=TrainConfig(epochs=3, batch_size=64), resources=ResourcesConfig(workers_per_trial=2)),
            variants={"ok": {}, "huge_lr": {"optim.lr": 1e12, "optim.name": "sgd", "resources.workers_per_trial": 0}},
        )
    """,
    )
    proc = run_cli(str(cfg), "--storage", str(tmp_path / "out"), "--name", "ddp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["variant"]: r for r in csv.DictReader(open(tmp_path / "out" / "ddp" / "summary.csv"))}
    assert rows["ok"]["status"] == "completed" and float(rows["ok"]["best_val_accuracy"]) > 0.3
    assert rows["huge_lr"]["status"] == "diverged" and int(rows["huge_lr"]["epochs_run"]) < 3
    ok_dir = tmp_path / "out" / "ddp" / rows["ok"]["trial_dir"]
    assert COURSE_TAGS <= set(_events(ok_dir).Tags()["scalars"])
    assert (tmp_path / "out" / "ddp" / rows["ok"]["checkpoint"] / "model.pt").exists()


def test_folder_of_real_images(tmp_path):
    """A folder of PNG and JPEG files (ROOT/CLASS layout) trains end to end with --set data.path."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path / "imgs"
    for i, (img, label) in enumerate(zip(d.images[:300], d.target[:300])):
        if label > 2:
            continue
        (root / f"class_{label}").mkdir(parents=True, exist_ok=True)
        arr = (img * 15).astype(np.uint8)
        Image.fromarray(arr).resize((24, 24)).save(root / f"class_{label}" / f"{i}.{'png' if i % 2 else 'jpg'}")
    proc = run_cli(
        "configs/smoke.py",
        "--storage",
        str(tmp_path / "out"),
        "--name",
        "folder",
        "--set",
        f"data.path={root}",
        "--set",
        "train.epochs=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 classes" in proc.stdout
    rows = list(csv.DictReader(open(tmp_path / "out" / "folder" / "summary.csv")))
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["configs/nope.py"], "no such config file"),
        (["configs/smoke.py", "--set", "model.dropot=0.1"], "did you mean 'model.dropout'"),
        (["configs/smoke.py", "--set", "optim.lr=0"], "optim.lr=0"),
        (["configs/smoke.py", "--set", "data.path=/no/such/folder"], "no such folder"),
        (["configs/smoke.py", "--set", "novalue"], "expected KEY=VALUE"),
        (["configs/smoke.py", "--set", 'augment.train=[{"name": "Flipp"}]'], "unknown transform 'Flipp'"),
        (["configs/smoke.py", "--max-concurrent", "abc"], "invalid int value: 'abc'"),
        (["configs/smoke.py", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: config"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    proc = run_cli(*args, "--storage", str(tmp_path), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_dry_run_starts_nothing(tmp_path):
    proc = run_cli("configs/init_study.py", "--dry-run", "--storage", str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "12 trials" in proc.stdout and "dry run: nothing started" in proc.stdout
    assert "702 train / 180 val" in proc.stdout
    assert not any(tmp_path.iterdir())  # no results dir written
