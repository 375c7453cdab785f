"""Data: built-in datasets, the stratified split, image folders, the decode cache and augmentation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from runner.config import AUGMENTATIONS, AugmentConfig, ConfigError, DataConfig
from runner.data import folder
from runner.data.augment import Augment, check_augment, normalize
from runner.data.builtin import LESION_CLASSES, lesions, load_builtin
from runner.data.source import ImageSet, load_images
from runner.data.split import stratified_split

S = 16  # image size for everything that does not need the real 64
LESIONS16_BEFORE_TEST = "a4f402496110eda4"  # sha256 of lesions at 16 px, train + val in generation order, before test


# --------------------------------------------------------------------------- built-in


@pytest.fixture(scope="module")
def lesions64():
    s = load_images(DataConfig())
    return s.train_x, s.train_y, s.val_x, s.val_y, s.classes, s.test_x, s.test_y


def test_lesions_shapes_dtype_and_balance(lesions64):
    tx, ty, vx, vy, classes, ex, ey = lesions64
    assert tx.shape == (702, 64, 64, 3) and vx.shape == (180, 64, 64, 3) and ex.shape == (180, 64, 64, 3)
    assert tx.dtype == np.uint8 and vx.dtype == np.uint8 and ex.dtype == np.uint8
    assert ty.shape == (702,) and vy.shape == (180,)
    assert classes == list(LESION_CLASSES) and len(classes) == 9
    assert classes == sorted(classes)
    assert np.bincount(ty).tolist() == [78] * 9
    assert np.bincount(vy).tolist() == [20] * 9 and np.bincount(ey).tolist() == [20] * 9
    assert 0 < tx.mean() < 255 and tx.std() > 10  # real images, not blank


def test_lesions_deterministic_per_split_seed():
    a = lesions(DataConfig(image_size=S, split_seed=0))
    b = lesions(DataConfig(image_size=S, split_seed=0))
    c = lesions(DataConfig(image_size=S, split_seed=1))
    for x, y in zip(a[:3], b[:3]):
        assert np.array_equal(x, y)
    assert a[0].shape == (702 + 180 + 180, S, S, 3) and np.bincount(a[2]).tolist() == [702, 180, 180]
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(a[1], c[1])  # labels are fixed; only pixels change


def test_lesions_test_split_leaves_train_and_val_as_they_were():
    """The test images are drawn after train and val: the first 882 images are those of the generator before it
    had a test split (checked against a fingerprint of the earlier arrays)."""
    images, labels, split, _ = lesions(DataConfig(image_size=S))
    first = images[: 9 * 98]
    assert (split[: 9 * 98] != 2).all() and (split[9 * 98 :] == 2).all()
    assert hashlib.sha256(first.tobytes()).hexdigest()[:16] == LESIONS16_BEFORE_TEST


def test_lesions_grayscale_is_the_luma_of_the_colour_images():
    rgb, *_ = lesions(DataConfig(image_size=S))
    gray, *_ = lesions(DataConfig(image_size=S, channels=1))
    assert gray.shape == (len(rgb), S, S, 1)
    want = np.asarray(Image.fromarray(rgb[0]).convert("L"))  # PIL's own conversion
    assert np.array_equal(gray[0, ..., 0], want)


def test_lesion_classes_differ_on_average(lesions64):
    tx, ty, *_ = lesions64
    means = np.stack([tx[ty == c].reshape(-1, 3).mean(0) for c in range(9)])
    # melanoma (dark) and vascular_lesion (red) have visibly different mean colours
    mel, vasc = LESION_CLASSES.index("melanoma"), LESION_CLASSES.index("vascular_lesion")
    assert np.abs(means[mel] - means[vasc]).max() > 5


def test_digits_shapes_rgb_and_split():
    s = load_images(DataConfig(path="builtin:digits", image_size=S, val_fraction=0.2, split_seed=0))
    tx, ty, vx, vy, classes = s.train_x, s.train_y, s.val_x, s.val_y, s.classes
    assert not s.has_test  # digits have no test split unless data.test_fraction holds one out
    assert classes == [str(i) for i in range(10)]
    assert tx.shape[1:] == (S, S, 3) and vx.shape[1:] == (S, S, 3)
    assert tx.dtype == np.uint8
    assert len(ty) + len(vy) == 1797
    assert 0.18 < len(vy) / 1797 < 0.22
    assert set(ty.tolist()) == set(range(10)) and set(vy.tolist()) == set(range(10))
    assert np.array_equal(tx[..., 0], tx[..., 1]) and np.array_equal(tx[..., 1], tx[..., 2])  # gray as RGB
    assert tx.max() > 200  # scaled from 0..16 to 0..255


def test_load_builtin_dispatch_and_unknown_name():
    tx, *_ = load_builtin(DataConfig(path="builtin: Digits ", image_size=8))
    assert tx.shape[1:] == (8, 8, 3)
    with pytest.raises(ConfigError, match="builtin:lesions, builtin:digits"):
        load_builtin(DataConfig(path="builtin:mnist"))


def test_load_images_builtin_summary():
    s = load_images(DataConfig(path="builtin:digits", image_size=8))
    assert isinstance(s, ImageSet) and not s.cached
    summ = s.summary()
    assert summ["image_size"] == 8 and summ["source"] == "builtin:digits"
    assert summ["train_images"] + summ["val_images"] == 1797
    assert sum(summ["train_per_class"]) == summ["train_images"]
    assert summ["skipped_files"] == [] and summ["ignored_files"] == 0


# --------------------------------------------------------------------------- split


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.repeat(np.arange(5), [2, 3, 10, 50, 7])
    train, val = stratified_split(labels, 0.2, seed=0)
    assert set(labels[train]) == set(range(5)) and set(labels[val]) == set(range(5))
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.array_equal(train, np.sort(train)) and np.array_equal(val, np.sort(val))
    assert np.bincount(labels[val]).tolist() == [1, 1, 2, 10, 1]


def test_stratified_split_is_seeded():
    labels = np.repeat(np.arange(3), 20)
    a = stratified_split(labels, 0.25, seed=1)
    b = stratified_split(labels, 0.25, seed=1)
    c = stratified_split(labels, 0.25, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert np.bincount(labels[a[1]]).tolist() == [5, 5, 5]


def test_stratified_split_single_image_class_stays_in_train():
    labels = np.array([0, 1, 1, 1])
    train, val = stratified_split(labels, 0.5, seed=0)
    assert 0 in train and 0 not in val
    assert len(val) == 2  # round(3 * 0.5) = 2 of class 1


# --------------------------------------------------------------------------- folders


def _rgb(seed: int, size: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 4, 3), dtype=np.uint8)


def _save(path: Path, img: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _flat(root: Path, classes=("cat", "dog"), n: int = 5, fmt: str = "png") -> Path:
    for ci, c in enumerate(classes):
        for i in range(n):
            _save(root / c / f"{i}.{fmt}", Image.fromarray(_rgb(ci * 100 + i)))
    return root


def test_scan_flat_layout(tmp_path):
    _flat(tmp_path, classes=("b_dog", "a_cat"), n=3)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a_cat" / "labels.csv").write_text("x")
    (tmp_path / ".hidden").mkdir()
    _save(tmp_path / ".hidden" / "x.png", Image.fromarray(_rgb(0)))
    s = folder.scan(tmp_path)
    assert s.classes == ["a_cat", "b_dog"]
    assert s.is_val is None
    assert len(s.paths) == 6 and s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(p.parent.name == s.classes[label] for p, label in zip(s.paths, s.labels))
    assert sorted(p.name for p in s.ignored) == ["labels.csv", "notes.txt"]


def test_scan_train_val_layout(tmp_path):
    _flat(tmp_path / "train", n=4)
    _flat(tmp_path / "val", classes=("cat",), n=2)
    s = folder.scan(tmp_path)
    assert s.classes == ["cat", "dog"]
    assert s.is_val is not None
    assert s.is_val.sum() == 2 and (~s.is_val).sum() == 8
    assert s.labels[s.is_val].tolist() == [0, 0]
    assert all(p.parts[-3] == "val" for p in np.array(s.paths, dtype=object)[s.is_val])


@pytest.mark.parametrize("val_name", ["valid", "Validation"])
def test_scan_accepts_other_val_names(tmp_path, val_name):
    _flat(tmp_path / "train", n=2)
    _flat(tmp_path / val_name, n=1)
    s = folder.scan(tmp_path)
    assert s.is_val.sum() == 2


def test_scan_val_classes_missing_from_train(tmp_path):
    _flat(tmp_path / "train", classes=("cat", "dog"), n=2)
    _flat(tmp_path / "val", classes=("cat", "bird"), n=1)
    with pytest.raises(ConfigError, match=r"\['bird'\].*in val but not in train"):
        folder.scan(tmp_path)


def test_scan_train_without_val_splits_train(tmp_path):
    _flat(tmp_path / "train", n=2)
    _flat(tmp_path / "test", n=1)
    s = folder.scan(tmp_path)
    assert s.is_val is None  # split later by data.val_fraction
    assert s.classes == ["cat", "dog"]
    assert [p.parts[-3] for p in s.paths] == ["train"] * 4 + ["test"] * 2 and s.split.tolist() == [0] * 4 + [2] * 2


def test_scan_empty_val(tmp_path):
    _flat(tmp_path / "train", n=2)
    (tmp_path / "val" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no images"):
        folder.scan(tmp_path)


def test_scan_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        folder.scan(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no such folder"):
        load_images(DataConfig(path=str(tmp_path / "missing")))


def test_scan_file_not_folder(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file"):
        folder.scan(f)


def test_scan_one_class(tmp_path):
    _flat(tmp_path, classes=("only",), n=4)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ConfigError, match="found 1 class folder"):
        folder.scan(tmp_path)


def test_decode_formats_and_modes(tmp_path):
    yy, xx = np.mgrid[0:24, 0:28]
    rgb = np.stack([xx * 9, yy * 10, 255 - xx * 9], -1).astype(np.uint8)  # smooth, so JPEG stays close
    cases = {
        "a.jpg": (Image.fromarray(rgb), {"quality": 95}),
        "b.jpeg": (Image.fromarray(rgb), {}),
        "c.png": (Image.fromarray(rgb), {}),
        "d.bmp": (Image.fromarray(rgb), {}),
        "e.webp": (Image.fromarray(rgb), {"lossless": True}),
        "f.gif": (Image.fromarray(rgb).convert("P"), {}),
        "g.tif": (Image.fromarray(rgb), {}),
    }
    for name, (im, kw) in cases.items():
        a = folder.decode_file(_save(tmp_path / name, im, **kw), S).image
        assert a is not None, name
        assert a.shape == (S, S, 3) and a.dtype == np.uint8, name
    # lossless formats keep the pixels: compare with the same resize of the original
    import cv2

    want = cv2.resize(rgb, (S, S), interpolation=cv2.INTER_AREA)
    for name in ("c.png", "d.bmp", "e.webp", "g.tif"):
        assert np.array_equal(folder.decode_file(tmp_path / name, S).image, want), name
    assert np.abs(folder.decode_file(tmp_path / "a.jpg", S).image.astype(int) - want).mean() < 4


def test_decode_upscales_small_images(tmp_path):
    a = folder.decode_file(_save(tmp_path / "tiny.png", Image.fromarray(_rgb(2, 4))), S).image
    assert a.shape == (S, S, 3)


def test_decode_grayscale(tmp_path):
    g = np.tile(np.arange(0, 240, 10, dtype=np.uint8), (24, 1))
    a = folder.decode_file(_save(tmp_path / "g.png", Image.fromarray(g, mode="L")), 24).image
    assert a.shape == (24, 24, 3)
    assert np.array_equal(a[..., 0], g) and np.array_equal(a[..., 1], g) and np.array_equal(a[..., 2], g)


def test_decode_16bit_grayscale_is_scaled(tmp_path):
    g = np.tile(np.linspace(0, 4000, 24).astype(np.uint16), (24, 1))
    p = _save(tmp_path / "g16.png", Image.fromarray(g))
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # really a 16-bit image on disk
    a = folder.decode_file(p, 24).image
    assert a.shape == (24, 24, 3) and a.dtype == np.uint8
    assert a.max() == round(4000 * 255 / 65535) and a.min() == 0  # the 16-bit range maps to 8 bits, not clipped at 255
    assert np.all(np.diff(a[0, :, 0].astype(int)) >= 0)  # the ramp survives
    assert len(np.unique(a[0, :, 0])) > 10


def test_decode_rgba_transparent_is_white(tmp_path):
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[..., 0] = 200  # red, fully transparent on the left half
    rgba[:, 12:, 3] = 255
    a = folder.decode_file(_save(tmp_path / "rgba.png", Image.fromarray(rgba, mode="RGBA")), 24).image
    assert a.shape == (24, 24, 3)
    assert np.all(a[:, :12] == 255)
    assert np.all(a[:, 12:] == [200, 0, 0])


def test_decode_palette_with_transparency(tmp_path):
    im = Image.new("P", (24, 24), 0)
    im.putpalette([0, 0, 255] + [255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 12, 24))
    p = _save(tmp_path / "pal.png", im, transparency=0)
    a = folder.decode_file(p, 24).image
    assert a.shape == (24, 24, 3)
    assert np.all(a[:, :12] == [255, 0, 0])  # opaque red
    assert np.all(a[:, 12:] == 255)  # transparent blue -> white


def test_decode_palette_without_transparency(tmp_path):
    im = Image.new("P", (24, 24), 0)
    im.putpalette([10, 20, 30] + [0] * 765)
    a = folder.decode_file(_save(tmp_path / "pal.bmp", im), 24).image
    assert np.all(a == [10, 20, 30])


def test_decode_bad_files_return_none(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(os.urandom(300))
    good = _save(tmp_path / "ok.png", Image.fromarray(_rgb(3)))
    trunc = tmp_path / "trunc.jpg"
    _save(trunc, Image.fromarray(_rgb(4, 64)))
    trunc.write_bytes(trunc.read_bytes()[:40])
    assert folder.decode_file(tmp_path / "zero.jpg", S).image is None
    assert folder.decode_file(tmp_path / "junk.png", S).image is None
    assert folder.decode_file(trunc, S).image is None
    images, decoded = folder.decode_all([tmp_path / "zero.jpg", good, tmp_path / "junk.png", trunc], S)
    assert [d.ok for d in decoded] == [False, True, False, False]
    assert [d.error for d in decoded] == ["empty file, 0 bytes", "", "not an image (unknown format)", "truncated"]
    assert images.shape == (1, S, S, 3)
    assert (
        decoded[1].mode == "RGB" and len(decoded[1].digest) == 32 and decoded[1].image is None
    )  # pixels moved to images
    images, decoded = folder.decode_all([tmp_path / "zero.jpg"], S)
    assert images.shape == (0, S, S, 3) and [d.ok for d in decoded] == [False]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(d))
    return d


def test_load_images_flat_folder_with_bad_files(tmp_path, cache):
    root = _flat(tmp_path / "imgs", classes=("cat", "dog"), n=6)
    (root / "cat" / "zero.jpg").write_bytes(b"")
    (root / "dog" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "README.txt").write_text("hello")
    s = load_images(DataConfig(path=str(root), image_size=S, val_fraction=0.5, split_seed=0))
    assert sorted(Path(p).name for p in s.skipped) == ["corrupt.png", "zero.jpg"]
    assert s.ignored == 1
    assert s.classes == ["cat", "dog"]
    assert len(s.train_y) + len(s.val_y) == 12
    assert np.bincount(s.val_y).tolist() == [3, 3]
    assert s.train_x.shape == (6, S, S, 3) and s.train_x.dtype == np.uint8
    assert s.source == str(root.resolve())
    assert not s.cached


def test_load_images_train_val_folder(tmp_path, cache):
    root = tmp_path / "imgs"
    for split, n in (("train", 4), ("val", 2)):
        for ci, c in enumerate(("x", "y", "z")):
            for i in range(n):
                fmt = ("jpg", "png", "bmp", "webp")[i % 4]
                _save(root / split / c / f"{i}.{fmt}", Image.fromarray(_rgb(ci * 10 + i)))
    s = load_images(DataConfig(path=str(root), image_size=S))
    assert s.classes == ["x", "y", "z"]
    assert s.train_x.shape == (12, S, S, 3) and s.val_x.shape == (6, S, S, 3)
    assert np.bincount(s.train_y).tolist() == [4, 4, 4] and np.bincount(s.val_y).tolist() == [2, 2, 2]
    assert s.skipped == []


def test_load_images_all_val_images_unreadable(tmp_path, cache):
    root = tmp_path / "imgs"
    _flat(root / "train", n=2)
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "cat" / "bad.jpg").write_bytes(b"")
    with pytest.raises(ConfigError, match="0 val images decoded"):
        load_images(DataConfig(path=str(root), image_size=S))


def test_the_lesions_generator_is_drawn_once_per_setting_and_cached(cache, monkeypatch):
    """A second study on builtin:lesions reads what the first drew (the same arrays, the same audit); another split
    seed, image size or channel count draws anew; a change to the generator's code or to numpy misses the cache; the
    digits, read from scikit-learn's file, are not cached."""
    from runner.data import source

    cfg = DataConfig(path="builtin:lesions", image_size=16)
    first, second = load_images(cfg), load_images(cfg)
    assert not first.cached and second.cached and second.seconds == 0.0
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert second.audit == first.audit and second.classes == first.classes and second.source == first.source
    for other in ({"split_seed": 1}, {"image_size": 8}, {"channels": 1}):
        assert not load_images(DataConfig(**{"path": "builtin:lesions", "image_size": 16, **other})).cached, other
    for module, name, value in ((np, "__version__", "0.0.1"), (source.builtin, "__file__", source.__file__)):
        with monkeypatch.context() as m:  # another numpy; other generator code
            m.setattr(module, name, value)
            assert not load_images(cfg).cached, name
    before = set(cache.glob("*.npz"))
    assert not load_images(DataConfig(path="builtin:digits", image_size=8)).cached
    assert set(cache.glob("*.npz")) == before


