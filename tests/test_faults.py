"""Fault tests that really kill processes: a train worker, a trial process, the driver; plus a 100-trial load.

Each asserts that nothing is lost: every trial's row, its checkpoints, and TensorBoard steps that are
continuous and not duplicated.
"""

import csv
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import WATCHED, run_cli, start_cli, write_study
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.results.files import read_results

pytestmark = pytest.mark.e2e


def _study(tmp_path: Path, body: str) -> Path:
    return write_study(tmp_path / "study.py", body)


def _two_variants(tmp_path: Path, name: str, seeds: str) -> Path:
    """Variants a and b (dropout 0.2) of a 10-epoch trial slow enough to be caught mid-run."""
    return _study(
        tmp_path,
        f"""
        study = Study(
            name="{name}",
            base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=40), model=ModelConfig(hidden=(512,)),
                             train=TrainConfig(epochs=10, batch_size=32, checkpoint_every=1)),
            variants={{"a": {{}}, "b": {{"model.dropout": 0.2}}}},
            seeds={seeds},
        )
    """,
    )


def _results(trial_dir: Path) -> list[dict]:
    return read_results(trial_dir / "result.json")


def _wait_for(predicate, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _tb_steps(trial_dir: Path, tag: str = "val/accuracy") -> list[int]:
    ea = EventAccumulator(str(trial_dir), size_guidance={"scalars": 0})
    ea.Reload()
    return [e.step for e in ea.Scalars(tag)]


def _rows(results_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(results_dir / "summary.csv")))


def _assert_whole(trial_dir: Path, epochs: int) -> None:
    rs = _results(trial_dir)
    assert [r["epoch"] for r in rs] == list(range(1, epochs + 1)), "result rows lost or duplicated"
    assert rs[-1]["status"] == "completed"
    assert _tb_steps(trial_dir) == list(range(1, epochs + 1)), "TensorBoard steps lost or duplicated"
    assert list(trial_dir.glob("**/checkpoint_*/model.pt")), "no checkpoint kept"


# The fault tests checkpoint every epoch (the default spaces checkpoints by what they cost), so a kill after epoch N
# is known to leave a checkpoint of epoch N to carry on from.
SLOW_TRIAL = """
study = Study(
    name="faults",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=40), model=ModelConfig(hidden=(512,)),
                     train=TrainConfig(epochs=EPOCHS, batch_size=32, checkpoint_every=1),
                     resources=ResourcesConfig(workers_per_trial=WORKERS)),
    variants={"base": {}},
)
"""


def _kill_last_rank(trial_dir: Path) -> int | None:
    """kill -9 the last rank that reported the trial's latest epoch, once that is epoch 2 or later; its pid. None
    while the trial is not that far, or when that process is already gone (a row can come in late, from a group
    Ray Train has since replaced): the caller asks again."""
    rows = _results(trial_dir)
    if not rows or rows[-1]["epoch"] < 2:
        return None
    assert rows[-1]["status"] != "completed", "the trial finished before a worker could be killed: make it slower"
    pid = int(rows[-1]["workers"].split(",")[-1].rsplit(":", 1)[1])
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


@pytest.mark.parametrize("workers", [2, 0], ids=["ddp_worker", "trial_process"])
def test_killed_worker_continues_from_its_last_checkpoint(tmp_path, workers):
    """kill -9 rank 1 of a DDP worker group (Ray Train restarts the group), or the process of an
    in-process trial (Tune restarts the trial): either way the trial finishes from its checkpoint."""
    epochs = 10
    cfg = _study(tmp_path, SLOW_TRIAL.replace("EPOCHS", str(epochs)).replace("WORKERS", str(workers)))
    out = tmp_path / "out"
    # A worker group's checkpoints are Ray Train's, so its rows reach the results dir only with Tune's state saves, on
    # Tune's clock (10 s or more): saved every second here, the rows show the epoch to strike at while it runs.
    proc = start_cli(str(cfg), "--storage", str(out), "--name", "f", env=WATCHED)
    try:
        trial_dir = _wait_for(
            lambda: next((p.parent for p in (out / "f").glob("*/params.json")), None), 120, "trial dir"
        )
        victim = _wait_for(lambda: _kill_last_rank(trial_dir), 180, "a running trial past epoch 2 to kill")
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    _assert_whole(trial_dir, epochs)
    last = _results(trial_dir)[-1]
    assert last["resumed_from_epoch"] >= 2, "the trial restarted from scratch instead of its checkpoint"
    assert str(victim) not in last["workers"]


