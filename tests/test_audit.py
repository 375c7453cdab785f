"""The data audit: pure functions on labels and digests, and the audit load_images builds, caches and applies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import random_image, save_image, train_val_folder
from PIL import Image

from runner.config import ConfigError, DataConfig
from runner.data import audit, folder
from runner.data.audit import counts, duplicates, format_audit, leakage_error, pixel_digest, warnings
from runner.data.builtin import LESION_CLASSES
from runner.data.source import load_images

S = 16


_img, _save, _train_val = random_image, save_image, train_val_folder


def _audit_of(train_h, val_h, train_y=None, val_y=None, classes=("a", "b")):
    train_y = np.zeros(len(train_h), np.int64) if train_y is None else np.asarray(train_y)
    val_y = np.zeros(len(val_h), np.int64) if val_y is None else np.asarray(val_y)
    names = ([f"t{i}" for i in range(len(train_h))], [f"v{i}" for i in range(len(val_h))])
    return audit.audit_images("src", list(classes), (train_y, val_y), (np.array(train_h), np.array(val_h)), names)


# --------------------------------------------------------------------------- pure functions


def test_pixel_digest_is_content_and_shape():
    a = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert pixel_digest(a) == pixel_digest(a.copy()) and len(pixel_digest(a)) == 32
    assert pixel_digest(a) != pixel_digest(a.reshape(2, 8, 3))  # same bytes, other shape
    b = a.copy()
    b[0, 0, 0] += 1
    assert pixel_digest(a) != pixel_digest(b)
    assert pixel_digest(a[:, ::-1]) == pixel_digest(np.ascontiguousarray(a[:, ::-1]))  # views hash their pixels


def test_counts_imbalance_and_missing_classes():
    c = counts(["a", "b", "c"], np.array([0, 0, 0, 0, 0, 0, 1, 1]), np.array([0, 1]))
    assert c["images"] == {"train": 8, "val": 2}
    assert c["per_class"]["a"] == {"train": 6, "val": 1} and c["per_class"]["c"] == {"train": 0, "val": 0}
    assert c["imbalance"] == {"ratio": None, "largest": "a", "smallest": "c"}  # a class without train images
    assert c["classes_without_train"] == ["c"] and c["classes_without_val"] == ["c"]
    c = counts(["a", "b"], np.array([0, 0, 0, 0, 0, 0, 0, 1, 1]), np.array([0, 1]))
    assert c["imbalance"]["ratio"] == 3.5 and c["classes_without_val"] == []


def test_duplicates_across_within_and_label_conflicts():
    d = duplicates(
        (np.array([0, 0, 1, 1]), np.array([1, 1, 1])),
        (np.array(["x", "y", "x", "z"]), np.array(["y", "q", "q"])),
        (["t0", "t1", "t2", "t3"], ["v0", "v1", "v2"]),
    )
    assert d["train_val"] == 1 and d["examples"]["train_val"] == [["v0", "t1"]]
    assert d["within_train"] == 1 and d["examples"]["within_train"] == [["t2", "t0"]]
    assert d["within_val"] == 1 and d["examples"]["within_val"] == [["v2", "v1"]]
    assert d["label_conflicts"] == 2  # x in class 0 and 1 (train), y in class 0 (train) and 1 (val)


def test_every_val_copy_of_a_train_image_counts():
    a = _audit_of(["h1", "h2"], ["h1", "h1", "h2", "h3"])
    assert a["duplicates"]["train_val"] == 3  # the drop count: every val image whose pixels are in train
    assert a["duplicates"]["within_val"] == 1


def test_audit_is_plain_json():
    a = _audit_of(["h1", "h2"], ["h1"], classes=("a",))
    assert json.loads(json.dumps(a)) == a


def test_warnings_thresholds():
    balanced = counts(["a", "b"], np.array([0, 0, 0, 1]), np.array([0, 1]))
    base = {"duplicates": {"train_val": 0, "label_conflicts": 0}}
    assert warnings({**base, **balanced}) == []  # 3.0x is not above the threshold
    skewed = counts(["a", "b"], np.array([0, 0, 0, 0, 1]), np.array([0, 1]))
    assert warnings({**base, **skewed}) == ["classes are imbalanced 4.0x: most 4 (a), fewest 1 (b)"]


def test_leakage_warning_depends_on_policy():
    a = _audit_of(["h1"], ["h1", "h2"])
    a["leakage"] = {"policy": "warn", "dropped": 0}
    assert (
        "1 val image identical to a train image, so val accuracy is optimistic; --set data.leakage=drop"
        in warnings(a)[0]
    )
    a["leakage"] = {"policy": "drop", "dropped": 1}
    assert warnings(a)[0] == "1 val image identical to a train image dropped from val (data.leakage=drop)"


def test_leakage_error_names_count_pairs_and_fix():
    msg = leakage_error(_audit_of(["h1", "h2", "h3", "h4"], ["h1", "h2", "h3", "h4"]))
    assert msg.startswith("data.path='src': 4 val images identical to a train image (v0 = t0, v1 = t1, v2 = t2, ...)")
    assert "--set data.leakage=drop" in msg and "remove them from the folder" in msg
    assert "\n" not in msg


def test_format_audit_fixed_columns():
    a = _audit_of(["h1", "h2", "h3"], ["h1", "h9"], train_y=[0, 0, 1], val_y=[0, 1])
    a.update(
        audit.file_facts(
            Path("/r"),
            [(Path(f"/r/train/a/{i}.jpg"), "empty file, 0 bytes") for i in range(5)],
            [Path("/r/notes.txt")],
            [Path("/r/.DS_Store")],
            [Path("/r/train/c")],
            ["RGB", "RGBA", "P", "P", "L"],
        )
    )
    a["leakage"] = {"policy": "warn", "dropped": 0}
    text = format_audit(a)
    lines = text.splitlines()
    assert lines[0].split() == ["audit", "count", "details"]
    table = [line for line in lines if not line.startswith("warning")]
    assert all(line[29:31] == "  " for line in table if len(line) > 29)  # the details column starts at 31
    by_name = {line[:22].strip(): line for line in table if line[:22].strip()}
    assert by_name["images"][23:29] == "     5"
    assert by_name["converted to RGB"].endswith("L 1, P 2, RGBA 1")
    assert by_name["same in train and val"].endswith("kept (data.leakage=warn)")
    assert "v0 = t0" in text and "train/a/0.jpg (empty file, 0 bytes)" in text
    assert "... and 2 more" in text  # 5 unreadable, 3 shown
    assert by_name["empty class folders"].endswith("train/c")
    assert any(line.startswith("warning  1 val image identical") for line in lines)
    assert all(len(line) <= 31 + audit.DETAILS for line in table)


def test_format_audit_clips_long_details():
    a = _audit_of(["h1"], ["h1"])
    a["duplicates"]["examples"]["train_val"] = [["val/" + "x" * 200 + ".png", "train/y.png"]]
    line = next(x for x in format_audit(a).splitlines() if "xxx" in x)
    assert line.endswith("...") and len(line) == 31 + audit.DETAILS


def test_format_audit_of_builtin_has_no_file_rows():
    text = format_audit(load_images(DataConfig(path="builtin:digits", image_size=8)).audit)
    assert "images" in text and "same in train and val" in text
    assert "unreadable" not in text and "converted" not in text


# --------------------------------------------------------------------------- built-in datasets


def test_builtin_digits_audit_reports_what_is_there():
    """scikit-learn's 1,797 digits hold no two pixel-identical images (checked on the 8x8 originals too)."""
    s = load_images(DataConfig(path="builtin:digits", image_size=8))
    a = s.audit
    assert a["source"] == "builtin:digits"
    assert a["images"] == {"train": len(s.train_y), "val": len(s.val_y)}
    assert (
        a["duplicates"]["train_val"] == 0
        and a["duplicates"]["within_train"] == 0
        and a["duplicates"]["within_val"] == 0
    )
    assert 1.0 <= a["imbalance"]["ratio"] < 1.2
    assert a["leakage"] == {"policy": "warn", "dropped": 0} and a["warnings"] == []