def test_load_images_cache_hit_and_invalidation(tmp_path, cache):
    root = _flat(tmp_path / "imgs", n=5)
    cfg = DataConfig(path=str(root), image_size=S)
    first = load_images(cfg)
    assert not first.cached
    assert len(list(cache.glob("images-*.npz"))) == 1
    second = load_images(cfg)
    assert second.cached and second.seconds == 0.0
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
        assert getattr(first, name).dtype == getattr(second, name).dtype
    assert second.classes == first.classes and second.source == first.source
    assert second.skipped == first.skipped and second.ignored == first.ignored

    # a different image size is a different cache entry
    assert not load_images(DataConfig(path=str(root), image_size=8)).cached

    # touching a file invalidates the cache
    f = root / "cat" / "0.png"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    third = load_images(cfg)
    assert not third.cached
    assert load_images(cfg).cached

    # adding a file invalidates it too, and the new image is in the set
    _save(root / "dog" / "new.png", Image.fromarray(_rgb(77)))
    fourth = load_images(cfg)
    assert not fourth.cached
    assert len(fourth.train_y) + len(fourth.val_y) == 11


def test_load_images_unreadable_cache_is_rebuilt(tmp_path, cache):
    root = _flat(tmp_path / "imgs", n=3)
    cfg = DataConfig(path=str(root), image_size=S)
    load_images(cfg)
    (entry,) = cache.glob("images-*.npz")
    entry.write_bytes(b"garbage")
    again = load_images(cfg)
    assert not again.cached and len(again.train_y) + len(again.val_y) == 6
    assert load_images(cfg).cached


