"""The audit of a study's images, taken once before any trial starts.

What was skipped and why, what was converted to RGB (or grayscale), which class folders are empty, which classes
miss a split, how unbalanced the classes are, and which images are duplicates: within a split, or
the same image in train and val (leakage: val accuracy becomes optimistic; ``data.leakage`` says
whether to warn, fail or drop them from val). The audit is a plain JSON-able dict, cached with the
decoded images (runner.data.source), written to audit.json and printed by ``format_audit``.

Duplicates are found by a hash of each image's decoded RGB pixels at full resolution (after mode
conversion and EXIF rotation, before resizing), not of the resized array, because:
- it is a property of the files: the same duplicates at every ``data.image_size``;
- it never calls two different images the same, whereas resizing to 8..64 px averages small
  differences away, and with ``data.leakage=drop`` a false match would silently remove a good val image;
- it costs the same: the pixels are in memory anyway and blake2b hashes about 1 GB/s.
Neither hash catches a copy that was re-encoded lossily (another JPEG quality) or resized: that
needs a perceptual hash. Built-in datasets hash the arrays they generate.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

HASH = "blake2b-128 of the decoded RGB pixels at full resolution, before resizing"
IMBALANCE_WARN = 3.0  # warn when the largest class has more than this many times the train images of the smallest
EXAMPLES = 3  # example paths or pairs kept per finding
DETAILS = 78  # characters of the details column


def pixel_digest(rgb: np.ndarray) -> str:
    """A 32-hex-digit content hash of an image's pixels (and shape)."""
    h = hashlib.blake2b(str(rgb.shape).encode(), digest_size=16)
    h.update(np.ascontiguousarray(rgb).data)
    return h.hexdigest()


# --------------------------------------------------------------------------- building the audit


SPLITS = ("train", "val", "test")


def audit_images(
    source: str, classes: list[str], labels: tuple, digests: tuple, names: tuple, files: dict | None = None
) -> dict:
    """The audit of a split: counts, imbalance, duplicates, plus ``files`` (file_facts) for folders.

    ``labels``, ``digests`` and ``names`` are (train, val) or (train, val, test) tuples with one entry per image.
    """
    return {
        "source": source,
        "hash": HASH,
        **counts(classes, *labels),
        "duplicates": duplicates(labels, digests, names),
        **(files or {}),
    }


def counts(classes: list[str], train_y: np.ndarray, val_y: np.ndarray, test_y: np.ndarray | None = None) -> dict:
    """Images per split and class, the train imbalance and the classes a split lacks (test: when there is one)."""
    per = {s: np.bincount(y, minlength=len(classes)) for s, y in zip(SPLITS, (train_y, val_y, test_y)) if y is not None}
    if test_y is not None and len(test_y) == 0:
        del per["test"]
    tr = per["train"]
    big, small = int(tr.argmax()), int(tr.argmin())
    out = {
        "images": {s: int(n.sum()) for s, n in per.items()},
        "per_class": {c: {s: int(n[i]) for s, n in per.items()} for i, c in enumerate(classes)},
        # max/min train images per class; None when a class has no train image at all
        "imbalance": {
            "ratio": round(float(tr[big] / tr[small]), 2) if tr[small] else None,
            "largest": classes[big],
            "smallest": classes[small],
        },
    }
    for s, n in per.items():
        out[f"classes_without_{s}"] = [c for c, k in zip(classes, n) if k == 0]
    return out


def duplicates(labels: tuple, digests: tuple, names: tuple) -> dict:
    """Pixel-identical images: extra copies within each split; images of a later split (val, test) also in an
    earlier one (train; for test also val): leakage; and images under two classes."""
    splits = [s for s, h in zip(SPLITS, digests) if h is not None and (s != "test" or len(h))]
    first: dict[str, dict] = {}
    pairs: dict[str, list] = {}
    for s, hs, ns in zip(splits, digests, names):
        seen: dict[str, int] = {}
        pairs[f"within_{s}"] = [[ns[i], ns[seen[h]]] for i, h in enumerate(hs) if seen.setdefault(h, i) != i]
        first[s] = seen
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if a in first and b in first:
            hb, na, nb = digests[SPLITS.index(b)], names[SPLITS.index(a)], names[SPLITS.index(b)]
            pairs[f"{a}_{b}"] = [[nb[i], na[first[a][h]]] for i, h in enumerate(hb) if h in first[a]]
    label_sets: dict[str, set] = {}
    for hs, ys in zip(digests[: len(splits)], labels[: len(splits)]):
        for h, y in zip(hs, ys):
            label_sets.setdefault(h, set()).add(int(y))
    return {
        **{k: len(v) for k, v in pairs.items()},  # e.g. train_val: val images identical to a train image
        "label_conflicts": sum(len(s) > 1 for s in label_sets.values()),  # identical pixels under different classes
        "examples": {k: v[:EXAMPLES] for k, v in pairs.items()},
    }