def test_builtin_lesions_audit_counts():
    a = load_images(DataConfig(path="builtin:lesions", image_size=8)).audit
    assert a["images"] == {"train": 702, "val": 180, "test": 180}  # a test split from the same generator
    assert a["duplicates"]["train_test"] == a["duplicates"]["val_test"] == 0
    assert a["imbalance"]["ratio"] == 1.0
    assert set(a["per_class"]) == set(LESION_CLASSES)


# --------------------------------------------------------------------------- folders


def test_folder_audit_lists_everything(tmp_path):
    root = _train_val(tmp_path / "imgs", classes=("cat", "dog", "eel"))
    _save(root / "train" / "cat" / "rgba.png", Image.new("RGBA", (20, 20), (10, 20, 30, 128)))
    _save(root / "train" / "cat" / "la.png", Image.new("LA", (20, 20), (10, 128)))
    _save(root / "train" / "dog" / "gray.jpg", _img(7).convert("L"))
    _save(root / "train" / "dog" / "cmyk.jpg", _img(8).convert("CMYK"))
    _save(root / "train" / "dog" / "g16.png", Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 100))
    (root / "train" / "cat" / "zero.jpg").write_bytes(b"")
    (root / "train" / "cat" / "notes.txt").write_text("x")
    (root / "train" / ".DS_Store").write_bytes(b"x")
    (root / "train" / "fox").mkdir()
    shutil.rmtree(root / "val" / "eel")  # eel: train only
    shutil.copy(root / "train" / "cat" / "0.png", root / "val" / "cat" / "copy_of_train.png")
    shutil.copy(root / "train" / "dog" / "1.png", root / "train" / "dog" / "copy.png")

    s = load_images(DataConfig(path=str(root), image_size=S))
    a = s.audit
    assert a["unreadable"] == [{"path": "train/cat/zero.jpg", "reason": "empty file, 0 bytes"}]
    assert a["ignored"] == {"count": 1, "examples": ["train/cat/notes.txt"]}
    assert a["hidden"] == {"count": 1, "examples": ["train/.DS_Store"]}
    assert a["converted"] == {"CMYK": 1, "I;16": 1, "L": 1, "LA": 1, "RGBA": 1}
    assert a["empty_class_folders"] == ["train/fox"]
    assert a["classes_without_val"] == ["eel"]
    assert a["duplicates"]["train_val"] == 1
    assert a["duplicates"]["examples"]["train_val"] == [["val/cat/copy_of_train.png", "train/cat/0.png"]]
    assert a["duplicates"]["within_train"] == 1
    assert a["images"] == {"train": 18, "val": 5} and len(s.val_y) == 5  # warn keeps the copy
    assert any("classes without val images: eel" in w for w in a["warnings"])
    assert s.summary()["audit_warnings"] == a["warnings"]
    json.dumps(a)