# --------------------------------------------------------------------------- augment


def _batch(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, S, S, 3), dtype=np.uint8)


def test_unknown_transform_lists_names():
    with pytest.raises(ConfigError) as e:
        check_augment(AugmentConfig(train=({"name": "HorizontalFlop"},)), S)
    msg = str(e.value)
    assert "augment.train[0]" in msg and "'HorizontalFlop'" in msg
    assert "HorizontalFlip" in msg and "VerticalFlip" in msg and "RandomBrightnessContrast" in msg


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "HorizontalFlip", "p": "often"},
        {"name": "HorizontalFlip", "p": 2},
        {"name": "RandomBrightnessContrast", "brightness_limit": "x"},
        {"name": "Rotate", "limit": "a"},
    ],
)
def test_bad_transform_argument_is_config_error(spec):
    with pytest.raises(ConfigError, match=rf"augment.train\[1\] {spec['name']}\("):
        check_augment(AugmentConfig(train=({"name": "VerticalFlip"}, spec)), S)


@pytest.mark.filterwarnings("ignore:Argument")
def test_misspelt_transform_argument_is_config_error():
    with pytest.raises(ConfigError, match="pp"):
        check_augment(AugmentConfig(train=({"name": "HorizontalFlip", "pp": 1.0},)), S)


