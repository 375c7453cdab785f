"""Honest numbers: a test split nothing is picked on, the metric that ranks variants, splits per seed,
convergence speed and grayscale studies, on real image folders."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, random_image, run_cli, run_main, save_image, write_study
from PIL import Image

from runner.config import ConfigError, DataConfig
from runner.data.audit import format_audit
from runner.data.source import load_images, load_pool, split
from runner.results.records import TrialRecord
from runner.results.status import Status
from runner.results.summary import summarize

S = 12


def _folder(root: Path, splits=(("train", 6), ("val", 2), ("test", 3)), classes=("cat", "dog"), mode="RGB") -> Path:
    """ROOT/SPLIT/CLASS/*.png with distinct random images."""
    for si, (name, n) in enumerate(splits):
        for ci, c in enumerate(classes):
            for i in range(n):
                img = random_image(10_000 * si + 1000 * ci + i)
                save_image(root / name / c / f"{i}.png", img.convert(mode) if mode != "RGB" else img)
    return root


def _flat(root: Path, n: int = 20, classes=("a", "b", "c")) -> Path:
    for ci, c in enumerate(classes):
        for i in range(n):
            save_image(root / c / f"{i}.png", random_image(1000 * ci + i))
    return root


# --------------------------------------------------------------------------- the test split


def test_a_test_folder_is_the_test_split(tmp_path):
    s = load_images(DataConfig(path=str(_folder(tmp_path / "f")), image_size=S))
    assert s.has_test and len(s.train_y) == 12 and len(s.val_y) == 4 and len(s.test_y) == 6
    assert np.bincount(s.test_y).tolist() == [3, 3]
    assert s.summary()["test_images"] == 6 and s.audit["images"] == {"train": 12, "val": 4, "test": 6}
    assert "6 test" in format_audit(s.audit)


def test_test_fraction_holds_out_a_stratified_test_split_the_same_for_every_seed(tmp_path):
    root = _flat(tmp_path / "f")
    cfg = DataConfig(path=str(root), image_size=S, test_fraction=0.25, split_per_seed=True)
    pool = load_pool(cfg)
    a, b = split(pool, cfg, seed=0), split(pool, cfg, seed=1)
    assert np.bincount(a.test_y).tolist() == [5, 5, 5]  # 25 % of each class
    assert np.array_equal(a.test_x, b.test_x)  # test is fixed: seeds compare on the same images
    assert not np.array_equal(a.val_x, b.val_x)  # val drawn per seed
    assert len(a.val_y) == len(b.val_y) == 9  # 20 % of each class's 15 remaining
    for s in (a, b):  # no image in two splits
        assert s.audit["duplicates"]["train_val"] == s.audit["duplicates"]["train_test"] == 0
        assert s.audit["duplicates"]["val_test"] == 0


def test_without_split_per_seed_every_seed_gets_the_same_split(tmp_path):
    cfg = DataConfig(path=str(_flat(tmp_path / "f")), image_size=S)
    pool = load_pool(cfg)
    assert np.array_equal(split(pool, cfg, seed=0).val_x, split(pool, cfg, seed=5).val_x)
    assert not split(pool, cfg).has_test  # test_fraction 0: no test split, as in the course


def test_split_per_seed_leaves_a_fixed_val_folder_alone(tmp_path):
    cfg = DataConfig(path=str(_folder(tmp_path / "f")), image_size=S, split_per_seed=True)
    pool = load_pool(cfg)
    assert np.array_equal(split(pool, cfg, seed=0).val_x, split(pool, cfg, seed=1).val_x)


def test_leakage_into_test_is_found_and_handled_by_the_policy(tmp_path):
    root = _folder(tmp_path / "f")
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "copy.png")
    shutil.copy(root / "val" / "dog" / "0.png", root / "test" / "dog" / "copy.png")
    warn = load_images(DataConfig(path=str(root), image_size=S))
    assert warn.audit["duplicates"]["train_test"] == 1 and warn.audit["duplicates"]["val_test"] == 1
    assert any("1 test image identical to a train image" in w for w in warn.audit["warnings"])
    assert any("1 test image identical to a val image" in w for w in warn.audit["warnings"])
    assert "same in train and test" in format_audit(warn.audit)
    with pytest.raises(ConfigError, match="test image identical to a train image"):
        load_images(DataConfig(path=str(root), image_size=S, leakage="fail"))
    drop = load_images(DataConfig(path=str(root), image_size=S, leakage="drop"))
    assert len(drop.test_y) == len(warn.test_y) - 2 and drop.audit["leakage"]["dropped_test"] == 2
    assert np.array_equal(drop.val_x, warn.val_x)  # val had no copy of a train image


# --------------------------------------------------------------------------- grayscale


def test_grayscale_decodes_to_one_channel_and_the_audit_counts_the_colour_images(tmp_path):
    root = _folder(tmp_path / "f")
    s = load_images(DataConfig(path=str(root), image_size=S, channels=1))
    assert s.train_x.shape[1:] == (S, S, 1) and s.test_x.shape[1:] == (S, S, 1) and s.summary()["channels"] == 1
    want = np.asarray(Image.open(root / "train" / "cat" / "0.png").convert("L").resize((S, S)))
    assert np.abs(s.train_x[0, ..., 0].astype(int) - want).mean() < 30  # the same picture, in gray
    assert s.audit["converted"] == {"RGB": 22} and s.audit["converted_across"] == 22
    assert any("22 colour images converted to grayscale (data.channels=1)" in w for w in s.audit["warnings"])
    assert "converted to grayscale" in format_audit(s.audit)


def test_an_rgb_study_of_gray_images_says_it_made_them_colour(tmp_path):
    s = load_images(DataConfig(path=str(_folder(tmp_path / "f", mode="L")), image_size=S))
    assert s.train_x.shape[1:] == (S, S, 3) and s.audit["converted_across"] == 22
    assert any("22 grayscale images converted to RGB" in w for w in s.audit["warnings"])


def test_grayscale_and_rgb_decodes_are_cached_apart(tmp_path):
    root = _folder(tmp_path / "f")
    rgb = load_images(DataConfig(path=str(root), image_size=S))
    gray = load_images(DataConfig(path=str(root), image_size=S, channels=1))
    assert not gray.cached and gray.train_x.shape[-1] == 1
    assert load_images(DataConfig(path=str(root), image_size=S)).cached and rgb.train_x.shape[-1] == 3


# --------------------------------------------------------------------------- records and the metric


def _record(variant: str, seed: int, vals: list[float], test: float | None = None) -> TrialRecord:
    best = max(vals)
    epochs = [{"epoch": i + 1, "val_accuracy": v, "best_val_accuracy": max(vals[: i + 1]), "images_per_second": 1.0,
               "status": "running"} for i, v in enumerate(vals)]  # fmt: skip
    epochs[-1] = {**epochs[-1], "status": "completed", "best_val_accuracy": best}
    if test is not None:
        epochs[-1]["test_accuracy"] = test
    return TrialRecord(variant, seed, 0, Status.COMPLETED, tuple(epochs))


def test_epochs_to_95_is_the_first_epoch_within_95_percent_of_the_best():
    assert _record("a", 0, [0.50, 0.80, 0.95, 1.00, 0.90]).epochs_to_95 == 3  # 0.95 >= 0.95 * 1.00
    assert _record("a", 0, [0.60, 0.40, 0.58]).epochs_to_95 == 1
    r = _record("a", 0, [0.5, 0.7], test=0.6)
    assert r.val_overestimate == pytest.approx(0.1) and r.row()["test_accuracy"] == 0.6 and r.row()["epochs_to_95"] == 2


def test_the_metric_ranks_and_decides():
    """Variant b is better on val but worse on test on every seed: the verdict follows the study's metric."""
    records = [_record("a", s, [0.50, 0.60 + 0.01 * s], test=0.70 + 0.01 * s) for s in range(6)]
    records += [_record("b", s, [0.50, 0.70 + 0.01 * s], test=0.60 + 0.011 * s) for s in range(6)]
    by_val = {v.variant: v for v in summarize(records)}
    by_test = {v.variant: v for v in summarize(records, metric="test_accuracy")}
    assert by_val["b"].verdict == "better" and by_val["b"].metric == "best_val_accuracy"
    assert by_test["b"].verdict == "worse" and by_test["b"].mean == pytest.approx(
        np.mean([0.60 + 0.011 * s for s in range(6)])
    )
    assert by_val["b"].val_overestimate.mean == pytest.approx(0.70 + 0.025 - (0.60 + 0.011 * 2.5))
    assert by_val["a"].epochs_to_95.mean == 2.0 and by_val["b"].epochs_to_95.verdict == "no detectable difference"


# --------------------------------------------------------------------------- bad input, one line each


def _dry(tmp_path: Path, *args: str) -> str:
    proc = run_main("configs/smoke.py", "--dry-run", "--storage", str(tmp_path / "out"), *args, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    return proc.stderr


def test_test_folder_with_a_class_train_lacks(tmp_path):
    root = _folder(tmp_path / "f")
    save_image(root / "test" / "bird" / "0.png", random_image(5))
    err = _dry(tmp_path, "--set", f"data.path={root}")
    assert "classes ['bird'] are in test but not in train" in err


@pytest.mark.parametrize(
    "setting, message",
    [
        ("data.test_fraction=0.8", "data.val_fraction + data.test_fraction=1.0 (variant 'base'): must be < 1"),
        ("data.channels=2", "data.channels=2 (variant 'base'): must be 1 (grayscale) or 3 (RGB)"),
        ("data.test_fraction=-0.1", "data.test_fraction=-0.1 (variant 'base'): must be a fraction in [0, 1)"),
    ],
)
def test_bad_data_settings(tmp_path, setting, message):
    assert message in _dry(tmp_path, "--set", setting)


def test_metric_test_accuracy_without_a_test_split(tmp_path):
    study = write_study(tmp_path / "s.py", """
        study = Study(name="m", base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8)),
                      metric="test_accuracy")
    """)  # fmt: skip
    proc = run_main(str(study), "--dry-run", "--storage", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2 and "metric='test_accuracy': builtin:digits has no test split" in proc.stderr
    ok = run_main(str(study), "--dry-run", "--storage", str(tmp_path / "out"), "--set", "data.test_fraction=0.2")
    assert ok.returncode == 0, ok.stderr
    assert " test images" in ok.stdout


def test_unknown_metric(tmp_path):
    study = write_study(tmp_path / "s.py", 'study = Study(name="m", metric="accuracy")\n')
    proc = run_main(str(study), "--dry-run", "--storage", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2
    assert "metric='accuracy': choose one of best_val_accuracy, test_accuracy, final_val_accuracy" in proc.stderr


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
def test_grayscale_study_on_a_train_val_test_folder_ranked_by_test_accuracy(tmp_path):
    root = _folder(tmp_path / "f", splits=(("train", 12), ("val", 4), ("test", 4)))
    study = write_study(tmp_path / "s.py", f"""
        study = Study(
            name="gray",
            base=TrialConfig(data=DataConfig(path={str(root)!r}, image_size=8, channels=1),
                             model=ModelConfig(hidden=(16,)), train=TrainConfig(epochs=3, batch_size=8)),
            variants={{"a": {{}}, "b": {{"optim.lr": 0.01}}}},
            seeds=(0, 1),
            metric="test_accuracy",
        )
    """)  # fmt: skip
    proc = run_cli(str(study), "--storage", str(tmp_path / "out"), "--name", "gray", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "24 train / 8 val / 8 test images, 2 classes, 8x8 grayscale" in proc.stdout
    assert "ranked by test_accuracy" in proc.stdout and "ranked by epochs_to_95" in proc.stdout
    results = tmp_path / "out" / "gray"
    rows = list(csv.DictReader(open(results / "summary.csv")))
    assert len(rows) == 4 and all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    assert all(1 <= int(r["epochs_to_95"]) <= 3 for r in rows)
    trial = results / rows[0]["trial_dir"]
    assert "precision" in (trial / "test_classification_report.txt").read_text()
    md = (results / "summary.md").read_text()
    assert "`test_accuracy` ranks the variants" in md and "## Test split and convergence" in md
    # the grayscale model evaluates a folder as it was trained: one channel, on the folder's test/
    ev = subprocess.run([sys.executable, "-m", "runner.evaluate", str(results), "--data", str(root)],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    assert "8 images of test/" in ev.stdout


def test_max_seeds_below_the_seeds(tmp_path):
    study = write_study(
        tmp_path / "s.py", 'study = Study(name="m", variants={"a": {}, "b": {}}, seeds=(0, 1, 2), max_seeds=2)\n'
    )
    proc = run_main(str(study), "--dry-run", "--storage", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert (
        "max_seeds=2 with seeds=(0, 1, 2): sequential seeds need 2 <= len(seeds) <= max_seeds; raise max_seeds"
        in proc.stderr
    )


def test_a_test_folder_wins_over_test_fraction(tmp_path, caplog):
    s = load_images(DataConfig(path=str(_folder(tmp_path / "f")), image_size=S, test_fraction=0.3))
    assert len(s.test_y) == 6  # the folder's own test/, nothing held out of train
    assert "data.test_fraction=0.3 is not used" in caplog.text
