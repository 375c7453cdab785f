"""Validation: one pass over a study that collects every problem into one ConfigError; ``--seeds`` parsing.

Standard library only. ``validate`` checks one trial config's ranges and names (runner.study.registry);
``check_study`` checks a whole study (its structure, search, scheduler, every variant) before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from runner.errors import ConfigError
from runner.study import config
from runner.study.config import Study, TrialConfig
from runner.study.registry import AUGMENTATIONS, CHANNELS, INITS, LEAKAGE, METRICS, OPTIMIZERS
from runner.study.space import Search, check_scheduler, check_search, sample_names


class _Problems(list):
    """Problems found so far, as 'key=value (where): what is allowed' strings."""

    def __init__(self, where: str):
        super().__init__()
        self.at = f" ({where})" if where else ""

    def need(self, ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            self.append(f"{key}={value!r}{self.at}: {allowed}")


def validate(cfg: TrialConfig, where: str = "") -> list[str]:
    """Every out-of-range value in ``cfg``, as 'key=value: what is allowed' strings."""
    p = _Problems(where)
    _check_data(cfg.data, cfg.augment, p)
    _check_model(cfg.model, cfg.optim, p)
    _check_train(cfg.train, cfg.model, cfg.resources, p)
    return list(p)


def _check_data(d: config.DataConfig, a: config.AugmentConfig, p: _Problems) -> None:
    p.need(bool(d.path.strip()), "data.path", d.path, "give an image folder or builtin:lesions / builtin:digits")
    p.need(8 <= d.image_size <= 512, "data.image_size", d.image_size, "must be between 8 and 512 pixels")
    p.need(0 < d.val_fraction < 1, "data.val_fraction", d.val_fraction, "must be a fraction in (0, 1)")
    p.need(0 <= d.test_fraction < 1, "data.test_fraction", d.test_fraction, "must be a fraction in [0, 1)")
    if 0 < d.val_fraction < 1 and 0 <= d.test_fraction < 1:
        total, key = round(d.val_fraction + d.test_fraction, 6), "data.val_fraction + data.test_fraction"
        p.need(total < 1, key, total, "must be < 1: train needs images; lower one of them")
    p.need(d.channels in CHANNELS, "data.channels", d.channels, "must be 1 (grayscale) or 3 (RGB)")
    p.need(d.leakage in LEAKAGE, "data.leakage", d.leakage, f"choose one of {', '.join(LEAKAGE)}")
    _check_augment(a, d.channels, p)


def _check_augment(a: config.AugmentConfig, channels: int, p: _Problems) -> None:
    stats_ok = len(a.mean) == len(a.std) and len(a.mean) in {3, channels}
    need = "need 3 values each (R, G, B)" + (", or 1 each for grayscale" if channels == 1 else "")
    p.need(stats_ok, "augment.mean/std", (a.mean, a.std), need)
    p.need(all(s > 0 for s in a.std), "augment.std", a.std, "must be > 0")
    example = '{"name": "VerticalFlip", "p": 0.5}'
    for i, spec in enumerate(a.train):
        name = spec.get("name")
        p.need(isinstance(name, str), f"augment.train[{i}]", spec, f'each entry needs a "name", e.g. {example}')
        if isinstance(name, str) and name.lower() not in AUGMENTATIONS:
            known = ", ".join(sorted(AUGMENTATIONS.values()))
            p.append(f"augment.train[{i}]: unknown transform {name!r}; choose from {known}{p.at}")


def _check_model(m: config.ModelConfig, o: config.OptimConfig, p: _Problems) -> None:
    widths_ok = len(m.hidden) >= 1 and all(h >= 1 for h in m.hidden)
    p.need(widths_ok, "model.hidden", m.hidden, "need one or more positive widths, e.g. [512, 128]")
    p.need(0 <= m.dropout < 1, "model.dropout", m.dropout, "must be in [0, 1)")
    p.need(m.init in INITS, "model.init", m.init, f"choose one of {', '.join(INITS)}")
    p.need(o.name in OPTIMIZERS, "optim.name", o.name, f"choose one of {', '.join(OPTIMIZERS)}")
    p.need(o.lr > 0 and math.isfinite(o.lr), "optim.lr", o.lr, "must be > 0")
    p.need(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    p.need(0 <= o.momentum < 1, "optim.momentum", o.momentum, "must be in [0, 1)")


def _check_train(t: config.TrainConfig, m: config.ModelConfig, r: config.ResourcesConfig, p: _Problems) -> None:
    p.need(t.epochs >= 1, "train.epochs", t.epochs, "must be >= 1")
    p.need(t.batch_size >= 1, "train.batch_size", t.batch_size, "must be >= 1")
    workers = max(1, r.workers_per_trial)
    bn = f"BatchNorm needs at least 2 images per worker per step; use >= {2 * workers}"
    p.need(not m.batchnorm or t.batch_size // workers >= 2, "train.batch_size", t.batch_size, bn)
    p.need(t.patience >= 0, "train.patience", t.patience, "must be >= 0 (0 turns early stopping off)")
    p.need(t.checkpoint_every >= 0, "train.checkpoint_every", t.checkpoint_every,
           "must be >= 0 (1 = every epoch, 0 = as often as that costs <= 5 % of the time)")  # fmt: skip
    no_workers = "must be >= 0 (0 trains in the trial process)"
    p.need(r.workers_per_trial >= 0, "resources.workers_per_trial", r.workers_per_trial, no_workers)
    p.need(r.cpus_per_worker > 0, "resources.cpus_per_worker", r.cpus_per_worker, "must be > 0")
    p.need(r.gpus_per_worker >= 0, "resources.gpus_per_worker", r.gpus_per_worker, "must be >= 0")


def check_study(study: Any, where: str = "study") -> list[tuple[str, int, TrialConfig]]:
    """Validate a whole study in one pass; return its trials or raise one ConfigError listing every problem."""
    if not isinstance(study, Study):
        raise ConfigError(f"{where}: `study` must be a runner.config.Study, got {type(study).__name__}")
    problems = _check_structure(study, where)
    if problems:
        raise ConfigError("; ".join(problems))
    study = dataclasses.replace(study, base=_typed(study.base, where))
    for variant, changes in study.variants.items():
        if not isinstance(changes, Mapping):
            problems.append(f"{where}: variant {variant!r} must be a dict of dotted overrides")
            continue
        try:
            cfg = config.apply_overrides(study.base, changes)
        except ConfigError as e:
            problems.append(f"variant {variant!r}: {e}")
            continue
        problems += validate(cfg, f"variant {variant!r}")
    if problems:
        raise ConfigError("; ".join(dict.fromkeys(problems)))
    return study.trials()


def _check_structure(study: Study, where: str) -> list[str]:
    """The study's own fields: name, base, variants, seeds, reference, metric, max_seeds, search, scheduler."""
    problems = []
    if not isinstance(study.name, str) or not study.name or any(c in study.name for c in '/\\:*?"<>| '):
        problems.append(f'{where}: name={study.name!r} must be a non-empty name without spaces or /\\:*?"<>|')
    if not isinstance(study.base, TrialConfig):
        problems.append(f"{where}: base must be a TrialConfig")
    if not isinstance(study.variants, Mapping) or not (study.variants or study.search):
        problems.append(f"{where}: variants must be a non-empty dict of name -> overrides (or give a search)")
    if not study.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in study.seeds):
        problems.append(f"{where}: seeds={study.seeds!r} must be a non-empty list of integers")
    elif len(set(study.seeds)) != len(study.seeds):
        problems.append(f"{where}: seeds={study.seeds!r} has duplicates")
    if study.reference is not None and study.reference not in (study.variants or {}):
        problems.append(f"{where}: reference={study.reference!r} is not one of the variants {list(study.variants)}")
    if study.metric not in METRICS:
        problems.append(f"{where}: metric={study.metric!r}: choose one of {', '.join(METRICS)}")
    problems += _check_max_seeds(study, where)
    problems += check_search(study.search, config.known_keys(), where) + check_scheduler(study.scheduler, where)
    return problems + _check_sample_names(study, where)


