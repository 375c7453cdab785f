"""Storage faults that must never damage a study: files written whole or not at all, one writer per results
dir, a study that cannot fit refused before it starts, and damaged trial files read as a row, not a traceback."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from runner import storage
from runner.config import ConfigError
from runner.driver import results_dir
from runner.results import files
from runner.results.files import trial_dir_name
from runner.results.records import read_records
from runner.results.status import Status
from runner.study.plan import CARRY_ON


def _trial(root: Path, variant: str, seed: int, params: str | None, result: str = "") -> Path:
    d = root / trial_dir_name(variant, seed, "abc12_00000")
    d.mkdir(parents=True)
    if params is not None:
        (d / "params.json").write_text(params)
    (d / "result.json").write_text(result)
    return d


@pytest.mark.e2e
def test_empty_or_cut_short_trial_files_give_a_damaged_row(tmp_path, caplog):
    root = tmp_path / "study"
    good = {"spec": {"variant": "a b", "seed": 0, "order": 0}}
    epoch = {"epoch": 1, "status": "completed", "best_val_accuracy": 0.5, "best_epoch": 1, "val_accuracy": 0.5,
             "train_accuracy": 0.6, "images_per_second": 10.0}  # fmt: skip
    _trial(root, "a b", 0, json.dumps(good), json.dumps(epoch) + "\n")
    _trial(root, "a b", 1, "")  # empty params.json (the disk filled up as Tune wrote it)
    _trial(root, "a b", 2, '{"spec": {"variant": "a')  # cut short
    root.joinpath("study.json").write_text(
        json.dumps({"trials": [{"variant": "a b", "seed": s, "order": 0} for s in range(3)]})
    )
    records = read_records(root)
    assert [(r.variant, r.seed, r.status) for r in records] == [
        ("a b", 0, Status.COMPLETED), ("a b", 1, Status.DAMAGED), ("a b", 2, Status.DAMAGED)]  # fmt: skip
    assert records[1].error.startswith("unreadable: ") and "unreadable" in caplog.text
    out = subprocess.run([sys.executable, "-m", "runner.summary", str(root)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    rows = (root / "summary.csv").read_text()
    assert rows.count(",damaged,") == 2
    assert "- a b seed 1: damaged: unreadable" in (root / "summary.md").read_text()


def test_a_write_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "summary.md"
    storage.write_atomic(path, "old\n")

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        storage.write_atomic(path, "new and longer\n")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.md"]  # no temp file left


def test_one_writer_per_results_dir(tmp_path):
    d = tmp_path / "study"
    with results_dir.Lock(str(d)):
        # another live process holds it: the parent of this test is one
        (d / results_dir.Lock.NAME).write_text(str(os.getppid()))
        with pytest.raises(ConfigError, match=rf"another runner \(pid {os.getppid()}\) is writing there"):
            with results_dir.Lock(str(d)):
                pass
        (d / results_dir.Lock.NAME).write_text(str(os.getpid()))
    assert not (d / results_dir.Lock.NAME).exists()
    (d / results_dir.Lock.NAME).write_text("999999999")  # left by a process that is gone
    with results_dir.Lock(str(d)):
        assert (d / results_dir.Lock.NAME).read_text() == str(os.getpid())


@pytest.mark.e2e
def test_the_lock_of_a_killed_runner_is_taken_over(tmp_path):
    """A runner killed with kill -9 whose parent has not reaped it yet (a zombie) holds no lock."""
    import signal

    victim = subprocess.Popen(["sleep", "60"])
    os.kill(victim.pid, signal.SIGKILL)
    time.sleep(0.2)  # not waited for: a zombie
    d = tmp_path / "study"
    d.mkdir()
    (d / results_dir.Lock.NAME).write_text(str(victim.pid))
    with results_dir.Lock(str(d)):
        assert (d / results_dir.Lock.NAME).read_text() == str(os.getpid())
    victim.wait()


def test_results_dirs_are_claimed_so_two_studies_never_share_one(tmp_path):
    first = results_dir.new_results_dir(str(tmp_path), "s", explicit=False)
    second = results_dir.new_results_dir(str(tmp_path), "s", explicit=False)  # the first one's dir exists, empty or not
    assert Path(first).name == "s" and Path(second).name == "s-2" and Path(second).is_dir()
    (Path(first) / "x").write_text("results")
    with pytest.raises(ConfigError, match="already holds results"):
        results_dir.new_results_dir(str(tmp_path), "s", explicit=True)


def _mount(mnt: Path, size: str) -> Path:
    """A real filesystem of ``size`` (tmpfs) at ``mnt``, as root; the test is skipped where it cannot be mounted."""
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)]).returncode
    ):
        pytest.skip("mounting a tmpfs needs root")
    return mnt


@pytest.fixture
def small_disk(tmp_path):
    """A real 20 MiB filesystem."""
    yield _mount(tmp_path / "small", "20m")
    subprocess.run(["umount", "-l", str(tmp_path / "small")])


@pytest.fixture
def disk(tmp_path):
    """A real 400 MiB filesystem: room for the study below, until a test fills it."""
    yield _mount(tmp_path / "disk", "400m")
    subprocess.run(["umount", "-l", str(tmp_path / "disk")])


@pytest.mark.e2e
def test_a_study_that_cannot_fit_is_refused_before_anything_starts(small_disk):
    proc = run_cli("configs/init_study.py", "--storage", str(small_disk), timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "the study writes about 1.72 GiB (12 trials, two checkpoints each), and 20 MiB is free there" in proc.stderr
    assert list(small_disk.iterdir()) == []  # nothing was created


def _fill(path: Path) -> None:
    """Fill the disk holding ``path`` to the last byte (a real ENOSPC)."""
    with open(path, "wb", buffering=0) as f:  # unbuffered: a write that fails leaves nothing to retry
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC


@pytest.mark.e2e
def test_a_disk_that_fills_mid_study_stops_it_in_one_line_and_resume_finishes(disk, tmp_path):
    """The disk fills to the last byte while a trial runs: the study stops like Ctrl-C with exit 74 and one line
    (where, what, the resume command, the log), no traceback; once space is freed, --resume finishes every trial
    and reruns no finished one (the ballast freed at the fault leaves Tune room to save its state; were that
    state cut short anyway, the phase would be rebuilt from the trial dirs)."""
    proc, results = _start_mid_study(tmp_path, disk)
    _fill(disk / "filler")
    err = _stopped_in_one_line(proc, 74)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "free space, then finish it" in lines[0], err
    assert Path(lines[0].rsplit("details in ", 1)[1].rstrip(")")).exists()
    (disk / "filler").unlink()
    _resume_completes(tmp_path / "s.py", disk, results, _finished_files(results))


def test_the_storage_estimate():
    """The course MLP's checkpoint (weights and Adam's two moments, float32) is the 72.8 MiB measured on disk; a
    trial whose model cannot even be allocated writes nothing."""
    from runner.config import ModelConfig, TrialConfig
    from runner.study.plan import EVENTS_PER_EPOCH, checkpoint_bytes, storage_needed

    course = TrialConfig(model=ModelConfig(hidden=(512, 128)))
    assert checkpoint_bytes(course, 9) / 2**20 == pytest.approx(72.77, abs=0.01)
    huge = TrialConfig(model=ModelConfig(hidden=(10**12,)))
    per_trial = 2 * checkpoint_bytes(course, 9) + 10 * EVENTS_PER_EPOCH
    assert storage_needed([(course, 9), (huge, 9)], memory=24 * 2**30) == per_trial


def test_the_partial_summary_after_a_fault_adds_no_warning(tmp_path, capsys):
    """After a storage fault the one line says it all: trial files the full disk left empty stay quiet."""
    import logging

    from runner.driver.flow import _write_partial_summary
    from runner.storage import Results

    root = tmp_path / "study"
    _trial(root, "a", 0, "")  # params.json left empty by the full disk
    handler = logging.StreamHandler()
    logging.getLogger("runner").addHandler(handler)
    try:
        _write_partial_summary(Results(str(root)))
    finally:
        logging.getLogger("runner").removeHandler(handler)
    assert capsys.readouterr().err == ""
    assert ",damaged," in (root / "summary.csv").read_text()


# --------------------------------------------------------------------------- faults mid-study, then --resume

# Four trials of 20 short epochs (~4 s each), one at a time: a fault lands while one trial is finished, one runs and two
# wait. Tune's state saves (every second here: conftest.WATCHED) show that in the results dir for seconds.
EPOCHS = 20
ONE_AT_A_TIME = """
study = Study(name="slow", base=TrialConfig(model=ModelConfig(hidden=(64,)), train=TrainConfig(epochs=EPOCHS)),
              variants={"a": {}, "b": {"model.dropout": 0.1}}, seeds=(0, 1))
