"""Checkpoints: the one format the loop saves and resumes from, and evaluate / predict / summary read.

A checkpoint is a directory (Ray copies it into the trial dir as ``checkpoint_NNNNNN``) holding
``model.pt`` (a torch dict: model and optimizer state, config, classes, epoch, early stopping state,
the epoch history, the best epoch's predictions, and ``best_model``: the best epoch's weights when that
epoch is an earlier one) and ``meta.json`` ({epoch, val_accuracy}), so the best kept checkpoint is found
without loading any weights. ``SCORE`` is the val accuracy of the model a checkpoint gives evaluate and
predict (``best_model`` when it has one); Ray keeps the checkpoint with the best, and the latest.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

FILE = "model.pt"
META = "meta.json"
SCORE = "val_accuracy"  # what "best" means: the val accuracy of the checkpoint's model for use, higher is better
CHECKPOINT_SCORE = "checkpoint_val_accuracy"  # SCORE as the epoch's result reports it to Ray (epochs with a checkpoint)


def ray_config(config_cls):
    """Ray's CheckpointConfig (Tune's or Train's): keep the checkpoint whose model for use scores best, and the
    latest (Ray always does)."""
    return config_cls(num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order="max")


def save(state: dict) -> str:
    """Write ``state`` (with "epoch" and SCORE) into a new temporary dir and return it; the caller hands
    it to Ray, which copies it, then removes it. With torch's per-record CRC32 (12 of the 27 ms it takes for the
    course MLP's 74 MiB): runner.rebuild checks it to tell a whole checkpoint from a damaged one."""
    import torch

    d = tempfile.mkdtemp(prefix="runner-ckpt-")
    torch.save(state, os.path.join(d, FILE))
    (Path(d) / META).write_text(json.dumps({"epoch": state["epoch"], SCORE: state[SCORE]}))
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


def load_model(path: Path):
    """(model in eval mode on the CPU, its TrialConfig, class names, the raw checkpoint dict) from a model.pt."""
    from runner.config import TrialConfig
    from runner.errors import ConfigError, first_line
    from runner.trial.model import build_model

    try:
        ckpt = read(path)
        cfg = TrialConfig.from_dict(ckpt["config"])
        classes = list(ckpt["classes"])
        size = cfg.data.image_size
        model = build_model(cfg.model, size * size * cfg.data.channels, len(classes))
        model.load_state_dict(ckpt.get("best_model") or ckpt["model"])
    except Exception as e:  # noqa: BLE001 - whatever fails (unpickling, keys, shapes), the file is not one of ours
        raise ConfigError(f"{path}: not a runner checkpoint ({type(e).__name__}: {first_line(e, 200)})") from None
    return model.eval(), cfg, classes, ckpt


@dataclass(frozen=True)
class Picked:
    path: Path  # the model.pt to load (a local copy for a URI)
    record: object  # the trial's results.TrialRecord
    source: str  # where it lives, as the user gave it: a path or a URI


def pick(results_dir: Path | str, variant: str | None = None, seed: int | None = None) -> Picked:
    """The best model.pt of ``variant`` (default: the best mean best-val-accuracy), optionally of ``seed``:
    among those trials, the one with the highest best val accuracy. A URI's is fetched (removed at exit)."""
    from runner import storage

    if storage.is_uri(str(results_dir)):
        return _pick_remote(str(results_dir), variant, seed)
    record = _pick_record(Path(results_dir), variant, seed)
    path = Path(results_dir) / record.checkpoint / FILE
    return Picked(path, record, str(path))


def _pick_record(results_dir: Path, variant: str | None, seed: int | None):
    from runner.errors import ConfigError
    from runner.results.records import Status, read_records
    from runner.results.summary import summarize

    if not results_dir.is_dir():
        raise ConfigError(f"{results_dir}: no such results dir")
    records = [r for r in read_records(results_dir) if r.planned]  # what the study plans now
    if not records:
        raise ConfigError(
            f"{results_dir}: no trial results here; give STORAGE/NAME of a study run with python -m runner.tune"
        )
    ok = [r for r in records if r.status != Status.ERROR]  # an errored trial's checkpoint is not trusted
    with_ckpt = [r for r in ok if r.checkpoint]
    if variant is None:
        ranked = [v for v in summarize(ok) if v.mean is not None and any(r.variant == v.variant for r in with_ckpt)]
        if not ranked:
            raise ConfigError(f"{results_dir}: no trial has a checkpoint yet")
        variant = max(ranked, key=lambda v: v.mean).variant
    known = list(dict.fromkeys(r.variant for r in records))
    if variant not in known:
        raise ConfigError(f"--variant {variant!r}: not in {results_dir}; choose one of {', '.join(known)}")
    candidates = [r for r in with_ckpt if r.variant == variant and (seed is None or r.seed == seed)]
    if not candidates:
        raise ConfigError(
            f"{results_dir}: variant {variant!r}{'' if seed is None else f' seed {seed}'} has no checkpoint"
        )
    return max(candidates, key=lambda r: r.best_val_accuracy if r.best_val_accuracy is not None else -1.0)


def _pick_remote(uri: str, variant: str | None, seed: int | None) -> Picked:
    """Pick from a copy of the results' small files, then fetch only the picked model.pt (removed at exit)."""
    import atexit

    from runner import storage
    from runner.errors import ConfigError, first_line

    results = storage.Results(uri)
    atexit.register(results.close)
    try:
        results.pull()
        try:
            record = _pick_record(results.local, variant, seed)
        except ConfigError as e:
            raise ConfigError(str(e).replace(str(results.local), uri)) from None
        path = results.local / record.checkpoint / FILE
        storage.download(results.join(record.checkpoint), path.parent, lambda rel: rel != FILE)
    except OSError as e:
        raise ConfigError(f"{uri}: cannot read the results ({first_line(e)}); check the URI and credentials") from None
    return Picked(path, record, results.join(record.checkpoint, FILE))