def test_transform_names_are_case_insensitive():
    check_augment(AugmentConfig(train=({"name": "horizontalflip", "p": 1.0},)), S)
    out = Augment(AugmentConfig(train=({"name": "HORIZONTALFLIP", "p": 1.0},)), S, seed=0)(_batch(2))
    assert np.array_equal(out, _batch(2)[:, :, ::-1])


def test_every_listed_transform_exists_and_keeps_size():
    import albumentations as A

    for name in AUGMENTATIONS.values():
        assert hasattr(A, name), name
    check_augment(AugmentConfig(train=({"name": "RandomResizedCrop", "p": 1.0},)), S)  # size filled in


def test_size_changing_transform_is_config_error():
    with pytest.raises(ConfigError, match="changes the image shape"):
        check_augment(AugmentConfig(train=({"name": "RandomResizedCrop", "size": [8, 8], "p": 1.0},)), S)


def test_augment_is_deterministic_for_a_seed():
    cfg = AugmentConfig()  # the course's flip + brightness/contrast
    x = _batch(32)
    a1, a2, b = Augment(cfg, S, seed=3), Augment(cfg, S, seed=3), Augment(cfg, S, seed=4)
    out1, out2 = a1(x), a2(x)
    assert np.array_equal(out1, out2)
    assert np.array_equal(a1(x), a2(x))  # the next batch too
    assert not np.array_equal(out1, b(x))
    assert not np.array_equal(out1, x)  # something changed
    assert out1.dtype == np.uint8 and out1.shape == x.shape
    assert np.array_equal(x, _batch(32))  # the input is not modified


