"""The trial loop without Ray (runner.trial.loop with the in-memory session of tests/fakes.py): same seed -> identical metrics; a
resumed trial ends exactly where an unbroken one does."""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import MemorySession
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner import checkpoints
from runner.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from runner.data.augment import normalize
from runner.data.source import load_images
from runner.inference import pick
from runner.study.plan import TrialSpec
from runner.study.resources import Fit
from runner.trial import loop
from runner.trial.loop import train


class DyingSession(MemorySession):
    """The process "dies" right after reporting epoch ``stop_after``; with ``raises=SystemExit``, Tune stops the trial
    there (ASHA), as Tune's report does."""

    def __init__(self, data, keep: Path, stop_after: int, raises: type[BaseException] = KeyboardInterrupt):
        super().__init__(data, keep)
        self.stop_after, self.raises = stop_after, raises

    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == self.stop_after:
            raise self.raises


@pytest.fixture(scope="module")
def data():
    s = load_images(DataConfig(path="builtin:digits", image_size=8))
    return {"train": (s.train_x[:400], s.train_y[:400]), "val": (s.val_x, s.val_y)}, s.classes


@pytest.fixture(scope="module")
def with_test():
    """Digits with a held-out test split (data.test_fraction)."""
    s = load_images(DataConfig(path="builtin:digits", image_size=8, test_fraction=0.2))
    assert s.has_test
    return {
        "train": (s.train_x[:400], s.train_y[:400]),
        "val": (s.val_x, s.val_y),
        "test": (s.test_x, s.test_y),
    }, s.classes


def _spec(classes, epochs: int = 4, seed: int = 0, checkpoint_every: int = 1) -> TrialSpec:
    cfg = TrialConfig(
        data=DataConfig(path="builtin:digits", image_size=8),
        model=ModelConfig(hidden=(32,), dropout=0.2),
        train=TrainConfig(epochs=epochs, batch_size=32, seed=seed, checkpoint_every=checkpoint_every),
    )
    return TrialSpec("v", seed, 0, "d0", tuple(classes), cfg, Fit(1.0, 1.0, 0.0))


def _run(tmp_path: Path, session, spec: TrialSpec) -> None:
    train(spec, session, str(tmp_path / "tb"))


KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_val_accuracy", "best_epoch")


def _metrics(reports):
    return [{k: r[k] for k in KEYS} for r in reports]


def test_same_config_and_seed_give_identical_metrics(tmp_path, data):
    (d, classes) = data
    runs = []
    for i in range(2):
        s = MemorySession(d, tmp_path / f"ckpt{i}")
        _run(tmp_path / f"run{i}", s, _spec(classes))
        runs.append(_metrics(s.reports))
    assert runs[0] == runs[1]  # bit-identical on CPU
    other = MemorySession(d, tmp_path / "ckpt_seed1")
    _run(tmp_path / "seed1", other, _spec(classes, seed=1))
    assert _metrics(other.reports) != runs[0]


