"""A corpus of bad inputs, as a user would give them.

Configs, flags and folders the study cannot run on: the CLI prints one line ``error: ...`` that says
what, where and how to fix it, with exit code 2 and no traceback (checked with --dry-run, which
starts no Ray). Bad image files are not fatal: they are skipped or converted, the good files still
load, and the audit lists each one with the reason (checked on load_images, then once through the CLI).
Binary files are generated here, in tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, random_image, run_cli, run_main, save_image, train_val_folder
from PIL import Image

from runner.config import ConfigError, DataConfig
from runner.data.audit import format_audit
from runner.data.source import load_images

S = 16


_img, _save = random_image, save_image


def _good_folder(root: Path, **kw) -> Path:
    return train_val_folder(root, **{"n_train": 3, "n_val": 1, **kw})


def _cli_error(tmp_path: Path, *args: str) -> str:
    """Run the CLI with --dry-run; assert exit 2 with one line on stderr and no traceback; return that line."""
    proc = run_main(*args, "--dry-run", "--storage", str(tmp_path / "results"), timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


# --------------------------------------------------------------------------- config files


STUDY_HEAD = "from runner.config import DataConfig, ModelConfig, Study, TrainConfig, TrialConfig\n"

CONFIG_FILES = [
    pytest.param("study = Study(name='x',,)\n", "bad.py:2: syntax error", id="syntax-error"),
    pytest.param("x = 1\n", "bad.py: defines no `study`; add `study = Study(", id="no-study"),
    pytest.param(
        "study = Study(name='x', confirm=2)\n",
        "bad.py:2: Study() has no field 'confirm'; confirm belongs to Search(...)",
        id="field-of-another-class",
    ),
    pytest.param(
        "study = Study(name='x', bogus=1)\n",
        "bad.py:2: Study() has no field 'bogus'; Study takes name, base, variants, seeds,",
        id="no-such-field",
    ),
    pytest.param(
        "study = Study(name='x', variants={'a': {}, 'b': {'model.dropot': 0.1}})\n",
        "variant 'b': unknown key 'model.dropot' (did you mean 'model.dropout'?)",
        id="variant-unknown-key",
    ),
    pytest.param(
        "study = Study(name='x', variants={'a': {'optim.lr': -1}})\n",
        "optim.lr=-1.0 (variant 'a'): must be > 0",
        id="variant-out-of-range",
    ),
    pytest.param(
        "study = Study(name='x', base=TrialConfig(model=ModelConfig(dropout='0.1')))\n",
        "base: model.dropout='0.1': expected a finite number",
        id="wrong-type-in-file",
    ),
    pytest.param(
        "study = Study(name='x', base=TrialConfig(model=ModelConfig(dropot=0.1)))\n",
        "bad.py:2: ModelConfig() has no field 'dropot'; did you mean dropout=?",
        id="unknown-argument-in-file",
    ),
    pytest.param("import numpy\nraise RuntimeError('boom')\n", "bad.py:3: RuntimeError: boom", id="exception-in-file"),
    pytest.param("study = {'name': 'x'}\n", "`study` must be a runner.config.Study, got dict", id="study-not-a-study"),
    pytest.param("study = Study(name='has space')\n", "name='has space' must be a non-empty name", id="bad-study-name"),
]


@pytest.mark.parametrize("body, fragment", CONFIG_FILES)
def test_bad_config_file(tmp_path, body, fragment):
    config = tmp_path / "bad.py"
    config.write_text(STUDY_HEAD + body)
    assert fragment in _cli_error(tmp_path, str(config))


@pytest.mark.parametrize(
    "config, fragment",
    [
        pytest.param(
            "configs/nope.py", "configs/nope.py: no such config file (try configs/init_study.py)", id="missing-config"
        ),
        pytest.param("configs", "configs: is a directory; give a study file inside it", id="config-is-a-directory"),
        pytest.param("README.md", "README.md: a study config is a Python file", id="config-not-python"),
    ],
)
def test_bad_config_path(tmp_path, config, fragment):
    assert fragment in _cli_error(tmp_path, config)


# --------------------------------------------------------------------------- flags and --set


# fmt: off
BAD_FLAGS = [
    pytest.param(["--set", "model.dropout"], "--set 'model.dropout': expected KEY=VALUE", id="set-without-equals"),
    pytest.param(["--set", "=0.1"], "expected KEY=VALUE", id="set-without-key"),
    pytest.param(["--set", "model.hidden=abc"], "--set: model.hidden='abc': expected a list, e.g. [512, 128]", id="set-wrong-type"),
    pytest.param(["--set", "train.epochs=2.5"], "train.epochs=2.5: expected a whole number", id="set-fraction-for-int"),
    pytest.param(["--set", "optim.lrr=0.1"], "unknown key 'optim.lrr' (did you mean 'optim.lr'?)", id="set-unknown-key"),
    pytest.param(["--set", "model.dropout=1.0"], "model.dropout=1.0 (variant 'base'): must be in [0, 1)", id="dropout-1"),
    pytest.param(["--set", "model.dropout=-0.1"], "model.dropout=-0.1 (variant 'base'): must be in [0, 1)", id="dropout-negative"),
    pytest.param(["--set", "optim.lr=0"], "optim.lr=0.0 (variant 'base'): must be > 0", id="lr-zero"),
    pytest.param(["--set", "train.epochs=0"], "train.epochs=0 (variant 'base'): must be >= 1", id="epochs-zero"),
    pytest.param(["--set", "data.image_size=4"], "data.image_size=4 (variant 'base'): must be between 8 and 512", id="tiny-image"),
    pytest.param(["--set", "model.init=zeros"], "choose one of default, xavier_uniform, kaiming_normal, uniform", id="unknown-init"),
    pytest.param(["--set", "optim.name=rmsprop"], "optim.name='rmsprop' (variant 'base'): choose one of adam, adamw, sgd", id="unknown-optimizer"),
    pytest.param(["--set", "data.leakage=ignore"], "data.leakage='ignore' (variant 'base'): choose one of warn, fail, drop", id="unknown-leakage"),
    pytest.param(["--max-concurrent", "0"], "--max-concurrent 0: must be >= 1", id="max-concurrent-zero"),
]
# fmt: on


@pytest.mark.parametrize("args, fragment", BAD_FLAGS)
def test_bad_flag(tmp_path, args, fragment):
    assert fragment in _cli_error(tmp_path, "configs/smoke.py", *args)


def test_unknown_augmentation(tmp_path):
    err = _cli_error(tmp_path, "configs/smoke.py", "--set", 'augment.train=[{"name": "Flipp"}]')
    assert "augment.train[0]: unknown transform 'Flipp'; choose from" in err and "HorizontalFlip" in err


def test_unwritable_storage(tmp_path):
    (tmp_path / "a_file").write_text("x")
    proc = run_main("configs/smoke.py", "--dry-run", "--storage", str(tmp_path / "a_file" / "runs"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: --storage {tmp_path / 'a_file' / 'runs'}: cannot write there (Not a directory); "
        "pass --storage with a writable directory"
    )


@pytest.mark.e2e  # joins (tries to join) a Ray cluster, so not a unit test
def test_unreachable_address(tmp_path):
    proc = run_cli("configs/smoke.py", "--address", "127.0.0.1:1", "--storage", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: --address 127.0.0.1:1: cannot connect to a Ray cluster" in proc.stderr


@pytest.mark.e2e
def test_unreachable_ray_address_from_the_environment(tmp_path):
    """Without --address the CLI joins $RAY_ADDRESS, as ray.init does (`ray job submit` sets it for its
    entrypoint): it used to start a local Ray with num_cpus and die in ray.init's ValueError."""
    proc = run_cli("configs/smoke.py", "--storage", str(tmp_path), timeout=120, env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: RAY_ADDRESS=127.0.0.1:1: cannot connect to a Ray cluster")
    ), proc.stderr[-2000:]


