"""The audit of a study's images, taken once before any trial starts.

What was skipped and why, what was converted to RGB, which class folders are empty, which classes
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


def audit_images(
    source: str,
    classes: list[str],
    labels: tuple[np.ndarray, np.ndarray],
    digests: tuple[np.ndarray, np.ndarray],
    names: tuple[list[str], list[str]],
    files: dict | None = None,
) -> dict:
    """The audit of a train/val split: counts, imbalance, duplicates, plus ``files`` (file_facts) for folders.

    ``labels``, ``digests`` and ``names`` are (train, val) pairs with one entry per image.
    """
    return {
        "source": source,
        "hash": HASH,
        **counts(classes, *labels),
        "duplicates": duplicates(labels, digests, names),
        **(files or {}),
    }


def counts(classes: list[str], train_y: np.ndarray, val_y: np.ndarray) -> dict:
    """Images per split and class, the train imbalance and the classes a split lacks."""
    tr = np.bincount(train_y, minlength=len(classes))
    va = np.bincount(val_y, minlength=len(classes))
    big, small = int(tr.argmax()), int(tr.argmin())
    return {
        "images": {"train": int(tr.sum()), "val": int(va.sum())},
        "per_class": {c: {"train": int(t), "val": int(v)} for c, t, v in zip(classes, tr, va)},
        # max/min train images per class; None when a class has no train image at all
        "imbalance": {
            "ratio": round(float(tr[big] / tr[small]), 2) if tr[small] else None,
            "largest": classes[big],
            "smallest": classes[small],
        },
        "classes_without_train": [c for c, t in zip(classes, tr) if t == 0],
        "classes_without_val": [c for c, v in zip(classes, va) if v == 0],
    }


def duplicates(
    labels: tuple[np.ndarray, np.ndarray], digests: tuple[np.ndarray, np.ndarray], names: tuple[list[str], list[str]]
) -> dict:
    """Pixel-identical images: val images also in train, extra copies within each split, and images under two classes."""
    (train_y, val_y), (train_h, val_h), (train_n, val_n) = labels, digests, names
    first_train: dict[str, int] = {}
    within_train = []
    for i, h in enumerate(train_h):
        j = first_train.setdefault(h, i)
        if j != i:
            within_train.append([train_n[i], train_n[j]])
    first_val: dict[str, int] = {}
    within_val, train_val = [], []
    for i, h in enumerate(val_h):
        j = first_val.setdefault(h, i)
        if j != i:
            within_val.append([val_n[i], val_n[j]])
        if h in first_train:
            train_val.append([val_n[i], train_n[first_train[h]]])
    label_sets: dict[str, set] = {}
    for h, y in zip([*train_h, *val_h], [*train_y, *val_y]):
        label_sets.setdefault(h, set()).add(int(y))
    return {
        "train_val": len(train_val),  # val images identical to a train image
        "within_train": len(within_train),  # train images identical to an earlier train image
        "within_val": len(within_val),
        "label_conflicts": sum(len(s) > 1 for s in label_sets.values()),  # identical pixels under different classes
        "examples": {
            "train_val": train_val[:EXAMPLES],
            "within_train": within_train[:EXAMPLES],
            "within_val": within_val[:EXAMPLES],
        },
    }


def file_facts(
    root: Path,
    unreadable: list[tuple[Path, str]],
    ignored: list[Path],
    hidden: list[Path],
    empty: list[Path],
    modes: list[str],
) -> dict:
    """What the folder scan and the decoder saw: skipped files with the reason, ignored and hidden files,
    images converted to RGB by their mode on disk, empty class folders. Paths are relative to ``root``."""
    return {
        "unreadable": [{"path": relpath(p, root), "reason": why} for p, why in unreadable],
        "ignored": {"count": len(ignored), "examples": [relpath(p, root) for p in ignored[:EXAMPLES]]},
        "hidden": {"count": len(hidden), "examples": [relpath(p, root) for p in hidden[:EXAMPLES]]},
        "converted": dict(sorted(Counter(m for m in modes if m != "RGB").items())),
        "empty_class_folders": [relpath(p, root) for p in empty],
    }


def relpath(p: Path, root: Path) -> str:
    """``p`` relative to ``root`` with forward slashes, as the audit names files."""
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- reading the audit


def warnings(audit: dict) -> list[str]:
    """One line per finding that deserves attention, for the console and audit.json."""
    out = []
    dup, leak = audit["duplicates"], audit.get("leakage", {})
    if dup["train_val"] and leak.get("policy") == "drop":
        out.append(
            f"{_n(leak['dropped'], 'val image')} identical to a train image dropped from val (data.leakage=drop)"
        )
    elif dup["train_val"]:
        out.append(
            f"{_n(dup['train_val'], 'val image')} identical to a train image, so val accuracy is optimistic; "
            "--set data.leakage=drop removes them from val"
        )
    if audit.get("unreadable"):
        out.append(f"{_n(len(audit['unreadable']), 'image file')} could not be read and skipped")
    if audit.get("empty_class_folders"):
        out.append(f"empty class folders ignored: {_examples(audit['empty_class_folders'])}")
    if audit["classes_without_train"]:
        out.append(f"classes without train images: {_examples(audit['classes_without_train'])}")
    if audit["classes_without_val"]:
        out.append(
            f"classes without val images: {_examples(audit['classes_without_val'])} (their val accuracy is not measured)"
        )
    imb = audit["imbalance"]
    if imb["ratio"] is not None and imb["ratio"] > IMBALANCE_WARN:
        out.append(f"classes are imbalanced {imb['ratio']:.1f}x: {_most_fewest(audit)}")
    if dup["label_conflicts"]:
        out.append(f"{_n(dup['label_conflicts'], 'image')} found, pixel-identical, under more than one class")
    return out


def leakage_error(audit: dict) -> str:
    """The one-line error for data.leakage=fail: how many, a few pairs, and the fix."""
    dup = audit["duplicates"]
    pairs = _examples([f"{v} = {t}" for v, t in dup["examples"]["train_val"]], dup["train_val"])
    return (
        f"data.path={audit['source']!r}: {_n(dup['train_val'], 'val image')} identical to a train image ({pairs}); "
        "remove them from the folder, or pass --set data.leakage=drop to drop them from val (data.leakage=warn keeps them)"
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
    imb = audit["imbalance"]
    n_train, n_val = audit["images"]["train"], audit["images"]["val"]
    ratio = "-" if imb["ratio"] is None else f"{imb['ratio']:.1f}x"
    return [
        ("images", n_train + n_val, f"{n_train} train / {n_val} val in {len(audit['per_class'])} classes"),
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
        ("converted to RGB", sum(conv.values()), ", ".join(f"{m} {n}" for m, n in conv.items())),
        ("empty class folders", len(audit["empty_class_folders"]), _examples(audit["empty_class_folders"])),
    ]


def _duplicate_rows(audit: dict) -> list[tuple]:
    dup = audit["duplicates"]
    policy = audit.get("leakage", {}).get("policy")
    kept = "dropped from val" if policy == "drop" else "kept"
    leak_note = [f"{kept} (data.leakage={policy})"] if dup["train_val"] and policy else []
    pairs = {k: [f"{a} = {b}" for a, b in v] for k, v in dup["examples"].items()}
    conflicts = "pixel-identical images under different classes" if dup["label_conflicts"] else ""
    return [
        ("same in train and val", dup["train_val"], leak_note + _lines(pairs["train_val"], dup["train_val"])),
        ("duplicates in train", dup["within_train"], _examples(pairs["within_train"], dup["within_train"])),
        ("duplicates in val", dup["within_val"], _examples(pairs["within_val"], dup["within_val"])),
        ("label conflicts", dup["label_conflicts"], conflicts),
    ]


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