def test_resumed_trial_ends_exactly_like_an_unbroken_one(tmp_path, data):
    (d, classes) = data
    whole = MemorySession(d, tmp_path / "whole")
    _run(tmp_path / "a", whole, _spec(classes, epochs=5))

    broken = DyingSession(d, tmp_path / "broken", stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", broken, _spec(classes, epochs=5))
    resumed = MemorySession(d, tmp_path / "broken", resume_from=broken.checkpoints[-1])
    _run(tmp_path / "b", resumed, _spec(classes, epochs=5))

    assert [r["epoch"] for r in resumed.reports] == [3, 4, 5]
    assert resumed.reports[-1]["resumed_from_epoch"] == 2
    assert _metrics(broken.reports + resumed.reports) == _metrics(whole.reports)
    state = torch.load(Path(resumed.checkpoints[-1]) / "model.pt", weights_only=False)
    assert state["epoch"] == 5 and state["classes"] == classes and np.isfinite(state["val_accuracy"])


def _weights(path) -> list:
    model, *_ = pick.load_model(Path(path) / "model.pt")
    return [t.clone() for t in model.state_dict().values()]


def test_checkpoint_every_holds_the_best_weights_and_resumes_exactly(tmp_path, data):
    (d, classes) = data
    every = MemorySession(d, tmp_path / "every")
    _run(tmp_path / "a", every, _spec(classes, epochs=16))
    sparse = MemorySession(d, tmp_path / "sparse")
    _run(tmp_path / "b", sparse, _spec(classes, epochs=16, checkpoint_every=5))
    assert _metrics(sparse.reports) == _metrics(every.reports)  # fewer checkpoints change no number
    saved = [int(Path(c).name.split("_")[1]) for c in sparse.checkpoints]
    assert saved == [5, 10, 15, 16]  # every 5th epoch and the last

    # A checkpoint gives evaluate its own weights, or the best epoch's when that epoch had no checkpoint of its own
    # (best_model); its score is the val accuracy of those weights, and the one picked holds the best epoch's.
    by_epoch = {int(Path(c).name.split("_")[1]): c for c in every.checkpoints}
    assert len(by_epoch) == 16
    held = set()
    for c in sparse.checkpoints:
        epoch = int(Path(c).name.split("_")[1])
        state = torch.load(Path(c) / "model.pt", weights_only=False)
        loads = state["best_epoch"] if "best_model" in state else epoch
        held.add(loads)
        assert all(torch.equal(a, b) for a, b in zip(_weights(c), _weights(by_epoch[loads]))), (epoch, loads)
        meta = json.loads((Path(c) / checkpoints.META).read_text())
        assert meta == {"epoch": epoch, checkpoints.SCORE: sparse.reports[loads - 1]["val_accuracy"]}
    assert held - set(saved)  # some checkpoint held an earlier best epoch's weights
    best_epoch = sparse.reports[-1]["best_epoch"]
    picked = tmp_path / checkpoints.best(tmp_path / "sparse")
    assert all(torch.equal(a, b) for a, b in zip(_weights(picked), _weights(by_epoch[best_epoch])))
    assert not any("best_model" in torch.load(Path(c) / "model.pt", weights_only=False) for c in every.checkpoints)

    # A crash after an epoch without a checkpoint: the resumed trial redoes the epochs after the last one.
    broken = DyingSession(d, tmp_path / "broken", stop_after=7)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "c", broken, _spec(classes, epochs=16, checkpoint_every=5))
    resumed = MemorySession(d, tmp_path / "broken", resume_from=broken.checkpoints[-1])
    _run(tmp_path / "c", resumed, _spec(classes, epochs=16, checkpoint_every=5))
    assert [r["epoch"] for r in resumed.reports] == list(range(6, 17))
    assert _metrics(resumed.reports) == _metrics(every.reports)[5:]
    last = resumed.checkpoints[-1]
    assert all(torch.equal(a, b) for a, b in zip(_weights(last), _weights(by_epoch[every.reports[-1]["best_epoch"]])))


def _epochs(session: MemorySession) -> list[int]:
    return [int(Path(c).name.split("_")[1]) for c in session.checkpoints]


@pytest.mark.parametrize(
    ("share", "expected", "next_trial"), [(1e-9, [1, 8], [8]), (1e9, list(range(1, 9)), list(range(1, 9)))]
)
def test_auto_checkpoints_are_as_frequent_as_their_cost_allows(
    tmp_path, data, monkeypatch, share, expected, next_trial
):
    """train.checkpoint_every = 0 (the default): the last epoch always; before it, once the time since the last one
    (or the trial's start) is 1 / CHECKPOINT_SHARE times what writing one takes. The process's first trial writes one
    at its first epoch to measure that; its next trials (a reused trial process) know it and space even their first."""
    (d, classes) = data
    monkeypatch.setattr(loop, "CHECKPOINT_SHARE", share)
    monkeypatch.setattr(loop, "_CHECKPOINT_COST", {})  # a fresh process
    s = MemorySession(d, tmp_path / "auto")
    _run(tmp_path / "a", s, _spec(classes, epochs=8, checkpoint_every=0))
    assert _epochs(s) == expected
    again = MemorySession(d, tmp_path / "again")
    _run(tmp_path / "b", again, _spec(classes, epochs=8, seed=1, checkpoint_every=0))
    assert _epochs(again) == next_trial
    other = MemorySession(d, tmp_path / "other")  # another model size: its cost is not known yet
    spec = _spec(classes, epochs=8, checkpoint_every=0)
    model = dataclasses.replace(spec.config.model, hidden=(48,))
    wider = dataclasses.replace(spec, config=dataclasses.replace(spec.config, model=model))
    _run(tmp_path / "c", other, wider)
    assert _epochs(other) == expected


