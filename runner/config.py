"""Study configuration: typed, frozen dataclasses that hold names and numbers only.

Standard library only, so a config file loads and validates in milliseconds, before Ray or torch
are imported. A study file is plain Python that defines ``study = Study(...)``; every trial of the
study is ``study.base`` with one variant's dotted overrides (and the CLI's ``--set`` ones) applied.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import math
import os
import traceback
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.space import (  # noqa: F401 - a study file imports these from runner.config
    ASHA,
    Choice,
    RandInt,
    Search,
    Uniform,
    check_scheduler,
    check_search,
    choice,
    loguniform,
    qloguniform,
    qrandint,
    quniform,
    randint,
    sample_names,
    uniform,
)

# --------------------------------------------------------------------------- trial config


@dataclass(frozen=True)
class DataConfig:
    path: str = (
        "builtin:lesions"  # image folder (ROOT/train|val|test/CLASS or ROOT/CLASS), or builtin:lesions / builtin:digits
    )
    image_size: int = 64  # pixels; every image is decoded and resized to image_size x image_size once per study
    channels: int = 3  # 3: RGB; 1: grayscale (images decoded to L, one normalization mean/std)
    val_fraction: float = 0.2  # share of each class held out for val when the source has no val split
    test_fraction: float = 0.0  # share of each class held out for test when the source has no test split (0: none)
    split_seed: int = 0  # seeds the held-out splits and the built-in generators; the same for every trial of a study
    split_per_seed: bool = (
        False  # each seed draws its own train/val split (sources without a fixed val split; test stays)
    )
    leakage: str = (
        "warn"  # val/test images pixel-identical to a train image (test: or a val one): warn | fail | drop them
    )


# The course's training augmentation. Each entry: an albumentations transform name and its arguments.
COURSE_AUGMENT = ({"name": "HorizontalFlip", "p": 0.5}, {"name": "RandomBrightnessContrast", "p": 0.2})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    train: tuple[dict, ...] = COURSE_AUGMENT  # random transforms applied to training batches, in order
    mean: tuple[float, ...] = IMAGENET_MEAN  # Normalize, per channel, pixel values scaled to 0..1; grayscale: 1 value
    std: tuple[float, ...] = IMAGENET_STD  # (3 values on a grayscale study are averaged: ImageNet's 0.449 / 0.226)


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = (
        512,
        128,
    )  # widths of the hidden layers: Flatten -> 512 -> ReLU -> 128 -> ReLU -> classes
    dropout: float = 0.0  # dropout probability after each hidden ReLU (0 = none)
    batchnorm: bool = False  # BatchNorm1d after each hidden Linear, before the ReLU
    init: str = "default"  # default | xavier_uniform | kaiming_normal | uniform (biases zeroed unless default)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3  # learning rate, per step
    weight_decay: float = 0.0  # L2 penalty coefficient
    momentum: float = 0.9  # sgd only


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # maximum number of passes over the training set
    batch_size: int = 32  # images per optimizer step, summed over all workers of a trial
    patience: int = 0  # early stopping: epochs without a new best val accuracy before stopping (0 = off)
    amp: bool = False  # bf16 autocast for the forward pass on GPU and on CPUs with native bf16 (else fp32)
    checkpoint_every: int = 0  # epochs between checkpoints; 0 (auto): as often as they cost <= 5 % of the time
    seed: int = 0  # set per trial from the study's seeds


@dataclass(frozen=True)
class ResourcesConfig:
    workers_per_trial: int = 0  # 0 = train inside the trial's own process (fastest on one node); N >= 1 = N DDP workers
    cpus_per_worker: float = 1.0  # CPUs reserved per worker (also torch threads); lowered to fit small machines
    gpus_per_worker: float = 0.0  # GPUs per worker; fractions pack several trials on one GPU


@dataclass(frozen=True)
class TrialConfig:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialConfig:
        return apply_overrides(cls(), flatten(d))


# Registries: every name a config may hold. Validation checks names here; the builders (runner.model,
# runner.engine, runner.data.augment) look the same names up, and a test builds each one.
INITS = ("default", "xavier_uniform", "kaiming_normal", "uniform")
OPTIMIZERS = ("adam", "adamw", "sgd")
LEAKAGE = ("warn", "fail", "drop")
CHANNELS = (1, 3)
# What ranks variants: the best epoch's val accuracy (picked on val: optimistic), the last epoch's, or the best
# epoch's accuracy on a test split that nothing was picked on.
METRICS = ("best_val_accuracy", "test_accuracy", "final_val_accuracy")
# albumentations transforms that keep the image size (so the MLP input stays fixed), by lowercase name
AUGMENTATIONS = {
    n.lower(): n
    for n in (
        "HorizontalFlip",
        "VerticalFlip",
        "RandomRotate90",
        "Transpose",
        "Affine",
        "ShiftScaleRotate",
        "Rotate",
        "SafeRotate",
        "Perspective",
        "ElasticTransform",
        "GridDistortion",
        "OpticalDistortion",
        "RandomResizedCrop",
        "RandomBrightnessContrast",
        "ColorJitter",
        "HueSaturationValue",
        "RGBShift",
        "RandomGamma",
        "CLAHE",
        "ToGray",
        "ChannelShuffle",
        "Equalize",
        "Posterize",
        "Solarize",
        "GaussNoise",
        "ISONoise",
        "GaussianBlur",
        "MotionBlur",
        "MedianBlur",
        "Blur",
        "Defocus",
        "Sharpen",
        "Emboss",
        "Downscale",
        "ImageCompression",
        "CoarseDropout",
        "RandomShadow",
    )
}


def lookup(registry: Mapping[str, Any], name: str, key: str) -> Any:
    """``registry[name]``, or a ConfigError naming the key, the value and the allowed names."""
    if name not in registry:
        raise ConfigError(f"{key}={name!r}: choose one of {', '.join(registry)}")
    return registry[name]


# --------------------------------------------------------------------------- study


@dataclass(frozen=True)
class Study:
    name: str  # results land in STORAGE/name
    base: TrialConfig = field(default_factory=TrialConfig)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"base": {}})  # name -> dotted overrides
    seeds: tuple[int, ...] = (0,)  # every variant runs once per seed
    reference: str | None = None  # the variant others are compared against; default: the first
    metric: str = "best_val_accuracy"  # what ranks variants and decides verdicts: one of METRICS
    max_seeds: int | None = None  # sequential seeds: add seeds to undecided variants up to this many (None: off)
    search: Search | None = None  # sampled variants (s000, s001, ...) beside the fixed ones; runner.space
    scheduler: ASHA | None = None  # stops trials that fall behind (status pruned); None: every trial runs its epochs

    def trials(self, seeds: Sequence[int] | None = None) -> list[tuple[str, int, TrialConfig]]:
        """(variant, seed, config) for every trial (of ``seeds``, default the study's): the base with the
        variant's overrides and the seed."""
        return [(v, seed, self.trial_config(v, seed)) for v in self.variants for seed in (seeds or self.seeds)]

    def trial_config(self, variant: str, seed: int) -> TrialConfig:
        return apply_overrides(self.base, {**self.variants[variant], "train.seed": seed})

    @property
    def reference_variant(self) -> str:
        return self.reference or next(iter(self.variants))


# --------------------------------------------------------------------------- overrides


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"dropout": 0.1}} -> {"model.dropout": 0.1}; values that are lists stay whole."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and key.count(".") == 0 and key in _SECTIONS:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_SECTIONS = {f.name: f.type for f in dataclasses.fields(TrialConfig)}