def file_facts(
    root: Path,
    unreadable: list[tuple[Path, str]],
    ignored: list[Path],
    hidden: list[Path],
    empty: list[Path],
    modes: list[str],
    channels: int = 3,
) -> dict:
    """What the folder scan and the decoder saw: skipped files with the reason, ignored and hidden files,
    images converted to RGB (or, with ``channels`` 1, to grayscale) by their mode on disk, empty class
    folders. Paths are relative to ``root``."""
    target = "RGB" if channels == 3 else "L"
    return {
        "unreadable": [{"path": relpath(p, root), "reason": why} for p, why in unreadable],
        "ignored": {"count": len(ignored), "examples": [relpath(p, root) for p in ignored[:EXAMPLES]]},
        "hidden": {"count": len(hidden), "examples": [relpath(p, root) for p in hidden[:EXAMPLES]]},
        "converted": dict(sorted(Counter(m for m in modes if m != target).items())),
        "converted_to": target,
        # colour images made gray in a grayscale study, gray ones made colour in an RGB study
        "converted_across": sum((m in GRAY_MODES) == (target == "RGB") for m in modes if m != target),
        "empty_class_folders": [relpath(p, root) for p in empty],
    }


GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}  # PIL modes without colour


def relpath(p: Path, root: Path) -> str:
    """``p`` relative to ``root`` with forward slashes, as the audit names files."""
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- reading the audit


def warnings(audit: dict) -> list[str]:
    """One line per finding that deserves attention, for the console and audit.json."""
    out = _leakage_warnings(audit)
    if audit.get("unreadable"):
        out.append(f"{_n(len(audit['unreadable']), 'image file')} could not be read and skipped")
    if audit.get("empty_class_folders"):
        out.append(f"empty class folders ignored: {_examples(audit['empty_class_folders'])}")
    if audit["classes_without_train"]:
        out.append(f"classes without train images: {_examples(audit['classes_without_train'])}")
    for split in ("val", "test"):
        if audit.get(f"classes_without_{split}"):
            missing = _examples(audit[f"classes_without_{split}"])
            out.append(f"classes without {split} images: {missing} (their {split} accuracy is not measured)")
    imb = audit["imbalance"]
    if imb["ratio"] is not None and imb["ratio"] > IMBALANCE_WARN:
        out.append(f"classes are imbalanced {imb['ratio']:.1f}x: {_most_fewest(audit)}")
    if audit["duplicates"]["label_conflicts"]:
        out.append(
            f"{_n(audit['duplicates']['label_conflicts'], 'image')} found, pixel-identical, under more than one class"
        )
    if audit.get("converted_across"):
        what = (
            "colour images converted to grayscale"
            if audit["converted_to"] == "L"
            else "grayscale images converted to RGB"
        )
        out.append(f"{audit['converted_across']} {what} (data.channels={1 if audit['converted_to'] == 'L' else 3})")
    return out


LEAKS = {
    "train_val": ("val", "a train image"),
    "train_test": ("test", "a train image"),
    "val_test": ("test", "a val image"),
}


def _leakage_warnings(audit: dict) -> list[str]:
    dup, leak = audit["duplicates"], audit.get("leakage", {})
    out = []
    for key, (split, other) in LEAKS.items():
        n = dup.get(key, 0)
        if n and leak.get("policy") == "drop":
            out.append(f"{_n(n, split + ' image')} identical to {other} dropped from {split} (data.leakage=drop)")
        elif n:
            out.append(
                f"{_n(n, split + ' image')} identical to {other}, so {split} accuracy is optimistic; "
                f"--set data.leakage=drop removes them from {split}"
            )
    return out