""".replace("EPOCHS", str(EPOCHS))
# A checkpoint every epoch: the default spaces them by what they cost, and a trial in a reused process writes none
# before ~20x that, so a stop this early would leave the running trial nothing to carry on from.
EVERY_EPOCH = ONE_AT_A_TIME.replace("epochs=", "checkpoint_every=1, epochs=")


def _rows(results: Path) -> dict[str, list[dict]]:
    """Each trial dir's result.json rows, as the results dir holds them now."""
    out = {}
    for f in results.glob("*/result.json"):
        try:
            out[f.parent.name] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            continue
    return out


def _start_mid_study(tmp_path: Path, storage_dir: Path, body: str = ONE_AT_A_TIME):
    """The study started; returns (process, results dir) once one trial finished and the next one runs."""
    from conftest import WATCHED, start_cli, write_study

    study = write_study(tmp_path / "s.py", body)
    proc = start_cli(str(study), "--storage", str(storage_dir), "--max-concurrent", "1", env=WATCHED)
    results = storage_dir / "slow"
    end = time.time() + 240
    while time.time() < end and proc.poll() is None:
        last = [rows[-1]["status"] for rows in _rows(results).values() if rows]
        if "completed" in last and "running" in last:
            return proc, results
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
    proc.kill()
    pytest.fail(f"the study never had one trial finished and one running: {out[-1000:]} {err[-1000:]}")


