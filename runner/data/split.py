"""Seeded, stratified held-out splits: the same seed gives the same split on every machine.

Each image of a source carries a split code: TRAIN, VAL or TEST. A source with a fixed split (val/
and test/ folders, the built-in lesions generator) sets them; otherwise ``hold_out`` moves a share of
each class from TRAIN: test first (by data.split_seed, the same for every trial), then val (by
data.split_seed, or per trial seed with data.split_per_seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
NO_IMAGES = (np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64))  # (images, labels) of a split a source lacks


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``val_fraction`` of each class, at least one image per class when it has two."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def hold_out(
    labels: np.ndarray, split: np.ndarray, fraction: float, seed: int | Sequence[int], into: int
) -> np.ndarray:
    """``split`` with ``fraction`` of each class's TRAIN images moved to ``into`` (stratified, seeded)."""
    pool = np.flatnonzero(split == TRAIN)
    _, out = stratified_split(labels[pool], fraction, seed)
    split = split.copy()
    split[pool[out]] = into
    return split


def val_seed(split_seed: int, seed: int | None) -> int | list[int]:
    """The val split's seed: the study's split_seed, or with a trial seed (data.split_per_seed) one per seed."""
    return split_seed if seed is None else [split_seed, VAL, seed]


def test_seed(split_seed: int) -> list[int]:
    return [split_seed, TEST]
