"""Image folders: find the images and their classes, decode and resize each one once.

Layouts: ``ROOT/train/CLASS/*`` with ``ROOT/val/CLASS/*`` (also ``valid``/``validation``) and
optionally ``ROOT/test/CLASS/*``; ``ROOT/train`` (+ ``ROOT/test``) without val, whose val is held out
of train; or ``ROOT/CLASS/*``, split by ``data.test_fraction`` and ``data.val_fraction``. Class names are the
folder names, sorted. Files that are not images are ignored; hidden files and folders (``.DS_Store``,
``._x.jpg``, ``.ipynb_checkpoints/``) are skipped; images that fail to decode are skipped with the
reason, never fatal. The scan records all of it for the audit (runner.data.audit).
"""

from __future__ import annotations

import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.config import ConfigError
from runner.data.audit import pixel_digest
from runner.data.split import TEST, TRAIN, VAL
from runner.errors import first_line

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VAL_NAMES = ("val", "valid", "validation")
TEST_NAMES = ("test", "testing")


@dataclass
class Scan:
    """What a folder holds: image paths with class index and split, and what was left out and why."""

    classes: list[str]
    paths: list[Path]
    labels: np.ndarray
    split: np.ndarray  # per path: runner.data.split TRAIN, VAL or TEST (TRAIN: held-out splits come from these)
    ignored: list[Path] = field(default_factory=list)  # files that are not images, or images outside class folders
    unreadable: list[tuple[Path, str]] = field(
        default_factory=list
    )  # named like images, not readable files: (path, why)
    hidden: list[Path] = field(default_factory=list)  # hidden files and folders, skipped
    empty: list[Path] = field(default_factory=list)  # class folders that hold no images

    @property
    def is_val(self) -> np.ndarray | None:
        """Per path, in val/ or not; None when the folder has no val split (it is held out of train)."""
        return self.split == VAL if (self.split == VAL).any() else None


@dataclass
class _Found:
    """What a walk saw besides the images; one per scan, filled as it goes."""

    ignored: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)