def _finished_files(results: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of every file of the finished trials."""
    done = [name for name, rows in _rows(results).items() if rows and rows[-1]["status"] == "completed"]
    return {
        str(f): (f.read_bytes(), f.stat().st_mtime_ns) for d in done for f in (results / d).rglob("*") if f.is_file()
    }


def _stopped_in_one_line(proc, code: int) -> str:
    """The study's exit code is ``code``, at most 3 lines on stderr and no traceback; returns stderr."""
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == code, out[-2000:] + err[-2000:]
    assert len(err.strip().splitlines()) <= 3 and "Traceback" not in out + err, err
    return err


def _resume_completes(study: Path, storage_dir: Path, results: Path, finished: dict) -> str:
    """--resume ends every trial (exit 0) in the four trial dirs, each epoch once, leaving the finished trials' files
    as they were; returns its stdout."""
    proc = run_cli(str(study), "--storage", str(storage_dir), "--max-concurrent", "1", "--resume", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    rows = _rows(results)
    assert len(rows) == 4, sorted(rows)
    for name, trial in rows.items():
        assert [r["epoch"] for r in trial if "epoch" in r] == list(range(1, EPOCHS + 1)), name
    assert _finished_files(results).keys() >= finished.keys()
    for f, (data, mtime) in finished.items():
        assert Path(f).read_bytes() == data and Path(f).stat().st_mtime_ns == mtime, f
    return proc.stdout


@pytest.mark.e2e
def test_a_cut_short_experiment_state_is_rebuilt_from_the_trial_dirs(tmp_path):
    """Tune's newest state cut short (a disk full to the last byte as Tune saved it): --resume rebuilds the phase from
    the trial dirs, says so, carries the running trial on from its checkpoint, and reruns no finished trial."""
    proc, results = _start_mid_study(tmp_path, tmp_path / "runs", EVERY_EPOCH)
    proc.send_signal(signal.SIGINT)
    _stopped_in_one_line(proc, 130)
    from runner.driver import recover

    phase = json.loads((results / "study.json").read_text())["phases"][-1]
    assert recover.problem(results, phase) is None  # as Ctrl-C left it, Tune's own state carries the phase on
    state = sorted(results.glob("experiment_state-*.json"))[-1]
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    finished = _finished_files(results)
    out = _resume_completes(tmp_path / "s.py", tmp_path / "runs", results, finished)
    assert f"state  Tune's saved state ({state.name} or a file beside it) is unreadable" in out, out
    assert "state  carrying on from their last good checkpoints: a seed 1 from epoch" in out, out
    assert "starting over" not in out


def _bind(src: Path, dst: Path) -> Path:
    """``src`` mounted at ``dst`` too (a bind mount, which can be made read-only with files open); skipped
    without root."""
    src.mkdir()
    dst.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(src), str(dst)]).returncode:
        pytest.skip("a bind mount needs root")
    return dst


