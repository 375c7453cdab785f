"""The trial loop without Ray (a stand-in session): same seed -> identical metrics; a resumed trial
ends exactly where an unbroken one does."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from runner.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from runner.data.builtin import digits
from runner.trial import load_state, train_loop


class Session:
    """What the loop needs from Ray, in process: one rank, the data, reports collected, checkpoints kept."""

    rank, world, device = 0, 1, torch.device("cpu")

    def __init__(self, data, keep: Path, resume_from: str | None = None, stop_after: int | None = None):
        keep.mkdir(parents=True, exist_ok=True)
        self.data, self.keep, self.resume_from, self.stop_after = data, keep, resume_from, stop_after
        self.reports, self.checkpoints = [], []

    def shard(self, name):
        return self.data[name]

    def restored_state(self):
        return load_state(self.resume_from) if self.resume_from else None

    def workers(self):
        return "local"

    def equalize(self, x, y):
        return x, y

    def prepare(self, model):
        return model

    def all_reduce(self, t):
        return t

    def broadcast(self, t):
        return t

    def report(self, metrics, checkpoint_dir):
        self.reports.append(metrics)
        if checkpoint_dir:  # the loop deletes its temp dir after reporting, as Ray has copied it by then
            kept = self.keep / f"checkpoint_{metrics['epoch']}"
            shutil.copytree(checkpoint_dir, kept)
            self.checkpoints.append(str(kept))
        if self.stop_after and metrics["epoch"] == self.stop_after:
            raise KeyboardInterrupt  # the process "dies" right after this report


@pytest.fixture(scope="module")
def data():
    tx, ty, vx, vy, classes = digits(DataConfig(path="builtin:digits", image_size=8))
    return {"train": (tx[:400], ty[:400]), "val": (vx, vy)}, classes


def _config(tmp_path: Path, classes, epochs: int = 4, seed: int = 0, checkpoint_every: int = 1) -> dict:
    cfg = TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), model=ModelConfig(hidden=(32,), dropout=0.2),
                      train=TrainConfig(epochs=epochs, batch_size=32, seed=seed, checkpoint_every=checkpoint_every))
    return {"trial": cfg.to_dict(), "variant": "v", "classes": classes, "logdir": str(tmp_path / "tb"), "local": True, "cpus": 1}


KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_val_accuracy", "best_epoch")


def _metrics(reports):
    return [{k: r[k] for k in KEYS} for r in reports]


def test_same_config_and_seed_give_identical_metrics(tmp_path, data):
    (d, classes) = data
    runs = []
    for i in range(2):
        s = Session(d, tmp_path / f"ckpt{i}")
        train_loop(_config(tmp_path / f"run{i}", classes), session=s)
        runs.append(_metrics(s.reports))
    assert runs[0] == runs[1]  # bit-identical on CPU
    other = Session(d, tmp_path / "ckpt_seed1")
    train_loop(_config(tmp_path / "seed1", classes, seed=1), session=other)
    assert _metrics(other.reports) != runs[0]


def test_resumed_trial_ends_exactly_like_an_unbroken_one(tmp_path, data):
    (d, classes) = data
    whole = Session(d, tmp_path / "whole")
    train_loop(_config(tmp_path / "a", classes, epochs=5), session=whole)

    broken = Session(d, tmp_path / "broken", stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        train_loop(_config(tmp_path / "b", classes, epochs=5), session=broken)
    resumed = Session(d, tmp_path / "broken", resume_from=broken.checkpoints[-1])
    train_loop(_config(tmp_path / "b", classes, epochs=5), session=resumed)

    assert [r["epoch"] for r in resumed.reports] == [3, 4, 5]
    assert resumed.reports[-1]["resumed_from_epoch"] == 2
    assert _metrics(broken.reports + resumed.reports) == _metrics(whole.reports)
    state = torch.load(Path(resumed.checkpoints[-1]) / "model.pt", weights_only=False)
    assert state["epoch"] == 5 and state["classes"] == classes and np.isfinite(state["val_accuracy"])


def test_checkpoint_every_keeps_the_best_and_the_last_and_resumes_exactly(tmp_path, data):
    (d, classes) = data
    every = Session(d, tmp_path / "every")
    train_loop(_config(tmp_path / "a", classes, epochs=16), session=every)
    sparse = Session(d, tmp_path / "sparse")
    train_loop(_config(tmp_path / "b", classes, epochs=16, checkpoint_every=5), session=sparse)
    assert _metrics(sparse.reports) == _metrics(every.reports)  # fewer checkpoints change no number

    improved = {r["epoch"] for i, r in enumerate(sparse.reports)
                if i == 0 or r["best_val_accuracy"] > sparse.reports[i - 1]["best_val_accuracy"]}
    saved = [int(Path(c).name.split("_")[1]) for c in sparse.checkpoints]
    assert saved == sorted({5, 10, 15, 16} | improved)  # every 5th epoch, each new best, the last
    assert len(saved) < 16  # some epoch was neither (val accuracy on digits stalls now and then)

    # A crash after an epoch without a checkpoint: the resumed trial redoes the epochs after the last one.
    skipped = min(set(range(1, 17)) - set(saved))
    broken = Session(d, tmp_path / "broken", stop_after=skipped)
    with pytest.raises(KeyboardInterrupt):
        train_loop(_config(tmp_path / "c", classes, epochs=16, checkpoint_every=5), session=broken)
    resumed = Session(d, tmp_path / "broken", resume_from=broken.checkpoints[-1])
    train_loop(_config(tmp_path / "c", classes, epochs=16, checkpoint_every=5), session=resumed)
    assert [r["epoch"] for r in resumed.reports] == list(range(skipped, 17))
    assert _metrics(resumed.reports) == _metrics(every.reports)[skipped - 1:]
