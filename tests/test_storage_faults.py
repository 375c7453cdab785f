"""Storage faults that must never damage a study: files written whole or not at all, one writer per results
dir, a study that cannot fit refused before it starts, and damaged trial files read as a row, not a traceback."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from runner import storage
from runner.config import ConfigError
from runner.results import Status, read_records, trial_dir_name


def _trial(root: Path, variant: str, seed: int, params: str | None, result: str = "") -> Path:
    d = root / trial_dir_name(variant, seed, "abc12_00000")
    d.mkdir(parents=True)
    if params is not None:
        (d / "params.json").write_text(params)
    (d / "result.json").write_text(result)
    return d


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
    with storage.Lock(str(d)):
        # another live process holds it: the parent of this test is one
        (d / storage.Lock.NAME).write_text(str(os.getppid()))
        with pytest.raises(ConfigError, match=rf"another runner \(pid {os.getppid()}\) is writing there"):
            with storage.Lock(str(d)):
                pass
        (d / storage.Lock.NAME).write_text(str(os.getpid()))
    assert not (d / storage.Lock.NAME).exists()
    (d / storage.Lock.NAME).write_text("999999999")  # left by a process that is gone
    with storage.Lock(str(d)):
        assert (d / storage.Lock.NAME).read_text() == str(os.getpid())


def test_the_lock_of_a_killed_runner_is_taken_over(tmp_path):
    """A runner killed with kill -9 whose parent has not reaped it yet (a zombie) holds no lock."""
    import signal

    victim = subprocess.Popen(["sleep", "60"])
    os.kill(victim.pid, signal.SIGKILL)
    time.sleep(0.2)  # not waited for: a zombie
    d = tmp_path / "study"
    d.mkdir()
    (d / storage.Lock.NAME).write_text(str(victim.pid))
    with storage.Lock(str(d)):
        assert (d / storage.Lock.NAME).read_text() == str(os.getpid())
    victim.wait()


def test_results_dirs_are_claimed_so_two_studies_never_share_one(tmp_path):
    first = storage.new_results_dir(str(tmp_path), "s", explicit=False)
    second = storage.new_results_dir(str(tmp_path), "s", explicit=False)  # the first one's dir exists, empty or not
    assert Path(first).name == "s" and Path(second).name == "s-2" and Path(second).is_dir()
    (Path(first) / "x").write_text("results")
    with pytest.raises(ConfigError, match="already holds results"):
        storage.new_results_dir(str(tmp_path), "s", explicit=True)


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


def test_a_study_that_cannot_fit_is_refused_before_anything_starts(small_disk):
    proc = run_cli("configs/init_study.py", "--storage", str(small_disk), timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "the study writes about 1.72 GiB (12 trials, two checkpoints each), and 20 MiB is free there" in proc.stderr
    assert list(small_disk.iterdir()) == []  # nothing was created


FOUR_EPOCHS = """
study = Study(name="full", base=TrialConfig(train=TrainConfig(epochs=4)), variants={"a": {}, "b": {"model.dropout": 0.1}})
"""


@pytest.mark.e2e
def test_a_disk_that_fills_mid_study_stops_it_in_one_line(disk, tmp_path):
    """The study stops like Ctrl-C with exit 74 and one line (where, what, the resume command, the log), no
    traceback. (Whether --resume can carry the trials on depends on Tune's state having been saved before the
    disk filled: that part of the storage-faults issue is still open.)"""
    from conftest import start_cli, write_study

    study = write_study(tmp_path / "s.py", FOUR_EPOCHS)
    proc = start_cli(str(study), "--storage", str(disk))
    results = disk / "full"
    end = time.time() + 240
    while time.time() < end and not any('"epoch": 1' in p.read_text() for p in results.glob("*/result.json")):
        time.sleep(0.2)
    with pytest.raises(OSError) as full:  # the disk really fills up: a checkpoint or an event file is next
        with open(disk / "filler", "wb") as f:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
    assert full.value.errno == errno.ENOSPC
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 74, out[-2000:] + err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "--resume" in lines[0], err
    assert "Traceback" not in out + err
    log = lines[0].rsplit("details in ", 1)[1].rstrip(")")
    assert Path(log).exists()


def test_the_storage_estimate():
    """The course MLP's checkpoint (weights and Adam's two moments, float32) is the 72.8 MiB measured on disk; a
    trial whose model cannot even be allocated writes nothing."""
    from runner.config import ModelConfig, TrialConfig
    from runner.plan import EVENTS_PER_EPOCH, checkpoint_bytes, storage_needed

    course = TrialConfig(model=ModelConfig(hidden=(512, 128)))
    assert checkpoint_bytes(course, 9) / 2**20 == pytest.approx(72.77, abs=0.01)
    huge = TrialConfig(model=ModelConfig(hidden=(10**12,)))
    per_trial = 2 * checkpoint_bytes(course, 9) + 10 * EVENTS_PER_EPOCH
    assert storage_needed([(course, 9), (huge, 9)], memory=24 * 2**30) == per_trial


def test_the_partial_summary_after_a_fault_adds_no_warning(tmp_path, capsys):
    """After a storage fault the one line says it all: trial files the full disk left empty stay quiet."""
    import logging

    from runner.storage import Results
    from runner.tune import _write_partial_summary

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