def test_full_resolution_hash_keeps_images_that_only_resize_alike(tmp_path):
    """Two 64x64 images one pixel level apart are the same 8x8 array after INTER_AREA: not duplicates."""
    root = _train_val(tmp_path / "imgs", n_train=2, n_val=1)
    a = np.full((64, 64, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 101
    _save(root / "train" / "cat" / "a.png", Image.fromarray(a))
    _save(root / "val" / "cat" / "b.png", Image.fromarray(b))
    s = load_images(DataConfig(path=str(root), image_size=8))
    assert s.audit["duplicates"]["train_val"] == 0
    assert any(np.array_equal(x, v) for x in s.train_x for v in s.val_x)  # the resized arrays do collide


def test_flat_layout_copies_split_into_both_sides_are_found(tmp_path):
    root = tmp_path / "imgs"
    for c in ("a", "b"):
        for i in range(10):
            _save(root / c / f"{i}.png", _img(hash((c, i)) % 10_000))
    for i in range(10):  # every "a" image twice
        shutil.copy(root / "a" / f"{i}.png", root / "a" / f"copy{i}.png")
    a = load_images(DataConfig(path=str(root), image_size=S, val_fraction=0.5)).audit
    d = a["duplicates"]
    assert d["train_val"] + d["within_train"] + d["within_val"] == 10


@pytest.fixture
def leaky(tmp_path):
    root = _train_val(tmp_path / "imgs")
    for i in range(3):
        shutil.copy(root / "train" / "cat" / f"{i}.png", root / "val" / "cat" / f"leak{i}.png")
    return root


def test_leakage_warn_keeps_fail_raises_drop_removes(leaky):
    warn = load_images(DataConfig(path=str(leaky), image_size=S))
    assert len(warn.val_y) == 7 and warn.audit["duplicates"]["train_val"] == 3

    with pytest.raises(ConfigError) as e:
        load_images(DataConfig(path=str(leaky), image_size=S, leakage="fail"))
    msg = str(e.value)
    assert "3 val images identical to a train image" in msg and "val/cat/leak0.png = train/cat/0.png" in msg
    assert "--set data.leakage=drop" in msg

    drop = load_images(DataConfig(path=str(leaky), image_size=S, leakage="drop"))
    assert drop.cached  # the three policies share one cache entry
    assert len(drop.val_y) == 4 and np.bincount(drop.val_y).tolist() == [2, 2]
    assert drop.audit["leakage"] == {"policy": "drop", "dropped": 3}
    assert drop.audit["images"]["val"] == 4 and drop.audit["per_class"]["cat"]["val"] == 2
    assert drop.audit["duplicates"]["train_val"] == 3  # what was found stays reported
    assert not any(np.array_equal(v, t) for v in drop.val_x for t in drop.train_x)
    assert np.array_equal(drop.train_x, warn.train_x)  # train is never touched


def test_leakage_drop_of_every_val_image_is_config_error(tmp_path):
    root = _train_val(tmp_path / "imgs", n_val=0)
    for c in ("cat", "dog"):
        (root / "val" / c).mkdir(parents=True)
        shutil.copy(root / "train" / c / "0.png", root / "val" / c / "0.png")
    with pytest.raises(ConfigError, match="every val image is also in train"):
        load_images(DataConfig(path=str(root), image_size=S, leakage="drop"))


# --------------------------------------------------------------------------- the audit is cached with the images


@pytest.fixture
def decode_calls(monkeypatch):
    calls = {"decode": 0, "hash": 0}
    decode_file, digest = folder.decode_file, folder.pixel_digest

    def counting_decode(path, size, channels=3):
        calls["decode"] += 1
        return decode_file(path, size, channels)

    def counting_digest(a):
        calls["hash"] += 1
        return digest(a)

    monkeypatch.setattr(folder, "decode_file", counting_decode)
    monkeypatch.setattr(folder, "pixel_digest", counting_digest)
    return calls


def test_second_run_reuses_the_audit_without_decoding_or_hashing(leaky, decode_calls):
    (leaky / "val" / "dog" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cfg = DataConfig(path=str(leaky), image_size=S)
    first = load_images(cfg)
    assert decode_calls == {"decode": 16, "hash": 15}  # 15 good images + 1 unreadable
    second = load_images(cfg)
    assert second.cached
    assert decode_calls == {"decode": 16, "hash": 15}  # nothing decoded or hashed again
    assert second.audit == first.audit
    assert second.audit["unreadable"] == [
        {"path": "val/dog/bad.png", "reason": "corrupt (starts like an image, header unreadable)"}
    ]


@pytest.mark.parametrize(
    "change, effect",
    [
        (
            lambda root: _save(root / "val" / "dog" / "leak.png", Image.open(root / "train" / "dog" / "0.png")),
            ("duplicates", "train_val", 4),
        ),
        (lambda root: (root / "train" / "cat" / "readme.md").write_text("x"), ("ignored", "count", 1)),
        (lambda root: (root / "train" / "cat" / ".DS_Store").write_text("x"), ("hidden", "count", 1)),
        (lambda root: (root / "train" / "newclass").mkdir(), ("empty_class_folders", None, ["train/newclass"])),
        (
            lambda root: (root / "train" / "cat" / "zero.png").write_bytes(b""),
            ("unreadable", None, [{"path": "train/cat/zero.png", "reason": "empty file, 0 bytes"}]),
        ),
        (
            lambda root: os.symlink("missing.png", root / "train" / "cat" / "link.png"),
            ("unreadable", None, [{"path": "train/cat/link.png", "reason": "broken symlink to missing.png"}]),
        ),
    ],
)
def test_audit_cache_is_invalidated_when_the_folder_changes(leaky, decode_calls, change, effect):
    cfg = DataConfig(path=str(leaky), image_size=S)
    load_images(cfg)
    assert load_images(cfg).cached
    change(leaky)
    again = load_images(cfg)
    assert not again.cached
    key, sub, want = effect
    assert (again.audit[key][sub] if sub else again.audit[key]) == want
    assert load_images(cfg).cached


def test_scan_follows_a_symlinked_class_folder_and_ignores_loose_images(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "dog"
    for i in range(3):
        _save(elsewhere / f"{i}.png", _img(300 + i))
    root = tmp_path / "imgs"
    for i in range(3):
        _save(root / "cat" / f"{i}.png", _img(i))
    os.symlink(elsewhere, root / "dog")
    _save(root / "stray.png", _img(99))  # not in a class folder
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "ab").write_bytes(b"x")  # a hidden folder counts once, its files not at all
    s = load_images(DataConfig(path=str(root), image_size=S, val_fraction=0.34))
    assert s.classes == ["cat", "dog"] and len(s.train_y) + len(s.val_y) == 6
    assert s.audit["ignored"] == {"count": 1, "examples": ["stray.png"]}
    assert s.audit["hidden"] == {"count": 1, "examples": [".git"]}