def _check_sample_names(study: Study, where: str) -> list[str]:
    """A fixed variant must not take a name of the search's samples (s000, s001, ...)."""
    search, variants = study.search, study.variants
    if not (isinstance(search, Search) and isinstance(search.samples, int) and isinstance(variants, Mapping)):
        return []
    taken = set(sample_names(max(search.samples, 1))) & set(variants)
    if not taken:
        return []
    return [f"{where}: variant {sorted(taken)[0]!r}: names s000, s001, ... are the search's samples; rename it"]


def _check_max_seeds(study: Study, where: str) -> list[str]:
    m, n = study.max_seeds, len(study.seeds or ())
    if m is None:
        return []
    if not isinstance(m, int) or isinstance(m, bool):
        return [f"{where}: max_seeds={m!r} must be a whole number (or None for a fixed number of seeds)"]
    if m < n or n < 2:
        fix = "raise max_seeds" if m < n else "start with at least 2 seeds (a paired test needs two)"
        return [
            f"{where}: max_seeds={m} with seeds={tuple(study.seeds)!r}: sequential seeds need 2 <= len(seeds) <= max_seeds; {fix}"
        ]
    if len(study.variants or {}) < 2:
        return [f"{where}: max_seeds={m} needs a variant to compare with the reference; add one or drop max_seeds"]
    return []


def parse_seeds(text: str) -> tuple[int, ...]:
    """--seeds: '0-4' (0 to 4), '0,1,5' or a mix ('0-2,7'), in the order given."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected seeds like 0-4 or 0,1,2,5") from None
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"--seeds {text!r}: expected distinct seeds, e.g. 0-4 or 0,1,2,5")
    return tuple(out)


def _typed(cfg: TrialConfig, where: str) -> TrialConfig:
    """``cfg`` with every value coerced to its field's type; a study file can put anything in a field
    (``config.ModelConfig(dropout="0.1")``, ``hidden=[64]``), which would otherwise fail later with a traceback."""
    sections = config.section_types()
    problems = [
        f"{where}: base.{s} must be a {cls.__name__}(...), got {type(getattr(cfg, s)).__name__}"
        for s, cls in sections.items()
        if not isinstance(getattr(cfg, s), cls)
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    values = {
        f"{s}.{f.name}": getattr(getattr(cfg, s), f.name) for s in sections for f in dataclasses.fields(getattr(cfg, s))
    }
    try:
        return config.apply_overrides(TrialConfig(), values)
    except ConfigError as e:
        raise ConfigError(f"{where}: base: {e}") from None