def test_driver_killed_then_resume_runs_only_unfinished_trials(tmp_path):
    epochs = 10
    cfg = _two_variants(tmp_path, "resume", seeds="(0, 1)")
    out = tmp_path / "out"
    proc = start_cli(str(cfg), "--storage", str(out), "--name", "r", "--max-concurrent", "1", env=WATCHED)
    try:

        def one_done_one_running():
            dirs = [p.parent for p in (out / "r").glob("*/params.json")]
            rows = {d: _results(d) for d in dirs}  # read once: Tune's sync rewrites result.json in place
            done = [d for d in dirs if rows[d] and rows[d][-1]["status"] == "completed"]
            running = [d for d in dirs if d not in done and len(rows[d]) >= 2]
            return (done, running) if done and running else None

        done, running = _wait_for(one_done_one_running, 240, "a finished trial and a running one")
        proc.kill()  # SIGKILL: no chance to save anything more
        proc.wait(timeout=30)
    finally:
        proc.kill()
    finished = {d: ((d / "result.json").read_bytes(), sorted(p.name for p in d.iterdir())) for d in done}

    resumed = run_cli(str(cfg), "--storage", str(out), "--resume", str(out / "r"), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = _rows(out / "r")
    assert sorted((r["variant"], r["seed"]) for r in rows) == [("a", "0"), ("a", "1"), ("b", "0"), ("b", "1")]
    assert all(r["status"] == "completed" for r in rows)
    for d, (result_bytes, files) in finished.items():  # finished trials untouched
        assert (d / "result.json").read_bytes() == result_bytes
        assert sorted(p.name for p in d.iterdir()) == files
    for d in (out / "r").glob("*/params.json"):
        _assert_whole(d.parent, epochs)
    # carried on, not started over: from the checkpoint Tune's last saved state names (saved on its clock, so a kill
    # just after epoch 2's row may leave it naming epoch 1's; the epochs after it run again, as they ran before)
    assert any(_results(d)[-1]["resumed_from_epoch"] >= 1 for d in running)
    assert "partial" not in (out / "r" / "summary.md").read_text().lower()


def test_sigterm_stops_gracefully_with_a_partial_summary_then_resume_finishes(tmp_path):
    cfg = _two_variants(tmp_path, "term", seeds="(0,)")
    out = tmp_path / "out"
    proc = start_cli(str(cfg), "--storage", str(out), "--name", "t", "--max-concurrent", "1")
    try:
        _wait_for(
            lambda: [d for d in (out / "t").glob("*/result.json") if len(_results(d.parent)) >= 2], 180, "epoch 2"
        )
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "--resume" in stderr and "Traceback" not in stderr
    assert "Partial results" in (out / "t" / "summary.md").read_text()
    resumed = run_cli(str(cfg), "--storage", str(out), "--name", "t", "--resume")  # no dir: the study's latest
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = _rows(out / "t")
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert "Partial results" not in (out / "t" / "summary.md").read_text()
    for d in (out / "t").glob("*/params.json"):
        _assert_whole(d.parent, 10)


def test_exception_in_one_trial_is_an_error_and_the_others_go_on(tmp_path):
    cfg = _study(
        tmp_path,
        """
        study = Study(
            name="err",
            base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), model=ModelConfig(hidden=(16,)),
                             train=TrainConfig(epochs=2)),
            variants={"ok": {}, "too_big": {"model.hidden": [10**12]}},  # cannot be allocated: fails inside the trial
        )
    """,
    )
    proc = run_cli(str(cfg), "--storage", str(tmp_path / "out"), "--name", "e")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "too_big seed 0 (error" in proc.stderr
    rows = {r["variant"]: r for r in _rows(tmp_path / "out" / "e")}
    assert rows["ok"]["status"] == "completed"
    assert rows["too_big"]["status"] == "error" and rows["too_big"]["error"]
    assert "Traceback" not in proc.stdout


def _processes_of(driver_pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"RUNNER_DRIVER_PID={driver_pid}\0".encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_hundred_trials_finish_and_leave_no_process(tmp_path):
    cfg = _study(
        tmp_path,
        """
        study = Study(
            name="load",
            base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), model=ModelConfig(hidden=(8,)),
                             train=TrainConfig(epochs=1, batch_size=256), augment=AugmentConfig(train=())),
            variants={f"lr_{i}": {"optim.lr": 1e-3 * (1 + i)} for i in range(50)},
            seeds=(0, 1),
        )
    """,
    )
    proc = start_cli(str(cfg), "--storage", str(tmp_path / "out"), "--name", "l")
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    rows = _rows(tmp_path / "out" / "l")
    assert len(rows) == 100 and all(r["status"] == "completed" for r in rows)
    time.sleep(2)
    assert _processes_of(proc.pid) == [], "Ray processes of the study outlived it"