# --------------------------------------------------------------------------- folders the study cannot use


def _val_class_missing_from_train(root: Path) -> None:
    _good_folder(root)
    _save(root / "val" / "bird" / "0.png", _img(9))


def _single_class(root: Path) -> None:
    for i in range(4):
        _save(root / "only" / f"{i}.png", _img(i))


def _only_non_images(root: Path) -> None:
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        (root / c / "labels.csv").write_text("a,b\n")
        (root / c / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")


def _every_image_unreadable(root: Path) -> None:
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        (root / c / "a.jpg").write_bytes(b"")
        (root / c / "b.png").write_text("not a png")


def _train_without_val(root: Path) -> None:
    _good_folder(root, n_val=0)
    save_image(root / "test" / "cat" / "0.png", random_image(777))


def test_train_and_test_without_val_holds_out_part_of_train(tmp_path):
    """The common train/ + test/ layout: val is held out of train/ (data.val_fraction); test/ is the test split."""
    root = tmp_path / "imgs"
    _train_without_val(root)
    proc = run_main(
        "configs/smoke.py",
        "--dry-run",
        "--storage",
        str(tmp_path / "out"),
        "--set",
        f"data.path={root}",
        "--set",
        "data.val_fraction=0.34",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "has train/ but no val/: holding out data.val_fraction of train/ per class as val" in proc.stderr
    assert "not used" not in proc.stderr
    assert "4 train / 2 val / 1 test images, 2 classes" in proc.stdout


def _leaky(root: Path) -> None:
    _good_folder(root)
    (root / "val" / "cat" / "copy.png").write_bytes((root / "train" / "cat" / "0.png").read_bytes())


@pytest.mark.parametrize(
    "build, extra, fragment",
    [
        pytest.param(
            _val_class_missing_from_train,
            [],
            "classes ['bird'] are in val but not in train; add them to train/",
            id="val-class-missing-from-train",
        ),
        pytest.param(_single_class, [], "found 1 class folder(s) with images; need at least 2", id="single-class"),
        pytest.param(
            _only_non_images,
            [],
            "found 0 class folder(s) with images (4 other files ignored, e.g. cat/labels.csv; images end in",
            id="only-non-image-files",
        ),
        pytest.param(
            _every_image_unreadable,
            [],
            "none of the 4 image files could be decoded (e.g. ",
            id="every-image-unreadable",
        ),
        pytest.param(
            _leaky,
            ["--set", "data.leakage=fail"],
            "1 val image identical to a train image (val/cat/copy.png = train/cat/0.png); remove them from the folder, "
            "or pass --set data.leakage=drop",
            id="leakage-fail",
        ),
    ],
)
def test_bad_folder(tmp_path, build, extra, fragment):
    root = tmp_path / "imgs"
    root.mkdir()
    build(root)
    assert fragment in _cli_error(tmp_path, "configs/smoke.py", "--set", f"data.path={root}", *extra)


@pytest.mark.parametrize(
    "path, fragment",
    [
        pytest.param("/no/such/folder", "data.path='/no/such/folder': no such folder", id="missing-data-path"),
        pytest.param(
            str(ROOT / "README.md"), "README.md': is a file, not a folder of class folders", id="data-path-is-a-file"
        ),
        pytest.param(
            "builtin:mnist",
            "unknown built-in dataset; choose one of builtin:lesions, builtin:digits",
            id="unknown-builtin",
        ),
    ],
)
def test_bad_data_path(tmp_path, path, fragment):
    assert fragment in _cli_error(tmp_path, "configs/smoke.py", "--set", f"data.path={path}")


# --------------------------------------------------------------------------- bad image files: skipped or converted, listed


def _png_bytes(img: Image.Image, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _palette_with_transparency() -> Image.Image:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    return im


# name -> (make it under a class folder, where the audit reports it, what it says)
BAD_FILES = {
    "zero-byte-jpg": (lambda d: (d / "zero.jpg").write_bytes(b""), "unreadable", "zero.jpg (empty file, 0 bytes)"),
    "truncated-png": (
        lambda d: (d / "trunc.png").write_bytes(_png_bytes(_img(5, 64))[:300]),
        "unreadable",
        "trunc.png (truncated)",
    ),
    "text-as-jpg": (
        lambda d: (d / "page.jpg").write_text("<html><body>404 Not Found</body></html>\n"),
        "unreadable",
        "page.jpg (a text file, not an image)",
    ),
    "random-bytes-png": (
        lambda d: (d / "noise.png").write_bytes(bytes(range(256)) * 4),
        "unreadable",
        "noise.png (not an image (unknown format))",
    ),
    "png-header-then-garbage": (
        lambda d: (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
        "unreadable",
        "bad.png (corrupt (starts like an image, header unreadable))",
    ),
    "directory-named-like-image": (
        lambda d: (d / "folder.jpg").mkdir(),
        "unreadable",
        "folder.jpg (a folder named like an image)",
    ),
    "broken-symlink": (
        lambda d: os.symlink("gone.png", d / "link.png"),
        "unreadable",
        "link.png (broken symlink to gone.png)",
    ),
    "symlink-loop": (lambda d: os.symlink("loop.png", d / "loop.png"), "unreadable", "loop.png (symlink loop)"),
    "cmyk-jpeg": (lambda d: _save(d / "cmyk.jpg", _img(6).convert("CMYK")), "converted", "CMYK"),
    "16-bit-png": (
        lambda d: _save(d / "g16.png", Image.fromarray((np.arange(400).reshape(20, 20) * 150).astype(np.uint16))),
        "converted",
        "I;16",
    ),
    "palette-png-with-transparency": (
        lambda d: _save(d / "pal.png", _palette_with_transparency(), transparency=0),
        "converted",
        "P",
    ),
    "rgba-png": (lambda d: _save(d / "rgba.png", Image.new("RGBA", (20, 20), (200, 0, 0, 0))), "converted", "RGBA"),
    "grayscale-jpeg": (lambda d: _save(d / "gray.jpg", _img(7).convert("L")), "converted", "L"),
    "hidden-files": (
        lambda d: [(d / ".DS_Store").write_bytes(b"\x00"), (d / "._0.png").write_bytes(b"\x00")],
        "hidden",
        ".DS_Store",
    ),
    "non-image-file": (lambda d: (d / "notes.txt").write_text("x"), "ignored", "notes.txt"),
    "empty-class-folder": (lambda d: (d.parent / "empty_class").mkdir(), "empty_class_folders", "train/empty_class"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_is_listed_and_the_good_files_still_load(tmp_path, name):
    make, key, fragment = BAD_FILES[name]
    root = _good_folder(tmp_path / "imgs")
    make(root / "train" / "cat")
    s = load_images(DataConfig(path=str(root), image_size=S))
    converted = 1 if key == "converted" else 0
    assert len(s.train_y) == 6 + converted and len(s.val_y) == 2  # every good image, plus a converted one
    a = s.audit
    if key == "unreadable":
        assert [f"{u['path']} ({u['reason']})" for u in a["unreadable"]] == [f"train/cat/{fragment}"]
        assert len(s.skipped) == 1 and s.summary()["skipped_files"] == s.skipped
    elif key == "converted":
        assert a["converted"] == {fragment: 1} and a["unreadable"] == []
    elif key in ("hidden", "ignored"):
        assert any(fragment in p for p in a[key]["examples"]) and a["unreadable"] == []
    else:
        assert a[key] == [fragment]
    assert fragment.split(" (")[0] in format_audit(a)


def test_partly_corrupt_folder_keeps_its_good_images(tmp_path):
    root = _good_folder(tmp_path / "imgs", n_train=5, n_val=2)
    for name in BAD_FILES:
        make, _, _ = BAD_FILES[name]
        make(root / "train" / "cat")
    s = load_images(DataConfig(path=str(root), image_size=S))
    unreadable = [k for k, (_, where, _) in BAD_FILES.items() if where == "unreadable"]
    converted = [k for k, (_, where, _) in BAD_FILES.items() if where == "converted"]
    assert len(s.train_y) == 10 + len(converted) and len(s.val_y) == 4
    assert len(s.audit["unreadable"]) == len(s.skipped) == len(unreadable)
    assert sum(s.audit["converted"].values()) == len(converted)
    assert s.train_x.dtype == np.uint8 and s.train_x.shape[1:] == (S, S, 3)
    assert any("could not be read" in w for w in s.audit["warnings"])


def test_partly_corrupt_folder_through_the_cli(tmp_path):
    root = _good_folder(tmp_path / "imgs", n_train=5, n_val=2)
    for make, _, _ in BAD_FILES.values():
        make(root / "train" / "cat")
    proc = run_main(
        "configs/smoke.py", "--dry-run", "--storage", str(tmp_path / "out"), "--set", f"data.path={root}", timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # nothing logged per bad file: the audit lists them
    assert "8 unreadable files skipped" in proc.stdout and "1 non-image file ignored" in proc.stdout
    assert "dry run: nothing started" in proc.stdout


def test_dry_run_prints_the_audit(tmp_path):
    root = _good_folder(tmp_path / "imgs")
    (root / "train" / "cat" / "zero.jpg").write_bytes(b"")
    proc = run_main(
        "configs/smoke.py", "--dry-run", "--storage", str(tmp_path / "out"), "--set", f"data.path={root}", timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "unreadable, skipped" in proc.stdout and "train/cat/zero.jpg (empty file, 0 bytes)" in proc.stdout
    assert "same in train and val" in proc.stdout


def test_leakage_fail_is_a_config_error_in_the_library(tmp_path):
    root = tmp_path / "imgs"
    _leaky(root)
    with pytest.raises(ConfigError, match="1 val image identical to a train image"):
        load_images(DataConfig(path=str(root), image_size=S, leakage="fail"))


def test_resume_check_treats_a_key_added_since_as_its_default(tmp_path):
    """A study run before a setting existed (its study.json lacks the key) still resumes; a changed value does not."""
    import json

    from runner.config import ConfigError, Study
    from runner.study.plan import grow, make_plan
    from runner.study.resources import Cluster

    study = Study(name="x", seeds=(0,))
    plan = make_plan(study, study.trials(), [("d0", ["a", "b"])], Cluster(cpus=2, gpus=0, node_cpus=2, node_gpus=0))
    before = json.loads(json.dumps(plan.specs[0].to_param()))
    del before["trial"]["train"]["checkpoint_every"]
    assert grow(plan, [before], "configs/x.py").new == ()
    every = json.loads(json.dumps(plan.specs[0].to_param()))
    every["trial"]["train"]["checkpoint_every"] = 1  # how often a trial saves does not change what it learns
    assert grow(plan, [every], "configs/x.py").new == ()
    changed = json.loads(json.dumps(before))
    changed["trial"]["train"]["epochs"] = 3
    with pytest.raises(ConfigError, match=r"variant 'base' \(train.epochs: 3 -> 10\)"):
        grow(plan, [changed], "configs/x.py")
