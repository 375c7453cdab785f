"""The config dataclasses: a trial's sections (TrialConfig) and the Study, names and numbers only.

Standard library only, so a study file loads in milliseconds, before Ray or torch are imported. Every
field carries its meaning as a docstring written under it; ``python -m runner.study.docs --write``
turns them into docs/configuration.md and the ``--set`` help. Validation lives in runner.study.validate,
dotted overrides in runner.study.keys, the allowed names in runner.study.registry.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.errors import ConfigError
from runner.study.keys import coerce, unknown_key
from runner.study.space import ASHA, Search

# The course's training augmentation. Each entry: an albumentations transform name and its arguments.
COURSE_AUGMENT = ({"name": "HorizontalFlip", "p": 0.5}, {"name": "RandomBrightnessContrast", "p": 0.2})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from, their size and channels, and how they are split."""

    path: str = "builtin:lesions"
    """Image folder (ROOT/train|val|test/CLASS/ or ROOT/CLASS/), or a built-in set: builtin:lesions | builtin:digits."""
    image_size: int = 64
    """Side in pixels, 8 to 512: every image is decoded and resized to image_size x image_size once per study."""
    channels: int = 3
    """3: RGB; 1: grayscale (images decoded to L, normalized with one mean/std)."""
    val_fraction: float = 0.2
    """Share of each class held out for val when the source has no val split: a fraction in (0, 1), not percent."""
    test_fraction: float = 0.0
    """Share of each class held out for test when the source has no test split: a fraction in [0, 1); 0: none."""
    split_seed: int = 0
    """Seeds the held-out splits and the built-in generators; the same for every trial of a study."""
    split_per_seed: bool = False
    """True: each trial seed draws its own train/val split (sources without a fixed val split; test stays)."""
    leakage: str = "warn"
    """Val/test images pixel-identical to a train image (test: or a val one): warn (keep) | fail | drop them."""


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, and the normalization every batch (training and evaluation) gets."""

    train: tuple[dict, ...] = COURSE_AUGMENT
    """Random transforms applied to training images, in order, each ``{"name": TRANSFORM, **arguments}``: a
    size-preserving albumentations transform (runner.config.AUGMENTATIONS) and its arguments; () for none."""
    mean: tuple[float, ...] = IMAGENET_MEAN
    """Normalize mean per channel, pixel values scaled to 0..1 (R, G, B); grayscale: 1, or 3 averaged (ImageNet's: 0.449)."""
    std: tuple[float, ...] = IMAGENET_STD
    """Normalize std per channel (> 0), as many as mean; 3 on a grayscale study are averaged (ImageNet's: 0.226)."""


@dataclass(frozen=True)
class ModelConfig:
    """The MLP: Flatten -> [Linear -> (BatchNorm1d) -> ReLU -> (Dropout)] per hidden width -> Linear(classes)."""

    hidden: tuple[int, ...] = (512, 128)
    """Widths of the hidden layers, each >= 1; the default: Flatten -> 512 -> ReLU -> 128 -> ReLU -> classes."""
    dropout: float = 0.0
    """Dropout probability after each hidden ReLU: a fraction in [0, 1); 0: none."""
    batchnorm: bool = False
    """BatchNorm1d after each hidden Linear, before the ReLU (needs >= 2 images per worker per step)."""
    init: str = "default"
    """Weight init of the Linear layers: default (PyTorch's) | xavier_uniform | kaiming_normal | uniform
    (U(-0.05, 0.05)); biases zeroed unless default."""


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer and its hyperparameters (constant over the epochs: no schedule)."""

    name: str = "adam"
    """Optimizer: adam | adamw | sgd."""
    lr: float = 1e-3
    """Learning rate per optimizer step (> 0)."""
    weight_decay: float = 0.0
    """L2 penalty coefficient (>= 0): adam and sgd add it to the gradient, adamw decays the weights (decoupled)."""
    momentum: float = 0.9
    """Momentum in [0, 1); sgd only."""


@dataclass(frozen=True)
class TrainConfig:
    """Epochs, batch size, early stopping, mixed precision, checkpoints, the seed."""

    epochs: int = 10
    """Maximum number of epochs, passes over the training set (>= 1); patience or a scheduler may stop sooner."""
    batch_size: int = 32
    """Images per optimizer step (>= 1), summed over all workers of a trial."""
    patience: int = 0
    """Early stopping, in epochs: stop after this many epochs without a new best val accuracy; 0: off."""
    amp: bool = False
    """bf16 autocast for the forward pass on GPU and on CPUs with native bf16 (else fp32)."""
    checkpoint_every: int = 0
    """Epochs between checkpoints (the last always gets one); 0 (auto): as often as they cost <= 5 % of the time."""
    seed: int = 0
    """The trial's seed: set per trial from the study's seeds."""


@dataclass(frozen=True)
class ResourcesConfig:
    """What each trial reserves and where it trains; it does not change what a trial learns."""

    workers_per_trial: int = 0
    """0: train inside the trial's own process (fastest on one node); N >= 1: N DDP workers."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker (> 0; also its torch threads); lowered to fit small machines."""
    gpus_per_worker: float = 0.0
    """GPUs per worker (>= 0); fractions such as 0.5 pack several trials on one GPU."""


@dataclass(frozen=True)
class TrialConfig:
    """One trial's whole config: a section per concern, each addressed by dotted keys (``optim.lr``)."""

    data: DataConfig = field(default_factory=DataConfig)
    """Where the images come from, their size and channels, and how they are split."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training augmentation, and the normalization every batch gets."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The MLP: Flatten -> [Linear -> (BatchNorm1d) -> ReLU -> (Dropout)] per hidden width -> Linear(classes)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The optimizer and its hyperparameters."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Epochs, batch size, early stopping, mixed precision, checkpoints, the seed."""
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    """What each trial reserves and where it trains (not what it learns)."""

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialConfig:
        return apply_overrides(cls(), flatten(d))


@dataclass(frozen=True)
class Study:
    """A study file's ``study``: the base config, the variants compared, the seeds, an optional search."""

    name: str
    """The study's name, without spaces or any of ``/\\:*?"<>|``: results land in STORAGE/name."""
    base: TrialConfig = field(default_factory=TrialConfig)
    """The trial config every variant starts from."""
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"base": {}})
    """Variant name -> dotted overrides of base, e.g. ``{"base": {}, "drop": {"model.dropout": 0.2}}``; the first
    is the reference unless reference names another."""
    seeds: tuple[int, ...] = (0,)
    """Every variant runs once per seed (distinct integers); the CLI's --seeds (e.g. 0-4) replaces them."""
    reference: str | None = None
    """The variant the others are compared against; None: the first."""
    metric: str = "best_val_accuracy"
    """What ranks variants and decides verdicts: best_val_accuracy (the best epoch's, picked on val: optimistic) |
    test_accuracy (the best val epoch's model on a test split nothing was picked on) | final_val_accuracy (the last
    epoch's)."""
    max_seeds: int | None = None
    """Sequential seeds: add seeds to undecided variants up to this many in all (>= len(seeds) >= 2); None: off."""
    search: Search | None = None
    """Sampled variants (s000, s001, ...) beside the fixed ones: Search(space=..., samples=...); None: none."""
    scheduler: ASHA | None = None
    """Stops trials that fall behind (status pruned): ASHA(...); None: every trial runs its epochs."""

    def trials(self, seeds: Sequence[int] | None = None) -> list[tuple[str, int, TrialConfig]]:
        """(variant, seed, config) for every trial (of ``seeds``, default the study's): the base with the
        variant's overrides and the seed."""
        return [(v, seed, self.trial_config(v, seed)) for v in self.variants for seed in (seeds or self.seeds)]

    def trial_config(self, variant: str, seed: int) -> TrialConfig:
        return apply_overrides(self.base, {**self.variants[variant], "train.seed": seed})

    @property
    def reference_variant(self) -> str:
        return self.reference or next(iter(self.variants))


# --------------------------------------------------------------------------- dotted keys over the dataclasses

_SECTIONS = {f.name: f.type for f in dataclasses.fields(TrialConfig)}


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


def section_types() -> dict[str, type]:
    """Section name -> its dataclass (``{"data": DataConfig, ...}``), in TrialConfig's order."""
    hints = typing.get_type_hints(TrialConfig)
    return {name: hints[name] for name in _SECTIONS}


def known_keys() -> dict[str, Any]:
    """Every dotted key a trial config accepts, with its type annotation."""
    keys = {}
    for section, cls in section_types().items():
        for name, tp in typing.get_type_hints(cls).items():
            keys[f"{section}.{name}"] = tp
    return keys


def apply_overrides(cfg: TrialConfig, overrides: Mapping[str, Any]) -> TrialConfig:
    """Return ``cfg`` with dotted overrides applied; raises ConfigError naming every bad key/value."""
    keys = known_keys()
    problems, by_section = [], {}
    for key, value in overrides.items():
        if key not in keys:
            problems.append(unknown_key(key, keys))
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


def _to_plain(x: Any) -> Any:
    """Tuples to lists, recursively, so configs serialize to JSON and Tune's param_space unchanged."""
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x
