"""One entry point for every data source: ``load_images(cfg.data)`` -> decoded, audited uint8 splits.

Two steps. ``load_pool`` decodes a source once per study on the driver: every image with its label,
its split code when the source fixes one (val/ and test/ folders, the lesions generator) and its
pixel digest. For folders the pool is cached on disk, keyed by what the scan found (image paths,
sizes, modification times; the other files it saw), the image size and the channels, so a second
study on an unchanged folder decodes and hashes nothing; the lesions generator's pool too, keyed by
what it is drawn from. ``split`` then holds out the splits the
source lacks (test by data.test_fraction, then val by data.val_fraction, per trial seed with
data.split_per_seed), audits the result (runner.data.audit) and applies ``data.leakage``: cheap, so
warn / fail / drop and every split share one cache entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from runner.config import ConfigError, DataConfig
from runner.data import audit, builtin, folder
from runner.data.split import TEST, TRAIN, VAL, hold_out, test_seed, val_seed

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when what the cache holds changes; older entries are then never read
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


@dataclass
class Pool:
    """A source's decoded images before the held-out splits (what the decode cache holds)."""

    images: np.ndarray  # uint8 (N, S, S, channels)
    labels: np.ndarray  # int64 (N,)
    split: np.ndarray  # int8 (N,): TRAIN, or VAL / TEST where the source fixes them
    digests: np.ndarray  # audit.pixel_digest per image
    names: list[str]  # per image, for the audit's examples
    classes: list[str]
    source: str  # where the images came from, for the console and study.json
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded
    ignored: int = 0  # files that are not images
    files: dict = field(default_factory=dict)  # audit.file_facts of a folder
    fixed: tuple[int, ...] = ()  # the splits the source fixes (VAL, TEST), also when none of their files decoded
    seconds: float = 0.0  # time to scan + decode (0 when served from cache)
    cached: bool = False

    @property
    def fixed_val(self) -> bool:
        return VAL in self.fixed

    @property
    def fixed_test(self) -> bool:
        return TEST in self.fixed


@dataclass
class ImageSet:
    train_x: np.ndarray  # uint8 (N, S, S, channels)
    train_y: np.ndarray  # int64 (N,)
    val_x: np.ndarray
    val_y: np.ndarray
    classes: list[str]
    source: str  # where the images came from, for the console and study.json
    skipped: list[str]  # files that could not be decoded
    ignored: int  # files that are not images
    seconds: float  # time to scan + decode (0 when served from cache)
    cached: bool = False
    audit: dict = field(default_factory=dict)  # runner.data.audit; format_audit prints it
    test_x: np.ndarray | None = None  # the split nothing is picked on; None or empty: no test split
    test_y: np.ndarray | None = None

    @property
    def has_test(self) -> bool:
        return self.test_y is not None and len(self.test_y) > 0

    def summary(self) -> dict:
        per_class = {s: np.bincount(y, minlength=len(self.classes)).tolist() for s, y in self._splits().items()}
        return {
            "source": self.source,
            "classes": self.classes,
            "image_size": int(self.train_x.shape[1]),
            "channels": int(self.train_x.shape[-1]),
            **{f"{s}_images": len(y) for s, y in self._splits().items()},
            **{f"{s}_per_class": n for s, n in per_class.items()},
            "skipped_files": self.skipped,
            "ignored_files": self.ignored,
            "load_seconds": round(self.seconds, 2),
            "from_cache": self.cached,
            "audit_warnings": self.audit.get("warnings", []),
        }

    def _splits(self) -> dict[str, np.ndarray]:
        out = {"train": self.train_y, "val": self.val_y}
        return {**out, "test": self.test_y} if self.has_test else out


def cache_dir() -> Path:
    return Path(os.environ.get("RUNNER_CACHE_DIR", Path.home() / ".cache" / "runner"))


def load_images(cfg: DataConfig, seed: int | None = None) -> ImageSet:
    """The images of ``cfg.path``, decoded, split, audited, with ``cfg.leakage`` applied. ``seed``: the
    trial seed, which draws the val split with data.split_per_seed."""
    return split(load_pool(cfg), cfg, seed)


def load_pool(cfg: DataConfig) -> Pool:
    """Every image of the source, decoded once (from the cache for an unchanged folder or built-in setting)."""
    t0 = time.perf_counter()
    if cfg.path.startswith("builtin:"):
        pool = _cached(_builtin_key(cfg), lambda: _builtin_pool(cfg))
    else:
        root = Path(cfg.path).expanduser().resolve()
        found = folder.scan(root)
        pool = _cached(_cache_key(found, cfg), lambda: _folder_pool(found, root, cfg))
    if not pool.cached:
        pool.seconds = time.perf_counter() - t0
    return pool


