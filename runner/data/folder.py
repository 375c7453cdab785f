"""Image folders: find the images and their classes, decode and resize each one once.

Layouts: ``ROOT/train/CLASS/*`` with ``ROOT/val/CLASS/*`` (also ``valid``/``validation``), or
``ROOT/CLASS/*`` split by ``data.val_fraction`` with ``data.split_seed``. Class names are the
folder names, sorted. Files that are not images are ignored; images that fail to decode are
skipped and counted, never fatal.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.config import ConfigError, DataConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VAL_NAMES = ("val", "valid", "validation")


@dataclass
class Scan:
    """What a folder holds: image paths with class index and split."""

    classes: list[str]
    paths: list[Path]
    labels: np.ndarray
    is_val: np.ndarray | None  # None: the folder has no val split; split it by val_fraction
    ignored: list[Path] = field(default_factory=list)  # files that are not images


def scan(root: Path) -> Scan:
    if not root.exists():
        raise ConfigError(f"data.path={str(root)!r}: no such folder (give an image folder or builtin:lesions)")
    if not root.is_dir():
        raise ConfigError(f"data.path={str(root)!r}: is a file, not a folder of class folders")
    subdirs = {d.name.lower(): d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    val_dir = next((subdirs[n] for n in VAL_NAMES if n in subdirs), None)
    if "train" in subdirs and val_dir is not None:
        train, val = _class_files(subdirs["train"]), _class_files(val_dir)
        missing = sorted(set(val) - set(train))
        if missing:
            raise ConfigError(f"{val_dir}: classes {missing} are in val but not in train; add them to train/ or remove them from val/")
        classes = sorted(train)
        paths = [p for c in classes for p in train[c]] + [p for c in classes for p in val.get(c, [])]
        labels = [i for i, c in enumerate(classes) for _ in train[c]] + [i for i, c in enumerate(classes) for _ in val.get(c, [])]
        n_train = sum(len(train[c]) for c in classes)
        is_val = np.arange(len(paths)) >= n_train
        if not is_val.any():
            raise ConfigError(f"{val_dir}: holds no images; put images in {val_dir}/CLASS/ or remove it to split train/ by data.val_fraction")
    elif "train" in subdirs:
        raise ConfigError(f"{root}: has train/ but no val/ (or valid/); add {root}/val/CLASS/ or put the class folders directly under {root}")
    else:
        found = _class_files(root)
        classes = sorted(found)
        paths = [p for c in classes for p in found[c]]
        labels = [i for i, c in enumerate(classes) for _ in found[c]]
        is_val = None
    if len(classes) < 2:
        raise ConfigError(f"data.path={str(root)!r}: found {len(classes)} class folder(s) with images; need at least 2 (ROOT/CLASS/image.jpg)")
    ignored = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return Scan(classes, paths, np.asarray(labels, dtype=np.int64), is_val, ignored)


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    """{class name: sorted image paths} for the class folders directly under ``split_dir``."""
    out = {}
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if files:
            out[d.name] = files
        else:
            log.warning("%s: class folder holds no images; ignored", d)
    return out


def decode(path: Path, size: int) -> np.ndarray | None:
    """One image as uint8 RGB (size, size, 3), or None when it cannot be decoded."""
    import cv2
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
                a = np.asarray(im, dtype=np.float64)
                im = Image.fromarray((a * (255.0 / max(a.max(), 1.0))).astype(np.uint8))
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))  # transparent pixels over white
                im = Image.alpha_composite(bg, im)
            a = np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
        log.warning("%s: cannot decode (%s); skipped", path, e)
        return None
    if a.shape[0] < 1 or a.shape[1] < 1:
        return None
    shrink = a.shape[0] > size or a.shape[1] > size
    return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def decode_all(paths: list[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, size, size, 3), ok mask) decoded in parallel threads."""
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        decoded = list(pool.map(lambda p: decode(p, size), paths))
    ok = np.array([d is not None for d in decoded], dtype=bool)
    images = np.stack([d for d in decoded if d is not None]) if ok.any() else np.zeros((0, size, size, 3), np.uint8)
    return images, ok