# Settings that do not change what a trial learns: left out of TensorBoard's hparams and of --resume's check that
# a variant is unchanged (a resumed study may checkpoint more or less often, or run on other resources).
NOT_LEARNED = (
    "train.seed",  # a study axis: TensorBoard averages a variant's seeds instead of listing them apart
    "train.checkpoint_every",  # when a trial saves (resume is exact), not what it learns
    "resources.",  # where a trial runs, not what it learns
)


def is_learned(key: str) -> bool:
    """Whether the dotted config ``key`` changes what a trial learns (NOT_LEARNED)."""
    return not any(key == n or (n.endswith(".") and key.startswith(n)) for n in NOT_LEARNED)


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrialConfig)
    return {name: hints[name] for name in _SECTIONS}


def known_keys() -> dict[str, Any]:
    """Every dotted key a trial config accepts, with its type annotation."""
    keys = {}
    for section, cls in _section_types().items():
        for name, tp in typing.get_type_hints(cls).items():
            keys[f"{section}.{name}"] = tp
    return keys


def apply_overrides(cfg: TrialConfig, overrides: Mapping[str, Any]) -> TrialConfig:
    """Return ``cfg`` with dotted overrides applied; raises ConfigError naming every bad key/value."""
    keys = known_keys()
    problems, by_section = [], {}
    for key, value in overrides.items():
        if key not in keys:
            problems.append(_unknown_key(key, keys))
            continue
        try:
            coerced = coerce(value, keys[key])
        except ValueError as e:
            problems.append(f"{key}={value!r}: {e}")
            continue
        section, name = key.split(".", 1)
        by_section.setdefault(section, {})[name] = coerced
    if problems:
        raise ConfigError("; ".join(problems))
    return dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **v) for s, v in by_section.items()})


