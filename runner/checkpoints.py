"""Checkpoints, one owner: the format the loop saves and resumes from, the best and the latest kept one, and what
Ray keeps (retention). evaluate / predict / the summary read them through here.

A checkpoint is a directory (Ray copies it into the trial dir as ``checkpoint_NNNNNN``) holding
``model.pt`` (a torch dict: model and optimizer state, config, classes, epoch, early stopping state,
the epoch history, the best epoch's predictions, and ``best_model``: the best epoch's weights when that
epoch is an earlier one) and ``meta.json`` ({epoch, val_accuracy}), so the best kept checkpoint is found
without loading any weights. ``SCORE`` is the val accuracy of the model a checkpoint gives evaluate and
predict (``best_model`` when it has one). A trial keeps the checkpoint with the best, and the latest: Ray deletes the
others in a worker group and for a results dir at a URI, ``prune`` (runner.driver.callbacks.Retention) in a results
dir on disk, once Tune's saved state no longer names them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

FILE = "model.pt"
META = "meta.json"
SCORE = "val_accuracy"  # what "best" means: the val accuracy of the checkpoint's model for use, higher is better
CHECKPOINT_SCORE = "checkpoint_val_accuracy"  # SCORE as the epoch's result reports it to Ray (epochs with a checkpoint)

# the keys of the state in model.pt (runner.trial.loop writes and resumes from it; evaluate and predict read it)
MODEL, OPTIMIZER, EPOCH = "model", "optimizer", "epoch"  # the epoch's weights and optimizer state
CONFIG, CLASSES = "config", "classes"  # the trial's TrialConfig.to_dict() and class names, in label order
STOPPER, HISTORY = "stopper", "history"  # early stopping's state; per epoch: accuracies and val loss
BEST_PREDS, BEST_TEST = "best_preds", "best_test"  # the best epoch's val predictions; its model on the test split
BEST_MODEL, BEST_EPOCH = "best_model", "best_epoch"  # the best epoch's weights, when an earlier epoch is the best


def weights_for_use(state: dict) -> dict:
    """The weights evaluate and predict load: the best epoch's (SCORE's)."""
    return state.get(BEST_MODEL) or state[MODEL]


NAME = re.compile(r"checkpoint_(\d{6})")  # Ray's name for a trial's Nth checkpoint dir


def ray_config(config_cls, keep_all: bool = False):
    """Ray's CheckpointConfig (Tune's or Train's): keep the checkpoint whose model for use scores best, and the
    latest (Ray always does). With ``keep_all``, Ray deletes none (``prune`` does, later)."""
    keep = None if keep_all else 1
    return config_cls(num_to_keep=keep, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order="max")


def index(checkpoint_dir: str) -> int | None:
    """N of a ``checkpoint_NNNNNN`` dir; None for another name (a checkpoint set aside by runner.driver.recover)."""
    found = NAME.fullmatch(os.path.basename(os.path.normpath(checkpoint_dir)))
    return int(found.group(1)) if found else None


def prune(trial_dir: Path, below: int) -> None:
    """Delete the trial's checkpoints numbered below ``below``, except its best (``best``); those set aside, and
    those a worker group keeps in dirs of its own, stay."""
    keep = best(trial_dir)
    for d in trial_dir.iterdir():
        n = index(d.name)
        if n is not None and n < below and str(d.relative_to(trial_dir.parent)) != keep:
            shutil.rmtree(d, ignore_errors=True)


def save(state: dict) -> str:
    """Write ``state`` (with "epoch" and SCORE) into a new temporary dir and return it; the caller hands
    it to Ray, which copies it, then removes it. With torch's per-record CRC32: ``loads`` checks it to tell a whole
    checkpoint from a damaged one (what that costs: docs/performance.md)."""
    import torch

    d = tempfile.mkdtemp(prefix="runner-ckpt-")
    torch.save(state, os.path.join(d, FILE))
    (Path(d) / META).write_text(json.dumps({EPOCH: state[EPOCH], SCORE: state[SCORE]}))
    return d


def read(path) -> dict:
    """A model.pt ``save`` wrote, loaded on the CPU without running pickled code. Checkpoints written
    before best_preds became a list hold a numpy array: exactly numpy's array types are allowed."""
    import numpy as np
    import torch

    with torch.serialization.safe_globals(
        [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.int64))]
    ):
        return torch.load(path, map_location="cpu", weights_only=True)


def read_dir(checkpoint_dir: str) -> dict | None:
    """The state in a checkpoint dir, or None when it holds none."""
    path = os.path.join(checkpoint_dir, FILE)
    return read(path) if os.path.exists(path) else None


def best(trial_dir: Path) -> str:
    """The kept checkpoint with the highest SCORE (earliest epoch on ties), relative to the results dir;
    "" when there is none. Checkpoints without meta.json (older results) rank below, newest first. A
    checkpoint counts by its model.pt or its meta.json (a URI's results are read from a copy without
    the weights)."""

    def score(d: Path) -> tuple:
        try:
            meta = json.loads((d / META).read_text())
            return (1, meta[SCORE], -meta["epoch"], 0.0)
        except (OSError, ValueError, KeyError):
            return (0, 0.0, 0, (d / FILE).stat().st_mtime if (d / FILE).exists() else 0.0)

    found = {
        p.parent for pattern in (f"**/checkpoint_*/{FILE}", f"**/checkpoint_*/{META}") for p in trial_dir.glob(pattern)
    }
    return str(max(found, key=score).relative_to(trial_dir.parent)) if found else ""


def kept(trial_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, dir) of the trial's checkpoints that say their epoch, oldest first; the last is the latest."""
    out = []
    for meta in trial_dir.glob(f"**/checkpoint_*/{META}"):
        try:
            out.append((int(json.loads(meta.read_text())[EPOCH]), meta.parent))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(out)


def loads(checkpoint_dir: Path) -> bool:
    """Whether the checkpoint's weights are whole (torch.save writes a zip with a CRC32 per record; one cut short
    has no directory)."""
    try:
        with zipfile.ZipFile(checkpoint_dir / FILE) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False
