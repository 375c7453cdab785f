"""One entry point for every data source: ``load_images(cfg.data)`` -> decoded uint8 splits.

Decoding happens once per study on the driver and is cached on disk, keyed by the folder's file
list (paths, sizes, modification times) and the image size, so a second study on the same folder
starts at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.config import ConfigError, DataConfig
from runner.data import builtin, folder
from runner.data.split import stratified_split

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    train_x: np.ndarray  # uint8 (N, S, S, 3)
    train_y: np.ndarray  # int64 (N,)
    val_x: np.ndarray
    val_y: np.ndarray
    classes: list[str]
    source: str  # where the images came from, for the console and study.json
    skipped: list[str]  # files that could not be decoded
    ignored: int  # files that are not images
    seconds: float  # time to scan + decode (0 when served from cache)
    cached: bool = False

    def summary(self) -> dict:
        return {
            "source": self.source,
            "classes": self.classes,
            "image_size": int(self.train_x.shape[1]),
            "train_images": int(len(self.train_y)),
            "val_images": int(len(self.val_y)),
            "train_per_class": np.bincount(self.train_y, minlength=len(self.classes)).tolist(),
            "val_per_class": np.bincount(self.val_y, minlength=len(self.classes)).tolist(),
            "skipped_files": self.skipped,
            "ignored_files": self.ignored,
            "load_seconds": round(self.seconds, 2),
            "from_cache": self.cached,
        }


def cache_dir() -> Path:
    return Path(os.environ.get("RUNNER_CACHE_DIR", Path.home() / ".cache" / "runner"))


def load_images(cfg: DataConfig) -> ImageSet:
    t0 = time.perf_counter()
    if cfg.path.startswith("builtin:"):
        tx, ty, vx, vy, classes = builtin.load_builtin(cfg)
        return ImageSet(tx, ty, vx, vy, classes, cfg.path, [], 0, time.perf_counter() - t0)
    root = Path(cfg.path).expanduser().resolve()
    found = folder.scan(root)
    key = _cache_key(found, cfg)
    cached = _read_cache(key)
    if cached is not None:
        return cached
    images, ok = folder.decode_all(found.paths, cfg.image_size)
    skipped = [str(p) for p, good in zip(found.paths, ok) if not good]
    labels = found.labels[ok]
    if found.is_val is None:
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.split_seed)
    else:
        is_val = found.is_val[ok]
        train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ConfigError(f"data.path={cfg.path!r}: {len(train_idx)} train and {len(val_idx)} val images decoded; need both (add images or change data.val_fraction)")
    out = ImageSet(
        images[train_idx], labels[train_idx], images[val_idx], labels[val_idx], found.classes,
        str(root), skipped, len(found.ignored), time.perf_counter() - t0,
    )
    _write_cache(key, out)
    return out


def _cache_key(found: folder.Scan, cfg: DataConfig) -> str:
    h = hashlib.sha256(json.dumps([cfg.image_size, cfg.val_fraction, cfg.split_seed, found.classes, len(found.ignored)]).encode())
    for p, val in zip(found.paths, found.is_val if found.is_val is not None else [None] * len(found.paths)):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{val}\n".encode())
    return h.hexdigest()[:24]


def _read_cache(key: str) -> ImageSet | None:
    path = cache_dir() / f"images-{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return ImageSet(z["train_x"], z["train_y"], z["val_x"], z["val_y"], meta["classes"], meta["source"],
                            meta["skipped"], meta["ignored"], 0.0, cached=True)
    except Exception as e:  # noqa: BLE001 - a broken cache is rebuilt, never fatal
        log.warning("ignoring unreadable cache %s (%s)", path, e)
        return None


def _write_cache(key: str, s: ImageSet) -> None:
    path = cache_dir() / f"images-{key}.npz"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        meta = json.dumps({"classes": s.classes, "source": s.source, "skipped": s.skipped, "ignored": s.ignored})
        np.savez(tmp, train_x=s.train_x, train_y=s.train_y, val_x=s.val_x, val_y=s.val_y, meta=np.array(meta))
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not write the decode cache %s (%s); the next study decodes again", path, e)