def scan(root: Path) -> Scan:
    if not root.exists():
        raise ConfigError(f"data.path={str(root)!r}: no such folder (give an image folder or builtin:lesions)")
    if not root.is_dir():
        raise ConfigError(f"data.path={str(root)!r}: is a file, not a folder of class folders")
    seen = _Found()
    _loose_files(root, seen)
    subdirs = {d.name.lower(): d for d in _subdirs(root)}
    val_dir = next((subdirs[n] for n in VAL_NAMES if n in subdirs), None)
    test_dir = next((subdirs[n] for n in TEST_NAMES if n in subdirs), None)
    if "train" in subdirs:
        classes, paths, labels, split = _splits(root, subdirs["train"], val_dir, test_dir, seen)
    else:
        classes, paths, labels = _one_split(root, seen)
        split = np.full(len(paths), TRAIN, np.int8)
    if len(classes) < 2:
        what = f"found {len(classes)} class folder(s) with images"
        if seen.ignored:
            what += (
                f" ({len(seen.ignored)} other files ignored, e.g. {seen.ignored[0].relative_to(root)}; "
                f"images end in {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        raise ConfigError(f"data.path={str(root)!r}: {what}; need at least 2 (ROOT/CLASS/image.jpg)")
    labels = np.asarray(labels, dtype=np.int64)
    return Scan(classes, paths, labels, split, seen.ignored, seen.unreadable, seen.hidden, seen.empty)


def _splits(root: Path, train_dir: Path, val_dir: Path | None, test_dir: Path | None, seen: _Found) -> tuple:
    """ROOT/train/CLASS with val/ and test/ when present: (classes, paths, labels, split codes), train first."""
    dirs = {TRAIN: train_dir, VAL: val_dir, TEST: test_dir}
    found = {}
    for code, d in dirs.items():
        if d is not None:
            _loose_files(d, seen)
            found[code] = _class_files(d, seen)
    train = found[TRAIN]
    for code in (VAL, TEST):
        missing = sorted(set(found.get(code, {})) - set(train))
        if missing:
            name = "val" if code == VAL else "test"
            raise ConfigError(f"{dirs[code]}: classes {missing} are in {name} but not in train; add them to train/ "
                              f"or remove them from {name}/")  # fmt: skip
    classes = sorted(train)
    paths, labels, split = [], [], []
    for code, files in found.items():
        for i, c in enumerate(classes):
            paths += files.get(c, [])
            labels += [i] * len(files.get(c, []))
            split += [code] * len(files.get(c, []))
    if val_dir is None:
        others = sorted(d.name + "/" for d in _subdirs(root) if d not in (train_dir, test_dir))
        unused = f"; {', '.join(others)} not used" if others else ""
        log.warning(
            "%s has train/ but no val/: holding out data.val_fraction of train/ per class as val%s", root, unused
        )
    for code in (VAL, TEST):
        if dirs[code] is not None and classes and code not in split:
            d = dirs[code]
            raise ConfigError(f"{d}: holds no images; put images in {d}/CLASS/ or remove it to hold out part of train/")
    return classes, paths, labels, np.asarray(split, dtype=np.int8)


def _one_split(root: Path, seen: _Found) -> tuple[list[str], list[Path], list[int]]:
    """ROOT/CLASS: (classes, paths, labels); the held-out splits come later, by fraction."""
    found = _class_files(root, seen)
    classes = sorted(found)
    paths = [p for c in classes for p in found[c]]
    labels = [i for i, c in enumerate(classes) for _ in found[c]]
    return classes, paths, labels


def _subdirs(d: Path) -> list[Path]:
    """The non-hidden folders directly under ``d``, sorted (symlinked folders included)."""
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _loose_files(d: Path, seen: _Found) -> None:
    """Files directly under ``d`` (the root or a split folder): not in a class folder, so not used."""
    for p in sorted(d.iterdir()):
        if p.name.startswith("."):
            seen.hidden.append(p)
        elif not p.is_dir():
            seen.ignored.append(p)


def _class_files(split_dir: Path, seen: _Found) -> dict[str, list[Path]]:
    """{class name: sorted image paths} for the class folders directly under ``split_dir``."""
    out = {}
    for d in _subdirs(split_dir):
        files = _walk(d, seen)
        if files:
            out[d.name] = files
        else:
            seen.empty.append(d)
            log.debug("%s: class folder holds no images; ignored", d)
    return out


def _walk(top: Path, seen: _Found) -> list[Path]:
    """Image files under ``top`` (any depth), sorted; everything else goes into ``seen``."""
    images = []
    for here, dirnames, filenames in os.walk(top):  # symlinked folders below top are not entered, so no loops
        here = Path(here)
        seen.hidden += [here / n for n in sorted(dirnames + filenames) if n.startswith(".")]
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        seen.unreadable += [(here / n, "a folder named like an image") for n in dirnames if _image_name(n)]
        for n in sorted(filenames):
            p = here / n
            if n.startswith("."):
                continue
            if not _image_name(n):
                seen.ignored.append(p)
            elif p.is_file():
                images.append(p)
            else:
                seen.unreadable.append((p, _not_a_file(p)))
    return sorted(images)


def _image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _not_a_file(p: Path) -> str:
    """Why an entry named like an image is not a readable file."""
    try:
        p.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        if p.is_symlink():
            return f"broken symlink to {os.readlink(p)}"
        return e.strerror or type(e).__name__
    return "not a regular file"


# --------------------------------------------------------------------------- decode


@dataclass
class Decoded:
    """One image file, decoded: the resized pixels and what the audit needs to know about it."""

    image: np.ndarray | None  # uint8 (size, size, channels); None when the file cannot be decoded
    mode: str = ""  # PIL mode on disk (RGB, RGBA, LA, P, L, I;16, CMYK, ...), converted to RGB or L
    digest: str = ""  # pixel_digest of the decoded RGB pixels at full resolution, before resizing
    error: str = ""  # why the file cannot be decoded ("" when it was)

    @property
    def ok(self) -> bool:
        return not self.error


def decode_file(path: Path, size: int, channels: int = 3) -> Decoded:
    """One image as uint8 (size, size, channels), RGB or grayscale (L), with its mode on disk and pixel digest,
    or the reason it failed."""
    import cv2
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            mode = im.mode
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit or float grayscale: scale to 8 bits
                a = np.clip(np.asarray(im, dtype=np.float64), 0, None)
                # 16-bit range -> 8 bits by the fixed 65535/255, so brightness stays comparable across images;
                # floats (0..1) and wider integers by their own range.
                peak = 1.0 if im.mode == "F" and a.max() <= 1.0 else (65535.0 if a.max() <= 65535 else a.max())
                im = Image.fromarray(np.round(a * (255.0 / peak)).astype(np.uint8))
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))  # transparent pixels over white
                im = Image.alpha_composite(bg, im)
            a = np.asarray(im.convert("RGB" if channels == 3 else "L"))
    except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
        why = _decode_error(path, e)
        log.debug("%s: cannot decode (%s); skipped", path, why)
        return Decoded(None, error=why)
    if a.shape[0] < 1 or a.shape[1] < 1:
        return Decoded(None, mode, error="no pixels (0 x 0 image)")
    shrink = a.shape[0] > size or a.shape[1] > size
    out = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return Decoded(out.reshape(size, size, channels), mode, pixel_digest(a))


_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"BM",
    b"RIFF",
    b"II*\x00",
    b"MM\x00*",
)  # PNG, JPEG, GIF, BMP, WebP, TIFF


def _decode_error(path: Path, e: Exception) -> str:
    """A short reason a file failed to decode: empty, not an image, truncated or corrupt."""
    from PIL import UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as oe:
        return f"cannot open ({oe.strerror or type(oe).__name__})"
    if not head:
        return "empty file, 0 bytes"
    msg = first_line(e)
    if isinstance(e, UnidentifiedImageError):
        if head.startswith(_MAGIC):
            return "corrupt (starts like an image, header unreadable)"
        text = all(32 <= b < 127 or b in b"\t\r\n" for b in head)
        return "a text file, not an image" if text else "not an image (unknown format)"
    if "truncated" in msg.lower():
        return "truncated"
    return f"corrupt ({type(e).__name__}: {msg[:80]})"


def decode_all(paths: list[Path], size: int, channels: int = 3) -> tuple[np.ndarray, list[Decoded]]:
    """(images uint8 (N_ok, size, size, channels) of the files that decoded, one Decoded per path without its image)."""
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        decoded = list(pool.map(lambda p: decode_file(p, size, channels), paths))
    good = [d.image for d in decoded if d.image is not None]
    images = np.stack(good) if good else np.zeros((0, size, size, channels), np.uint8)
    for d in decoded:
        d.image = None  # the pixels live in ``images`` now
    return images, decoded


def decode_checked(paths: list[Path], size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images of the files that decoded, ok mask per path, why each file failed ("" when it did not))."""
    images, decoded = decode_all(paths, size, channels)
    return images, np.array([d.ok for d in decoded], dtype=bool), [d.error for d in decoded]