def leakage_error(audit: dict) -> str:
    """The one-line error for data.leakage=fail: how many, a few pairs, and the fix."""
    dup = audit["duplicates"]
    found = [(k, split, other) for k, (split, other) in LEAKS.items() if dup.get(k)]
    what = "; ".join(
        f"{_n(dup[k], split + ' image')} identical to {other} "
        f"({_examples([f'{a} = {b}' for a, b in dup['examples'][k]], dup[k])})"
        for k, split, other in found
    )
    return (
        f"data.path={audit['source']!r}: {what}; remove them from the folder, or pass --set data.leakage=drop to drop "
        "them from val/test (data.leakage=warn keeps them)"
    )


def format_audit(audit: dict) -> str:
    """The audit as a short fixed-column table (check, count, details), then one line per warning.

    Details given as a list get a line each: at most EXAMPLES files or pairs, then how many more.
    """
    lines = [f"{'audit':<22} {'count':>6}  details"]
    for name, count, details in _count_rows(audit) + _file_rows(audit) + _duplicate_rows(audit):
        texts = details if isinstance(details, list) else [details]
        for i, text in enumerate(texts or [""]):
            head = f"{name:<22} {count!s:>6}" if i == 0 else ""
            lines.append(f"{head:<29}  {_clip(text)}".rstrip())
    lines += [f"warning  {w}" for w in warnings(audit)]
    return "\n".join(lines)


def _count_rows(audit: dict) -> list[tuple]:
    imb, images = audit["imbalance"], audit["images"]
    ratio = "-" if imb["ratio"] is None else f"{imb['ratio']:.1f}x"
    splits = " / ".join(f"{n} {s}" for s, n in images.items())
    return [
        ("images", sum(images.values()), f"{splits} in {len(audit['per_class'])} classes"),
        ("imbalance", ratio, f"train images per class: {_most_fewest(audit)}"),
    ]


def _file_rows(audit: dict) -> list[tuple]:
    """What the scan and the decoder saw (folders only)."""
    if "unreadable" not in audit:
        return []
    ign, hid, conv = audit["ignored"], audit["hidden"], audit["converted"]
    unreadable = [f"{u['path']} ({u['reason']})" for u in audit["unreadable"]]
    return [
        ("unreadable, skipped", len(audit["unreadable"]), _lines(unreadable)),
        ("not images, ignored", ign["count"], _examples(ign["examples"], ign["count"])),
        ("hidden, skipped", hid["count"], _examples(hid["examples"], hid["count"])),
        (
            f"converted to {_TARGET[audit.get('converted_to', 'RGB')]}",
            sum(conv.values()),
            ", ".join(f"{m} {n}" for m, n in conv.items()),
        ),
        ("empty class folders", len(audit["empty_class_folders"]), _examples(audit["empty_class_folders"])),
    ]


_TARGET = {"RGB": "RGB", "L": "grayscale"}


def _duplicate_rows(audit: dict) -> list[tuple]:
    dup = audit["duplicates"]
    policy = audit.get("leakage", {}).get("policy")
    pairs = {k: [f"{a} = {b}" for a, b in v] for k, v in dup["examples"].items()}
    rows = []
    for key, (split, _) in LEAKS.items():
        if key in dup:
            kept = f"dropped from {split}" if policy == "drop" else "kept"
            note = [f"{kept} (data.leakage={policy})"] if dup[key] and policy else []
            a, b = key.split("_")
            rows.append((f"same in {a} and {b}", dup[key], note + _lines(pairs[key], dup[key])))
    for split in ("train", "val", "test"):
        if f"within_{split}" in dup:
            n = dup[f"within_{split}"]
            rows.append((f"duplicates in {split}", n, _examples(pairs[f"within_{split}"], n)))
    conflicts = "pixel-identical images under different classes" if dup["label_conflicts"] else ""
    return rows + [("label conflicts", dup["label_conflicts"], conflicts)]


def _most_fewest(audit: dict) -> str:
    imb, per_class = audit["imbalance"], audit["per_class"]
    return (
        f"most {per_class[imb['largest']]['train']} ({imb['largest']}), "
        f"fewest {per_class[imb['smallest']]['train']} ({imb['smallest']})"
    )


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _examples(items: list[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = list(items[:EXAMPLES])
    return ", ".join(shown) + (", ..." if total > len(shown) else "")


def _lines(items: list[str], total: int | None = None) -> list[str]:
    total = len(items) if total is None else total
    return list(items[:EXAMPLES]) + ([f"... and {total - EXAMPLES} more"] if total > EXAMPLES else [])


def _clip(text: str) -> str:
    return text if len(text) <= DETAILS else text[: DETAILS - 3] + "..."
