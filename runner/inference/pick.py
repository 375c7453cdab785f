"""A study's best model for evaluate and predict: the variant with the best mean (or the one asked for), its trial
with the best val accuracy, that trial's best kept checkpoint, loaded as a model on the CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner import checkpoints, storage
from runner.config import TrialConfig
from runner.errors import ConfigError, first_line, no_results_dir
from runner.results.records import TrialRecord, read_records
from runner.results.status import Status
from runner.results.summary import summarize
from runner.trial.model import build_model


def load_model(path: Path):
    """(model in eval mode on the CPU, its TrialConfig, class names, the raw checkpoint dict) from a model.pt."""
    try:
        ckpt = checkpoints.read(path)
        cfg = TrialConfig.from_dict(ckpt[checkpoints.CONFIG])
        classes = list(ckpt[checkpoints.CLASSES])
        size = cfg.data.image_size
        model = build_model(cfg.model, size * size * cfg.data.channels, len(classes))
        model.load_state_dict(checkpoints.weights_for_use(ckpt))
    except Exception as e:  # noqa: BLE001 - whatever fails (unpickling, keys, shapes), the file is not one of ours
        raise ConfigError(f"{path}: not a runner checkpoint ({type(e).__name__}: {first_line(e, 200)})") from None
    return model.eval(), cfg, classes, ckpt


@dataclass(frozen=True)
class Picked:
    path: Path  # the model.pt to load (a local copy for a URI)
    record: TrialRecord  # the trial it comes from
    source: str  # where it lives, as the user gave it: a path or a URI


def pick(results_dir: Path | str, variant: str | None = None, seed: int | None = None) -> Picked:
    """The best model.pt of ``variant`` (default: the best mean best-val-accuracy), optionally of ``seed``:
    among those trials, the one with the highest best val accuracy. A URI's is fetched (removed at exit)."""
    if storage.is_uri(str(results_dir)):
        return _pick_remote(str(results_dir), variant, seed)
    record = _pick_record(Path(results_dir), variant, seed)
    path = Path(results_dir) / record.checkpoint / checkpoints.FILE
    return Picked(path, record, str(path))


def _pick_record(results_dir: Path, variant: str | None, seed: int | None):

    if not results_dir.is_dir():
        raise no_results_dir(str(results_dir))
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

    results = storage.Results(uri)
    atexit.register(results.close)
    try:
        results.pull()
        try:
            record = _pick_record(results.local, variant, seed)
        except ConfigError as e:
            raise ConfigError(str(e).replace(str(results.local), uri)) from None
        path = results.local / record.checkpoint / checkpoints.FILE
        storage.download(results.join(record.checkpoint), path.parent, lambda rel: rel != checkpoints.FILE)
    except OSError as e:
        raise ConfigError(f"{uri}: cannot read the results ({first_line(e)}); check the URI and credentials") from None
    return Picked(path, record, results.join(record.checkpoint, checkpoints.FILE))
