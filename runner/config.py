"""Study configuration, as a study file imports it: ``from runner.config import Study, TrialConfig, ...``.

A facade: the code lives in runner.study (config: the dataclasses; registry: allowed names; keys: dotted keys
and overrides; validate: checks; load: study files; space: search distributions and ASHA). Standard library
only, so a study file loads and validates in milliseconds, before Ray or torch are imported. Every name here
is one of those modules' own; import from here (study files, other processes) or from the module itself.
"""

from __future__ import annotations

from runner.errors import ConfigError
from runner.study.config import (
    COURSE_AUGMENT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ResourcesConfig,
    Study,
    TrainConfig,
    TrialConfig,
    apply_overrides,
    flatten,
    known_keys,
)
from runner.study.keys import NOT_LEARNED, coerce, is_learned, parse_set, parse_value
from runner.study.load import load_study, with_overrides
from runner.study.registry import AUGMENTATIONS, CHANNELS, INITS, LEAKAGE, METRICS, OPTIMIZERS, lookup
from runner.study.space import (
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
from runner.study.validate import check_study, parse_seeds, validate

__all__ = [
    # the config dataclasses and their defaults (runner.study.config)
    "AugmentConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "ResourcesConfig",
    "Study",
    "TrainConfig",
    "TrialConfig",
    "COURSE_AUGMENT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    # search spaces and the scheduler (runner.study.space)
    "ASHA",
    "Choice",
    "RandInt",
    "Search",
    "Uniform",
    "check_scheduler",
    "check_search",
    "choice",
    "loguniform",
    "qloguniform",
    "qrandint",
    "quniform",
    "randint",
    "sample_names",
    "uniform",
    # allowed names (runner.study.registry)
    "AUGMENTATIONS",
    "CHANNELS",
    "INITS",
    "LEAKAGE",
    "METRICS",
    "OPTIMIZERS",
    "lookup",
    # dotted keys and overrides (runner.study.keys)
    "NOT_LEARNED",
    "apply_overrides",
    "coerce",
    "flatten",
    "is_learned",
    "known_keys",
    "parse_set",
    "parse_value",
    # validation and loading (runner.study.validate, runner.study.load)
    "ConfigError",
    "check_study",
    "load_study",
    "parse_seeds",
    "validate",
    "with_overrides",
]