def _cached(key: str | None, build) -> Pool:
    """The pool cached under ``key``, else ``build()``'s, cached for the next study (None: not cached)."""
    pool = _read_cache(key) if key else None
    if pool is None:
        pool = build()
        if key:
            _write_cache(key, pool)
    return pool


def splits_per_seed(pool: Pool, cfg: DataConfig) -> bool:
    """Whether each trial seed gets its own val split: asked for, and the source has no fixed val."""
    return cfg.split_per_seed and not pool.fixed_val


def split(pool: Pool, cfg: DataConfig, seed: int | None = None) -> ImageSet:
    """The pool's train / val (/ test) arrays: the source's own splits, the missing ones held out."""
    codes = pool.split
    if pool.fixed_test and cfg.test_fraction > 0:
        log.warning("%s has its own test split: data.test_fraction=%g is not used", pool.source, cfg.test_fraction)
    if not pool.fixed_test and cfg.test_fraction > 0:
        codes = hold_out(pool.labels, codes, cfg.test_fraction, test_seed(cfg.split_seed), TEST)
    if not pool.fixed_val:
        per_seed = seed if splits_per_seed(pool, cfg) else None
        codes = hold_out(pool.labels, codes, cfg.val_fraction, val_seed(cfg.split_seed, per_seed), VAL)
    parts = {s: np.flatnonzero(codes == code) for code, s in SPLIT_NAMES.items()}
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise ConfigError(
            f"data.path={cfg.path!r}: {len(parts['train'])} train and {len(parts['val'])} val images decoded; "
            "need both (add images or change data.val_fraction)"
        )
    x, y = pool.images, pool.labels
    report = audit.audit_images(
        pool.source,
        pool.classes,
        tuple(y[i] for i in parts.values()),
        tuple(pool.digests[i] for i in parts.values()),
        tuple([pool.names[j] for j in i] for i in parts.values()),
        pool.files,
    )
    tr, va, te = parts["train"], parts["val"], parts["test"]
    images = ImageSet(x[tr], y[tr], x[va], y[va], pool.classes, pool.source, pool.skipped, pool.ignored, pool.seconds,
                      pool.cached, report, x[te], y[te])  # fmt: skip
    return _apply_leakage(images, {s: pool.digests[i] for s, i in parts.items()}, cfg)


def _builtin_pool(cfg: DataConfig) -> Pool:
    images, labels, codes, classes = builtin.load_builtin(cfg)
    digests = np.array([audit.pixel_digest(img) for img in images], dtype="U32")
    names = [f"image[{i}]" for i in range(len(labels))]
    return Pool(images, labels, codes, digests, names, classes, cfg.path, fixed=_fixed(codes))


def _folder_pool(found: folder.Scan, root: Path, cfg: DataConfig) -> Pool:
    images, decoded = folder.decode_all(found.paths, cfg.image_size, cfg.channels)
    ok = np.array([d.ok for d in decoded], dtype=bool)
    unreadable = sorted(found.unreadable + [(p, d.error) for p, d in zip(found.paths, decoded) if not d.ok])
    if not ok.any():
        p, why = unreadable[0]
        raise ConfigError(
            f"data.path={cfg.path!r}: none of the {len(found.paths)} image files could be decoded "
            f"(e.g. {audit.relpath(p, root)}: {why}); check that the folder holds real images"
        )
    modes = [d.mode for d in decoded if d.ok]
    files = audit.file_facts(root, unreadable, found.ignored, found.hidden, found.empty, modes, cfg.channels)
    return Pool(
        images,
        found.labels[ok],
        found.split[ok],
        np.array([d.digest for d in decoded if d.ok], dtype="U32"),
        [audit.relpath(p, root) for p, d in zip(found.paths, decoded) if d.ok],
        found.classes,
        str(root),
        [str(p) for p, _ in unreadable],
        len(found.ignored),
        files,
        _fixed(found.split),
    )


def _fixed(codes: np.ndarray) -> tuple[int, ...]:
    return tuple(c for c in (VAL, TEST) if (codes == c).any())