@pytest.fixture
def bound(tmp_path):
    """A dir mounted a second time, at ``tmp_path/bound``, unmounted after the test."""
    yield _bind(tmp_path / "real", tmp_path / "bound")
    subprocess.run(["umount", "-l", str(tmp_path / "bound")])


def _read_only(mount: Path, ro: bool = True) -> None:
    mode = "ro" if ro else "rw"
    subprocess.run(["mount", "-o", f"remount,bind,{mode}", str(mount)], check=True)


@pytest.mark.e2e
def test_read_only_storage_is_refused_before_anything_runs(bound):
    _read_only(bound)
    proc = run_cli("configs/smoke.py", "--storage", str(bound / "runs"), timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"--storage {bound / 'runs'}: cannot write there (Read-only file system)" in proc.stderr
    assert list(bound.iterdir()) == []


@pytest.mark.e2e
def test_a_results_dir_made_read_only_mid_study_stops_it_and_resume_finishes(bound, tmp_path):
    proc, results = _start_mid_study(tmp_path, bound)
    _read_only(bound)
    err = _stopped_in_one_line(proc, 74)
    assert "Read-only file system" in err and "make it writable again, then finish it with" in err, err
    assert Path(err.rsplit("details in ", 1)[1].strip().rstrip(")")).exists(), err
    _read_only(bound, ro=False)
    _resume_completes(tmp_path / "s.py", bound, results, _finished_files(results))


@pytest.mark.e2e
def test_a_results_dir_deleted_mid_study_stops_it_and_resume_says_it_is_gone(tmp_path):
    import shutil

    proc, results = _start_mid_study(tmp_path, tmp_path / "runs")
    shutil.rmtree(results)
    err = _stopped_in_one_line(proc, 74)
    assert "the results dir is gone" in err and "put the dir back (from a backup), then finish it with" in err, err
    log = Path(err.rsplit("details in ", 1)[1].strip().rstrip(")"))
    assert log == tmp_path / "runs" / "slow.runner.log" and log.exists(), err
    assert not results.exists(), sorted(
        str(p.relative_to(results)) for p in results.rglob("*")
    )  # what Ray's syncs made there again is not left behind as if it were the study
    again = run_cli(str(tmp_path / "s.py"), "--storage", str(tmp_path / "runs"), "--resume", str(results))
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"error: --resume {results}: no such directory (deleted or moved?); put it back (from a backup) to finish the "
        "study, or start it again without --resume"
    ], again.stderr


# --------------------------------------------------------------------------- rebuilding a phase (no Ray)


def _epochs(n: int, last: str = "running") -> str:
    rows = [{"epoch": e, "status": "running" if e < n else last, "val_accuracy": 0.1 * e} for e in range(1, n + 1)]
    return "".join(json.dumps(r) + "\n" for r in rows)


def _ckpt(trial_dir: Path, index: int, epoch: int, whole: bool = True) -> Path:
    import torch

    d = trial_dir / f"checkpoint_{index:06d}"
    d.mkdir()
    torch.save({"epoch": epoch}, d / "model.pt")
    if not whole:  # cut short by a full disk
        (d / "model.pt").write_bytes((d / "model.pt").read_bytes()[:100])
    (d / "meta.json").write_text(json.dumps({"epoch": epoch, "val_accuracy": 0.1 * epoch}))
    return d


def _state(root: Path, trials: dict[str, tuple[str, int]], named: dict[str, Path] | None = None) -> Path:
    """experiment_state-*.json as Tune writes it: per trial dir, its status, the last epoch it saw and (``named``) the
    checkpoint it carries the trial on from, in Tune's own checkpoint manager."""
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune.utils.serialization import TuneFunctionEncoder

    def meta(d: str, e: int) -> str:
        out: dict = {"metric_analysis": {"epoch": {"last": e}}}
        if d in (named or {}):
            manager = _CheckpointManager(CheckpointConfig(num_to_keep=None))
            manager.register_checkpoint(_TrainingResult(Checkpoint(str(named[d])), {"epoch": e}))
            out["checkpoint_manager"] = manager
        return json.dumps(out, cls=TuneFunctionEncoder)

    data = [[json.dumps({"relative_logdir": d, "status": s}), meta(d, e)] for d, (s, e) in trials.items()]
    (root / "tuner.pkl").write_bytes(b"\x80\x05N.")
    (root / "basic-variant-state-2026-01-01_00-00-00.json").write_bytes(b"\x80\x05N.")  # a pickle, named .json
    path = root / "experiment_state-2026-01-01_00-00-00.json"
    path.write_text(json.dumps({"trial_data": data}))
    return path