@pytest.mark.parametrize(
    ("share", "expected", "resumed_at"), [(1e-9, [3, 6, 8], [8]), (1e9, list(range(3, 9)), [7, 8])]
)
def test_a_trial_under_asha_checkpoints_at_its_rungs(tmp_path, data, monkeypatch, share, expected, resumed_at):
    """``checkpoint_at`` (ASHA's rungs, runner.driver.tuner): the rungs after the first always checkpoint, so a trial
    ASHA stops there carries on from exactly where it stopped; no checkpoint up to the first rung's decision (most
    samples stop there), the first just after it when the process has not measured one yet."""
    (d, classes) = data
    monkeypatch.setattr(loop, "CHECKPOINT_SHARE", share)
    monkeypatch.setattr(loop, "_CHECKPOINT_COST", {})
    s = MemorySession(d, tmp_path / "rungs")
    train(_spec(classes, epochs=8, checkpoint_every=0), s, str(tmp_path / "tb"), checkpoint_at=(2, 6))
    assert _epochs(s) == expected
    (first,) = s.reports[:1]
    assert "checkpoint_val_accuracy" not in first
    rung6 = next(c for c in s.checkpoints if c.endswith("_6"))
    resumed = MemorySession(
        d, tmp_path / "from6", resume_from=rung6
    )  # carried on from rung 6: its checkpoints are spaced from there
    train(_spec(classes, epochs=8, checkpoint_every=0), resumed, str(tmp_path / "tb2"), checkpoint_at=(2, 6))
    assert _epochs(resumed) == resumed_at  # the cost is known now: spaced from where it carried on


def test_the_best_epochs_model_is_evaluated_on_test_at_the_end(tmp_path, with_test):
    """test_accuracy: the model of the best val epoch on the test split, reported once, at the end; a resumed
    trial reports the same."""
    d, classes = with_test
    whole = MemorySession(d, tmp_path / "whole")
    _run(tmp_path / "a", whole, _spec(classes, epochs=5))
    *running, last = whole.reports
    assert all("test_accuracy" not in r for r in running)  # nothing during the trial can look at it
    best = max(whole.reports, key=lambda r: (r["val_accuracy"], -r["epoch"]))
    assert last["best_epoch"] == best["epoch"]
    # the best checkpoint's model, evaluated here on test, gives the reported number
    best_ckpt = next(c for c in whole.checkpoints if c.endswith(f"_{best['epoch']}"))
    model, cfg, _, _ = pick.load_model(Path(best_ckpt) / "model.pt")
    x, y = d["test"]
    with torch.no_grad():
        pred = model(normalize(torch.from_numpy(x), cfg.augment)).argmax(1).numpy()
    assert last["test_accuracy"] == pytest.approx((pred == y).mean())
    report = (tmp_path / "a" / "tb" / "test_classification_report.txt").read_text()
    assert f"best epoch {best['epoch']}" in report and "precision" in report

    broken = DyingSession(d, tmp_path / "broken", stop_after=best["epoch"] + 1 if best["epoch"] < 5 else 4)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", broken, _spec(classes, epochs=5))
    resumed = MemorySession(d, tmp_path / "broken", resume_from=broken.checkpoints[-1])
    _run(tmp_path / "b", resumed, _spec(classes, epochs=5))
    assert resumed.reports[-1]["test_accuracy"] == last["test_accuracy"]


def test_no_test_split_reports_no_test_accuracy(tmp_path, data):
    d, classes = data
    s = MemorySession(d, tmp_path / "k")
    _run(tmp_path / "a", s, _spec(classes, epochs=2))
    assert "test_accuracy" not in s.reports[-1]
    assert not (tmp_path / "a" / "tb" / "test_classification_report.txt").exists()


def test_a_trial_tune_stops_ends_at_its_next_batch_and_writes_no_cut_short_epoch(tmp_path, data, monkeypatch):
    """So Tune can reuse the process for the next trial at once: the epoch being trained when the stop arrives ends
    at its next batch (the third at the latest: it waits until the stop has arrived), and nothing of it is reported
    or written."""
    (d, classes) = data
    images = []

    def spy(*args, stop=None, **kwargs):
        def held_stop():
            if len(calls) == 2 and len(images) == 1:  # epoch 2's third batch waits for epoch 1's stop
                deadline = time.time() + 10
                while not stop() and time.time() < deadline:
                    time.sleep(0.01)
            calls.append(1)
            return stop()

        calls: list = []
        sums = real(*args, stop=held_stop if stop else None, **kwargs)
        images.append(int(sums[2].item()))
        return sums

    real = loop.train_epoch
    monkeypatch.setattr(loop, "train_epoch", spy)
    session = DyingSession(d, tmp_path / "ckpt", stop_after=1, raises=SystemExit)
    with pytest.raises(SystemExit):
        _run(tmp_path / "t", session, _spec(classes, epochs=4))
    assert images[0] == 400 and images[1] <= 64  # epoch 2 stopped by its third batch of 32 (of 13)
    assert [r["epoch"] for r in session.reports] == [1]
    events = EventAccumulator(str(tmp_path / "t" / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("val/accuracy")] == [1]