def _apply_leakage(s: ImageSet, digests: dict[str, np.ndarray], cfg: DataConfig) -> ImageSet:
    """data.leakage on val images pixel-identical to a train image and test images identical to a train or val
    image: warn (keep), fail, or drop them from val / test."""
    leaked_val = np.isin(digests["val"], digests["train"])
    leaked_test = np.isin(digests["test"], np.concatenate([digests["train"], digests["val"]]))
    s.audit["leakage"] = {"policy": cfg.leakage, "dropped": 0}
    if (leaked_val.any() or leaked_test.any()) and cfg.leakage == "fail":
        raise ConfigError(audit.leakage_error(s.audit))
    if (leaked_val.any() or leaked_test.any()) and cfg.leakage == "drop":
        s = replace(s, val_x=s.val_x[~leaked_val], val_y=s.val_y[~leaked_val], test_x=s.test_x[~leaked_test],
                    test_y=s.test_y[~leaked_test])  # fmt: skip
        s.audit.update(audit.counts(s.classes, s.train_y, s.val_y, s.test_y))
        s.audit["leakage"]["dropped"] = int(leaked_val.sum())
        if len(leaked_test):
            s.audit["leakage"]["dropped_test"] = int(leaked_test.sum())
        if len(s.val_y) == 0:
            raise ConfigError(
                f"data.path={cfg.path!r}: every val image is also in train; add distinct val images or use data.leakage=warn"
            )
    s.audit["warnings"] = audit.warnings(s.audit)
    return s


# --------------------------------------------------------------------------- cache


def _cache_key(found: folder.Scan, cfg: DataConfig) -> str:
    """Changes when any image changes (path, size, mtime, split folder), with what the audit reports about the
    folder, and with the decode settings (image size, channels)."""
    other = [
        [str(p) for p in found.ignored],
        [[str(p), why] for p, why in found.unreadable],
        [str(p) for p in found.hidden],
        [str(p) for p in found.empty],
    ]
    head = [CACHE_VERSION, cfg.image_size, cfg.channels, found.classes, other]
    h = hashlib.sha256(json.dumps(head).encode())
    for p, code in zip(found.paths, found.split):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{code}\n".encode())
    return h.hexdigest()[:24]


CACHED_BUILTINS = ("lesions",)  # drawn with numpy alone (1.5-2 s); digits come from a file in scikit-learn


def _builtin_key(cfg: DataConfig) -> str | None:
    """For a built-in drawn with numpy: changes with the settings it is drawn from (image size, channels, split seed),
    with its generator's code and with numpy's version (its random streams). None for one that is not cached."""
    name = builtin.dataset_name(cfg)
    if name not in CACHED_BUILTINS:
        return None
    code = hashlib.sha256(Path(builtin.__file__).read_bytes()).hexdigest()
    head = [CACHE_VERSION, name, cfg.image_size, cfg.channels, cfg.split_seed, code, np.__version__]
    return "builtin-" + hashlib.sha256(json.dumps(head).encode()).hexdigest()[:24]


def _read_cache(key: str) -> Pool | None:
    path = cache_dir() / f"images-{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return Pool(z["images"], z["labels"], z["split"], z["digests"], meta["names"], meta["classes"],
                        meta["source"], meta["skipped"], meta["ignored"], meta["files"], tuple(meta["fixed"]), cached=True)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a broken cache is rebuilt, never fatal
        log.warning("ignoring unreadable cache %s (%s)", path, e)
        return None


def _write_cache(key: str, pool: Pool) -> None:
    path = cache_dir() / f"images-{key}.npz"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        meta = {k: getattr(pool, k) for k in ("names", "classes", "source", "skipped", "ignored", "files", "fixed")}
        np.savez(tmp, images=pool.images, labels=pool.labels, split=pool.split, digests=pool.digests,
                 meta=np.array(json.dumps(meta)))  # fmt: skip
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not write the decode cache %s (%s); the next study decodes again", path, e)


class StudyData:
    """A study's images: each data config decoded once, its splits kept by key ("d" + a digest) and shared by
    the trials that use them (one split per seed with data.split_per_seed); trials added later (grown or
    sequential seeds) get theirs on first use."""

    def __init__(self):
        self.pools: dict[DataConfig, Pool] = {}
        self.keys: dict[tuple[DataConfig, int | None], str] = {}
        self.images: dict[str, ImageSet] = {}

    def key(self, cfg: DataConfig, seed: int) -> str:
        if cfg not in self.pools:
            self.pools[cfg] = load_pool(cfg)
        split_seed = seed if splits_per_seed(self.pools[cfg], cfg) else None
        if (cfg, split_seed) not in self.keys:
            # named by content, so a resumed or grown study finds the same key for the same data
            digest = hashlib.sha256(json.dumps([repr(cfg), split_seed]).encode()).hexdigest()[:10]
            key = self.keys[(cfg, split_seed)] = f"d{digest}"
            self.images[key] = split(self.pools[cfg], cfg, split_seed)
        return self.keys[(cfg, split_seed)]

    def for_trials(self, trials: list) -> list[tuple[str, list[str]]]:
        """(data key, class names) of each (variant, seed, TrialConfig)."""
        keys = [self.key(cfg.data, seed) for _, seed, cfg in trials]
        return [(k, self.images[k].classes) for k in keys]