def _phase(root: Path) -> list[dict]:
    """A phase of three trials: a seed 0 finished (3 epochs), a seed 1 at epoch 2 of 3, a seed 2 never started."""
    phase = [{"variant": "a", "seed": s, "order": 0} for s in range(3)]
    root.joinpath("study.json").write_text(json.dumps({"trials": phase, "phases": [phase]}))
    done = _trial(root, "a", 0, json.dumps({"spec": phase[0]}), _epochs(3, "completed"))
    _ckpt(done, 2, 3)
    going = _trial(root, "a", 1, json.dumps({"spec": phase[1]}), _epochs(2))
    going.rename(root / trial_dir_name("a", 1, "abc12_00001"))
    return phase


def test_tunes_state_is_restored_only_when_whole_and_as_far_as_the_trial_dirs(tmp_path):
    from runner.driver import recover

    phase = _phase(tmp_path)
    done, going = trial_dir_name("a", 0, "abc12_00000"), trial_dir_name("a", 1, "abc12_00001")
    state = _state(tmp_path, {done: ("TERMINATED", 3), going: ("RUNNING", 2)})
    assert recover.problem(tmp_path, phase) is None
    _state(tmp_path, {done: ("RUNNING", 2), going: ("RUNNING", 2)})  # saved before a seed 0 finished
    assert recover.problem(tmp_path, phase) == (
        f"{state.name} is behind the trial dirs (a seed 0: epoch 2 unfinished there, epoch 3 finished in its dir)"
    )
    state.write_text(state.read_text()[:50])  # cut short
    assert recover.problem(tmp_path, phase).startswith(
        f"Tune's saved state ({state.name} or a file beside it) is unreadable"
    )


def test_a_state_that_names_a_checkpoint_gone_from_its_trial_dir_is_not_restored(tmp_path):
    """Tune carries an unfinished trial on from the checkpoint its state names; one gone (deleted after a storage fault
    kept the state from reaching the results dir) would fail Tune's restore: the phase is rebuilt instead."""
    from runner.driver import recover

    phase = _phase(tmp_path)
    done, going = trial_dir_name("a", 0, "abc12_00000"), trial_dir_name("a", 1, "abc12_00001")
    kept = _ckpt(tmp_path / going, 1, 2)
    trials = {done: ("TERMINATED", 3), going: ("RUNNING", 2)}
    state = _state(tmp_path, trials, named={going: kept, done: tmp_path / done / "checkpoint_000009"})
    assert recover.problem(tmp_path, phase) is None  # a finished trial is not carried on: its checkpoints don't matter
    _state(tmp_path, trials, named={going: tmp_path / going / "checkpoint_000000"})
    assert recover.problem(tmp_path, phase) == (
        f"{state.name} names a seed 1's checkpoint_000000, which its dir no longer holds"
    )


def test_retention_deletes_only_what_the_state_in_the_results_dir_no_longer_names(tmp_path):
    """Tune keeps every checkpoint; runner deletes those below the latest that Tune's uploaded state names (a state is
    uploaded after Tune asks the callbacks for theirs, so one save later), except the best; those set aside stay."""
    from types import SimpleNamespace

    from runner.driver.callbacks import Retention

    trial_dir = tmp_path / "a_seed0_abc"
    trial_dir.mkdir()
    for n, score in enumerate([0.1, 0.9, 0.3, 0.4, 0.5, 0.6]):
        _ckpt(trial_dir, n, n + 1)
        (trial_dir / f"checkpoint_{n:06d}" / "meta.json").write_text(
            json.dumps({"epoch": n + 1, "val_accuracy": score})
        )
    _ckpt(trial_dir, 7, 1).rename(trial_dir / "checkpoint_000000.r1")  # set aside by a rebuilt phase
    trial = SimpleNamespace(trial_id="t", relative_logdir=trial_dir.name,
                            checkpoint=SimpleNamespace(path=str(trial_dir / "checkpoint_000003")))  # fmt: skip
    retention = Retention(str(tmp_path))
    left = lambda: sorted(p.name for p in trial_dir.glob("checkpoint_*"))  # noqa: E731
    everything = left()
    retention.on_checkpoint(0, [], trial, trial.checkpoint)
    retention.get_state()  # the state being saved names checkpoint 3: nothing is deleted yet
    assert left() == everything
    trial.checkpoint.path = str(trial_dir / "checkpoint_000005")
    retention.on_checkpoint(0, [], trial, trial.checkpoint)
    retention.get_state()  # that state is in the results dir now: below 3, only the best (1) stays
    assert left() == ["checkpoint_000000.r1", "checkpoint_000001", "checkpoint_000003", "checkpoint_000004",
                      "checkpoint_000005"]  # fmt: skip
    retention.on_experiment_end([])  # the last state names 5
    assert left() == ["checkpoint_000000.r1", "checkpoint_000001", "checkpoint_000005"]


