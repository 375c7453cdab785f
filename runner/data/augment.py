"""Augmentation built from config: albumentations' random transforms on uint8 batches, then Normalize.

``augment.train`` is a list of ``{"name": <albumentations transform>, **arguments}``, names from
``runner.config.AUGMENTATIONS``. Random transforms run per image on uint8 (albumentations' own
kernels); Normalize runs per batch as a tensor op, with the config's mean/std (the same arithmetic
as ``A.Normalize(max_pixel_value=255)``), for training and evaluation batches alike.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import TYPE_CHECKING

import numpy as np

from runner.config import AUGMENTATIONS, AugmentConfig, ConfigError
from runner.errors import first_line

if TYPE_CHECKING:
    import torch


class Augment:
    """Callable: uint8 batch (B, H, W, 3) -> augmented uint8 batch, deterministic from ``seed``."""

    def __init__(self, cfg: AugmentConfig, image_size: int, seed: int):
        self.pipeline = _compose(cfg, image_size, seed)
        self.image_size = image_size

    def reseed(self, seed: int) -> None:
        if self.pipeline is not None:
            self.pipeline.set_random_seed(seed)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.pipeline is None:
            return batch
        out = np.empty_like(batch)
        for i, img in enumerate(batch):
            aug = self.pipeline(image=img)["image"]
            if aug.ndim == 2:  # some transforms return a grayscale (H, W, 1) image as (H, W)
                aug = aug[..., None]
            if aug.shape != img.shape:
                raise ConfigError(
                    f"augment.train changes the image shape {img.shape} -> {aug.shape}; use size-preserving transforms (RandomResizedCrop needs size=[{self.image_size}, {self.image_size}])"
                )
            out[i] = aug
        return out


def _compose(cfg: AugmentConfig, image_size: int, seed: int):
    if not cfg.train:
        return None
    A = _albumentations()
    transforms = []
    for i, spec in enumerate(cfg.train):
        spec = dict(spec)
        name = str(spec.pop("name", ""))
        if name.lower() not in AUGMENTATIONS:
            raise ConfigError(
                f"augment.train[{i}]: unknown transform {name!r}; choose from {', '.join(sorted(AUGMENTATIONS.values()))}"
            )
        cls = getattr(A, AUGMENTATIONS[name.lower()])
        if cls.__name__ == "RandomResizedCrop":
            spec.setdefault("size", (image_size, image_size))
        call = f"augment.train[{i}] {cls.__name__}({', '.join(f'{k}={v!r}' for k, v in spec.items())})"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                transforms.append(cls(**spec))
        except Exception as e:  # noqa: BLE001 - albumentations raises TypeError/ValueError/pydantic errors
            raise ConfigError(f"{call}: {first_line(e)}") from None
        # albumentations only warns about a misspelt argument and runs with its default: make it an error.
        bad = [str(w.message) for w in caught if "not valid" in str(w.message) or str(w.message).startswith("Argument")]
        if bad:
            raise ConfigError(f"{call}: {bad[0]}")
    return A.Compose(transforms, seed=seed)


def _albumentations():
    """albumentations, imported without its optional torch module (ToTensorV2, which runner does not use) unless
    torch is loaded already: the driver checks the augmentations and never trains, and torch would cost it memory (docs/performance.md).
    Without its check for a newer release: each import asked pypi.org over HTTPS (up to 2 s, in the driver and in
    every trial process) and warned when it could not."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if "albumentations" in sys.modules or "torch" in sys.modules:
        import albumentations

        return albumentations
    sys.modules["albumentations.pytorch"] = None  # type: ignore[assignment]  # its import fails; albumentations goes on
    try:
        import albumentations
    finally:
        del sys.modules["albumentations.pytorch"]  # an explicit import of it later still works
    return albumentations


def check_augment(cfg: AugmentConfig, image_size: int, channels: int = 3) -> None:
    """Build the pipeline and run it on one image: raises ConfigError before any trial starts (also for a
    transform that needs colour on a grayscale study)."""
    try:
        Augment(cfg, image_size, seed=0)(np.zeros((1, image_size, image_size, channels), np.uint8))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - albumentations fails in its own ways on an image it cannot take
        raise ConfigError(f"augment.train on {channels}-channel images: {first_line(e)}") from None


def normalize(batch: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """uint8 (B, H, W, C) tensor -> float32, (x - 255 mean) * 1 / (255 std) as ``A.Normalize`` computes it, on
    the batch's device. On grayscale (C = 1) a 3-value mean/std is averaged to one."""
    mean, inv_std = _norm_tensors(tuple(batch.shape[1:]), cfg.mean, cfg.std, batch.device)
    return batch.float().sub_(mean).mul_(inv_std)  # in place, against whole-image operands: 15x faster on a CPU


@functools.lru_cache(maxsize=16)
def _norm_tensors(shape: tuple, mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(255 mean, 1 / (255 std)) spread over one image of ``shape`` (H, W, C): a per-channel operand (last dim
    3) broadcast over a batch costs ~15x more per image than a whole-image one."""
    import torch  # here, not at the top: the driver checks augmentations without loading torch

    if shape[-1] == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device) * 255
    inv_t = 1 / (torch.tensor(std, dtype=torch.float32, device=device) * 255)
    return mean_t.expand(shape).contiguous(), inv_t.expand(shape).contiguous()