def test_augment_flip_and_empty_identity():
    x = _batch(4)
    assert np.array_equal(Augment(AugmentConfig(train=({"name": "HorizontalFlip", "p": 1.0},)), S, 0)(x), x[:, :, ::-1])
    assert np.array_equal(Augment(AugmentConfig(train=({"name": "HorizontalFlip", "p": 0.0},)), S, 0)(x), x)
    ident = Augment(AugmentConfig(train=()), S, seed=0)
    assert ident.pipeline is None
    assert ident(x) is x


def test_course_augment_flip_rate_is_about_half():
    x = np.zeros((400, S, S, 3), np.uint8)
    x[:, :, : S // 2] = 255  # left half white: a flip makes the right half white
    cfg = AugmentConfig(train=({"name": "HorizontalFlip", "p": 0.5},))
    out = Augment(cfg, S, seed=0)(x)
    flipped = (out[:, 0, -1, 0] == 255).mean()
    assert 0.4 < flipped < 0.6


def test_normalize_matches_formula():
    cfg = AugmentConfig()
    x = _batch(3)
    got = normalize(torch.from_numpy(x), cfg)
    want = (x.astype(np.float64) / 255 - np.array(cfg.mean)) / np.array(cfg.std)
    assert got.dtype == torch.float32 and tuple(got.shape) == x.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_normalize_custom_mean_std():
    cfg = AugmentConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)
    np.testing.assert_allclose(normalize(x, cfg).numpy().ravel(), [-1.0, 1.0, -0.6], atol=1e-6)
