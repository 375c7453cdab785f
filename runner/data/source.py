"""One entry point for every data source: ``load_images(cfg.data)`` -> decoded, audited uint8 splits.

Decoding and the audit (runner.data.audit) happen once per study on the driver. For folders both
are cached on disk, keyed by what the scan found (image paths, sizes, modification times; the other
files it saw) and the image size, so a second study on an unchanged folder decodes and hashes
nothing. ``data.leakage`` is applied after the cache, so warn, fail and drop share one entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.config import ConfigError, DataConfig
from runner.data import audit, builtin, folder
from runner.data.split import stratified_split

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when what the cache holds changes; older entries are then never read

Digests = tuple[np.ndarray, np.ndarray]  # (train, val) audit.pixel_digest per image


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
    audit: dict = field(
        default_factory=dict
    )  # runner.data.audit: skipped, converted, duplicated, unbalanced; format_audit prints it

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
            "audit_warnings": self.audit.get("warnings", []),
        }


def cache_dir() -> Path:
    return Path(os.environ.get("RUNNER_CACHE_DIR", Path.home() / ".cache" / "runner"))


def load_images(cfg: DataConfig) -> ImageSet:
    """The images of ``cfg.path``, decoded, resized and audited, with ``cfg.leakage`` applied."""
    t0 = time.perf_counter()
    if cfg.path.startswith("builtin:"):
        images, digests = _load_builtin(cfg)
    else:
        root = Path(cfg.path).expanduser().resolve()
        found = folder.scan(root)
        key = _cache_key(found, cfg)
        hit = _read_cache(key)
        if hit is not None:
            images, digests = hit
        else:
            images, digests = _load_folder(found, root, cfg)
            _write_cache(key, images, digests)
    if not images.cached:
        images.seconds = time.perf_counter() - t0
    return _apply_leakage(images, digests, cfg)


def _load_builtin(cfg: DataConfig) -> tuple[ImageSet, Digests]:
    tx, ty, vx, vy, classes = builtin.load_builtin(cfg)
    digests = (_digests(tx), _digests(vx))
    names = ([f"train[{i}]" for i in range(len(ty))], [f"val[{i}]" for i in range(len(vy))])
    report = audit.audit_images(cfg.path, classes, (ty, vy), digests, names)
    return ImageSet(tx, ty, vx, vy, classes, cfg.path, [], 0, 0.0, audit=report), digests


def _digests(x: np.ndarray) -> np.ndarray:
    return np.array([audit.pixel_digest(img) for img in x], dtype="U32")


def _load_folder(found: folder.Scan, root: Path, cfg: DataConfig) -> tuple[ImageSet, Digests]:
    images, decoded = folder.decode_all(found.paths, cfg.image_size)
    ok = np.array([d.ok for d in decoded], dtype=bool)
    unreadable = sorted(found.unreadable + [(p, d.error) for p, d in zip(found.paths, decoded) if not d.ok])
    if not ok.any():
        p, why = unreadable[0]
        raise ConfigError(
            f"data.path={cfg.path!r}: none of the {len(found.paths)} image files could be decoded "
            f"(e.g. {audit.relpath(p, root)}: {why}); check that the folder holds real images"
        )
    labels = found.labels[ok]
    digests = np.array([d.digest for d in decoded if d.ok], dtype="U32")
    names = np.array([audit.relpath(p, root) for p, d in zip(found.paths, decoded) if d.ok])
    if found.is_val is None:
        tr, va = stratified_split(labels, cfg.val_fraction, cfg.split_seed)
    else:
        is_val = found.is_val[ok]
        tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(tr) == 0 or len(va) == 0:
        raise ConfigError(
            f"data.path={cfg.path!r}: {len(tr)} train and {len(va)} val images decoded; need both (add images or change data.val_fraction)"
        )
    files = audit.file_facts(
        root, unreadable, found.ignored, found.hidden, found.empty, [d.mode for d in decoded if d.ok]
    )
    report = audit.audit_images(
        str(root),
        found.classes,
        (labels[tr], labels[va]),
        (digests[tr], digests[va]),
        (names[tr].tolist(), names[va].tolist()),
        files,
    )
    out = ImageSet(
        images[tr],
        labels[tr],
        images[va],
        labels[va],
        found.classes,
        str(root),
        [str(p) for p, _ in unreadable],
        len(found.ignored),
        0.0,
        audit=report,
    )
    return out, (digests[tr], digests[va])


def _apply_leakage(s: ImageSet, digests: Digests, cfg: DataConfig) -> ImageSet:
    """data.leakage on val images pixel-identical to a train image: warn (keep), fail, or drop them from val."""
    leaked = np.isin(digests[1], digests[0])
    s.audit["leakage"] = {"policy": cfg.leakage, "dropped": 0}
    if leaked.any() and cfg.leakage == "fail":
        raise ConfigError(audit.leakage_error(s.audit))
    if leaked.any() and cfg.leakage == "drop":
        s.val_x, s.val_y = s.val_x[~leaked], s.val_y[~leaked]
        s.audit.update(audit.counts(s.classes, s.train_y, s.val_y))
        s.audit["leakage"]["dropped"] = int(leaked.sum())
        if len(s.val_y) == 0:
            raise ConfigError(
                f"data.path={cfg.path!r}: every val image is also in train; add distinct val images or use data.leakage=warn"
            )
    s.audit["warnings"] = audit.warnings(s.audit)
    return s


# --------------------------------------------------------------------------- cache


def _cache_key(found: folder.Scan, cfg: DataConfig) -> str:
    """Changes when any image changes (path, size, mtime) and when anything the audit reports about the folder does."""
    other = [
        [str(p) for p in found.ignored],
        [[str(p), why] for p, why in found.unreadable],
        [str(p) for p in found.hidden],
        [str(p) for p in found.empty],
    ]
    h = hashlib.sha256(
        json.dumps([CACHE_VERSION, cfg.image_size, cfg.val_fraction, cfg.split_seed, found.classes, other]).encode()
    )
    for p, val in zip(found.paths, found.is_val if found.is_val is not None else [None] * len(found.paths)):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{val}\n".encode())
    return h.hexdigest()[:24]


def _read_cache(key: str) -> tuple[ImageSet, Digests] | None:
    path = cache_dir() / f"images-{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            s = ImageSet(
                z["train_x"],
                z["train_y"],
                z["val_x"],
                z["val_y"],
                meta["classes"],
                meta["source"],
                meta["skipped"],
                meta["ignored"],
                0.0,
                cached=True,
                audit=meta["audit"],
            )
            return s, (z["train_h"], z["val_h"])
    except Exception as e:  # noqa: BLE001 - a broken cache is rebuilt, never fatal
        log.warning("ignoring unreadable cache %s (%s)", path, e)
        return None


def _write_cache(key: str, s: ImageSet, digests: Digests) -> None:
    path = cache_dir() / f"images-{key}.npz"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        meta = json.dumps(
            {"classes": s.classes, "source": s.source, "skipped": s.skipped, "ignored": s.ignored, "audit": s.audit}
        )
        np.savez(
            tmp,
            train_x=s.train_x,
            train_y=s.train_y,
            val_x=s.val_x,
            val_y=s.val_y,
            train_h=digests[0],
            val_h=digests[1],
            meta=np.array(meta),
        )
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not write the decode cache %s (%s); the next study decodes again", path, e)