def test_a_phase_rebuilt_from_its_trial_dirs(tmp_path):
    """Finished trials are kept; an unfinished one carries on from its last checkpoint that loads, of an epoch its
    result.json reaches (set aside from the new run's checkpoint_000000); one never started starts; and one without
    a checkpoint that loads starts over, said on the console."""
    from runner.driver import recover

    phase = _phase(tmp_path)
    going = tmp_path / trial_dir_name("a", 1, "abc12_00001")
    _ckpt(going, 0, 1)
    _ckpt(going, 1, 2, whole=False)
    rebuilt = recover.plan(tmp_path, phase)
    assert rebuilt.kept == 1 and [p["seed"] for p in rebuilt.params] == [1, 2]
    carry = rebuilt.params[0][CARRY_ON]
    assert carry == {"dir": going.name, "checkpoint": str(going / "checkpoint_000000.r1"), "epoch": 1}
    assert sorted(p.name for p in going.glob("checkpoint_*")) == ["checkpoint_000000.r1", "checkpoint_000001.r1"]
    assert rebuilt.lines("why") == [
        "state  why: the phase is rebuilt from its trial dirs (1 finished trial kept as it is)",
        "state  carrying on from their last good checkpoints: a seed 1 from epoch 1",
        "state  never started: a seed 2",
    ]
    staging = tmp_path / "staging"
    (going / "progress.csv").write_text("epoch,val_accuracy\n1,0.1\n2,0.2\n")
    files.stage_rows(tmp_path / carry["dir"], carry["epoch"], staging)
    assert [json.loads(line)["epoch"] for line in (staging / "result.json").read_text().splitlines()] == [1]
    assert (staging / "progress.csv").read_text().splitlines() == ["epoch,val_accuracy", "1,0.1"]
    (going / "checkpoint_000000.r1" / "model.pt").write_bytes(b"")  # now no checkpoint loads
    again = recover.plan(tmp_path, phase)
    assert again.params[0][CARRY_ON]["epoch"] == 0
    assert again.over == ["a seed 1 (no checkpoint that loads, of its 2 epochs)"]


def test_a_rebuilt_confirmation_carries_on_a_confirmed_samples_pruned_trial(tmp_path):
    """A confirmation killed before one of its trials started: that trial's dir still says pruned, but its sample is
    confirmed, so the rebuilt phase carries it on from its checkpoint; a pruned trial of a sample not confirmed stays
    as it is."""
    from runner.driver import recover

    phase = [{"variant": v, "seed": 0, "order": 0} for v in ("s000", "s001")]
    search = {"samples": 2, "confirm": 1, "confirmed": ["s000"], "batches": [["s000", "s001"]]}
    (tmp_path / "study.json").write_text(json.dumps({"trials": phase, "phases": [phase], "search": search}))
    for p in phase:
        d = _trial(tmp_path, p["variant"], 0, json.dumps({"spec": p}), _epochs(1))
        _ckpt(d, 0, 1)
        (d / files.PRUNED).write_text(json.dumps({"epoch": 1, "val_accuracy": 0.1}))
    rebuilt = recover.plan(tmp_path, phase)
    assert rebuilt.kept == 1 and [p["variant"] for p in rebuilt.params] == ["s000"]
    assert rebuilt.params[0][CARRY_ON]["epoch"] == 1 and rebuilt.carried == ["s000 seed 0 from epoch 1"]


def test_a_missing_file_is_a_storage_fault_only_when_the_results_dir_is_gone(tmp_path):
    from runner.errors import storage_fault

    missing = FileNotFoundError(2, "No such file or directory", str(tmp_path / "d" / "events"))
    assert storage_fault(missing, str(tmp_path)) is None  # e.g. an image folder the user named wrong
    assert (
        storage_fault(missing, str(tmp_path / "d"))
        == f"the results dir is gone ({tmp_path / 'd'}: deleted or moved while the study ran)"
    )
