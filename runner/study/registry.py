"""Registries: every name a config may hold, and the one lookup.

Validation (runner.study.validate) checks names here; the builders (runner.trial.model, runner.trial.engine,
runner.data.augment) look the same names up, and a test builds each one. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.errors import ConfigError

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