def _unknown_key(key: str, keys: Mapping[str, Any]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    close = [k for k in keys if k.endswith("." + leaf)][:1]  # a right name in the wrong section, e.g. "train.lr"
    if not close:
        close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"known sections: {', '.join(_SECTIONS)}"
    return f"unknown key '{key}' ({hint})"


def parse_value(text: str) -> Any:
    """A --set value: a Python/JSON literal when it parses as one, else the plain string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_set(items: list[str]) -> dict[str, Any]:
    """['model.dropout=0.1', ...] -> {'model.dropout': 0.1}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.dropout=0.1")
        out[key.strip()] = parse_value(value)
    return out


def coerce(value: Any, tp: Any) -> Any:
    """Coerce ``value`` to the annotated type ``tp`` or raise ValueError saying what was expected."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if tp is int:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value != int(value)
        ):
            raise ValueError("expected a whole number")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError("expected a finite number")
        return float(value)
    if tp is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError("expected a list, e.g. [512, 128]")
        return tuple(coerce(v, args[0]) for v in value)
    if tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError('expected a dict, e.g. {"name": "VerticalFlip", "p": 0.5}')
        return dict(value)
    raise AssertionError(f"unsupported config type {tp}")


# --------------------------------------------------------------------------- validation


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


def _check_data(d: DataConfig, a: AugmentConfig, p: _Problems) -> None:
    p.need(bool(d.path.strip()), "data.path", d.path, "give an image folder or builtin:lesions / builtin:digits")
    p.need(8 <= d.image_size <= 512, "data.image_size", d.image_size, "must be between 8 and 512 pixels")
    p.need(0 < d.val_fraction < 1, "data.val_fraction", d.val_fraction, "must be a fraction in (0, 1)")
    p.need(0 <= d.test_fraction < 1, "data.test_fraction", d.test_fraction, "must be a fraction in [0, 1)")
    if 0 < d.val_fraction < 1 and 0 <= d.test_fraction < 1:
        total, key = round(d.val_fraction + d.test_fraction, 6), "data.val_fraction + data.test_fraction"
        p.need(total < 1, key, total, "must be < 1: train needs images; lower one of them")
    p.need(d.channels in CHANNELS, "data.channels", d.channels, "must be 1 (grayscale) or 3 (RGB)")
    p.need(d.leakage in LEAKAGE, "data.leakage", d.leakage, f"choose one of {', '.join(LEAKAGE)}")
    stats_ok = len(a.mean) == len(a.std) and len(a.mean) in {3, d.channels}
    need = "need 3 values each (R, G, B)" + (", or 1 each for grayscale" if d.channels == 1 else "")
    p.need(stats_ok, "augment.mean/std", (a.mean, a.std), need)
    p.need(all(s > 0 for s in a.std), "augment.std", a.std, "must be > 0")
    example = '{"name": "VerticalFlip", "p": 0.5}'
    for i, spec in enumerate(a.train):
        name = spec.get("name")
        p.need(isinstance(name, str), f"augment.train[{i}]", spec, f'each entry needs a "name", e.g. {example}')
        if isinstance(name, str) and name.lower() not in AUGMENTATIONS:
            known = ", ".join(sorted(AUGMENTATIONS.values()))
            p.append(f"augment.train[{i}]: unknown transform {name!r}; choose from {known}{p.at}")


def _check_model(m: ModelConfig, o: OptimConfig, p: _Problems) -> None:
    widths_ok = len(m.hidden) >= 1 and all(h >= 1 for h in m.hidden)
    p.need(widths_ok, "model.hidden", m.hidden, "need one or more positive widths, e.g. [512, 128]")
    p.need(0 <= m.dropout < 1, "model.dropout", m.dropout, "must be in [0, 1)")
    p.need(m.init in INITS, "model.init", m.init, f"choose one of {', '.join(INITS)}")
    p.need(o.name in OPTIMIZERS, "optim.name", o.name, f"choose one of {', '.join(OPTIMIZERS)}")
    p.need(o.lr > 0 and math.isfinite(o.lr), "optim.lr", o.lr, "must be > 0")
    p.need(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    p.need(0 <= o.momentum < 1, "optim.momentum", o.momentum, "must be in [0, 1)")


def _check_train(t: TrainConfig, m: ModelConfig, r: ResourcesConfig, p: _Problems) -> None:
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
    problems += check_search(study.search, known_keys(), where) + check_scheduler(study.scheduler, where)
    if (
        isinstance(study.search, Search)
        and isinstance(study.search.samples, int)
        and isinstance(study.variants, Mapping)
    ):
        taken = set(sample_names(max(study.search.samples, 1))) & set(study.variants)
        if taken:
            problems.append(
                f"{where}: variant {sorted(taken)[0]!r}: names s000, s001, ... are the search's samples; rename it"
            )
    if problems:
        raise ConfigError("; ".join(problems))
    base = _typed(study.base, where)
    study = dataclasses.replace(study, base=base)
    for variant, changes in study.variants.items():
        if not isinstance(changes, Mapping):
            problems.append(f"{where}: variant {variant!r} must be a dict of dotted overrides")
            continue
        try:
            cfg = apply_overrides(study.base, changes)
        except ConfigError as e:
            problems.append(f"variant {variant!r}: {e}")
            continue
        problems += validate(cfg, f"variant {variant!r}")
    if problems:
        raise ConfigError("; ".join(dict.fromkeys(problems)))
    return study.trials()


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
    (``ModelConfig(dropout="0.1")``, ``hidden=[64]``), which would otherwise fail later with a traceback."""
    problems = []
    for section, cls in _section_types().items():
        value = getattr(cfg, section)
        if not isinstance(value, cls):
            problems.append(f"{where}: base.{section} must be a {cls.__name__}(...), got {type(value).__name__}")
    if problems:
        raise ConfigError("; ".join(problems))
    values = {
        f"{s}.{f.name}": getattr(getattr(cfg, s), f.name)
        for s in _SECTIONS
        for f in dataclasses.fields(getattr(cfg, s))
    }
    try:
        return apply_overrides(TrialConfig(), values)
    except ConfigError as e:
        raise ConfigError(f"{where}: base: {e}") from None


def with_overrides(study: Study, overrides: Mapping[str, Any]) -> Study:
    """The study with ``overrides`` (from --set) applied to its base and on top of every variant."""
    if not overrides:
        return study
    try:
        base = apply_overrides(study.base, overrides)
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None
    variants = {name: {**changes, **overrides} for name, changes in study.variants.items()}
    return dataclasses.replace(study, base=base, variants=variants)


# --------------------------------------------------------------------------- loading


def load_study(path: str | Path) -> Study:
    """Import a study file and return its ``study``; every failure is a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a study file inside it, e.g. configs/init_study.py")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file (try configs/init_study.py)")
    if path.suffix != ".py":
        raise ConfigError(f"{path}: a study config is a Python file that defines `study = Study(...)`")
    spec = importlib.util.spec_from_file_location(f"runner_study_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{e.filename}:{e.lineno}: syntax error: {e.msg}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - user code; report where it failed
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        line = f":{frames[-1].lineno}" if frames else ""
        raise ConfigError(f"{path}{line}: {type(e).__name__}: {e}") from None
    if not hasattr(module, "study"):
        raise ConfigError(
            f"{path}: defines no `study`; add `study = Study(name=..., base=TrialConfig(...), variants={{...}})`"
        )
    return module.study


def _to_plain(x: Any) -> Any:
    """Tuples to lists, recursively, so configs serialize to JSON and Tune's param_space unchanged."""
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x
