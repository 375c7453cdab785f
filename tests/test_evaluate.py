"""runner.evaluate and runner.predict on a hand-built results dir with real tiny checkpoints; no Ray.

``make_study`` builds a results dir in the layout ``python -m runner.tune`` leaves (study.json, trial dirs
with params.json, result.json, confusion_matrix.json, checkpoint_*/model.pt); test_report and
test_summary use it too.
"""

from __future__ import annotations

import csv
import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from runner import checkpoints, cli
from runner.config import ConfigError, ModelConfig, TrialConfig, apply_overrides
from runner.data.augment import normalize
from runner.inference import evaluate, pick, predict
from runner.trial.model import build_model

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["blue", "green", "red"]
SIZE = 8  # pixels; the MLP sees 8 * 8 * 3 = 192 inputs
COLOURS = {"blue": (30, 40, 220), "green": (40, 200, 50), "red": (220, 30, 40)}

# variant -> best val accuracy per seed 0, 1, 2. "better" beats "base" by 0.10-0.12 on every seed
# (paired t p = 0.0027, Holm x2 = 0.0055); "same" moves by 0.01, -0.02, 0.01.
BEST = {"base": [0.80, 0.82, 0.84], "better": [0.90, 0.93, 0.96], "same": [0.81, 0.80, 0.85]}


def colour_images(n: int, name: str, seed: int) -> np.ndarray:
    """n noisy solid-colour uint8 images (n, SIZE, SIZE, 3) of the class ``name``."""
    rng = np.random.default_rng(seed)
    return np.clip(np.array(COLOURS[name]) + rng.normal(0, 20, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def write_pngs(root: Path, per_class: int = 3, classes=CLASSES, seed: int = 1) -> Path:
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(colour_images(per_class, c, seed + k)):
            Image.fromarray(img).resize((16, 16)).save(root / c / f"{c}_{i}.png")  # decode resizes back to 8
    return root


def trial_config(seed: int) -> TrialConfig:
    return apply_overrides(TrialConfig(), {"data.image_size": SIZE, "model.hidden": [16], "train.seed": seed})


@functools.cache
def trained_state(seed: int) -> dict:
    """A tiny MLP that tells the three colours apart (trained in well under a second)."""
    torch.manual_seed(seed)
    cfg = trial_config(seed)
    model = build_model(cfg.model, SIZE * SIZE * 3, len(CLASSES))
    x = np.concatenate([colour_images(20, c, 100 + k) for k, c in enumerate(CLASSES)])
    y = torch.arange(len(CLASSES)).repeat_interleave(20)
    xb = normalize(torch.from_numpy(x), cfg.augment)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), y).backward()
        opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _epochs(best: float, n: int, status: str, train_gap: float) -> list[dict]:
    out = []
    for e in range(1, n + 1):
        val = best * (0.7 + 0.3 * e / n)
        out.append(
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "train_accuracy": min(1.0, val + train_gap * e / n),
                "val_loss": 1.2 / e,
                "val_accuracy": val,
                "best_val_accuracy": val,
                "best_epoch": e,
                "epoch_seconds": 0.5,
                "images_per_second": 100.0,
                "setup_seconds": 0.1,
                "status": status if e == n else "running",
                "time_total_s": 0.6 * e,
                "trial_id": "x",
            }
        )
    return out


def make_study(
    root: Path,
    variants: dict[str, list[float]] | None = None,
    seeds=(0, 1, 2),
    epochs: int = 3,
    checkpoints: bool = True,
    gaps: dict[str, float] | None = None,
) -> Path:
    """A results dir as python -m runner.tune leaves it: study.json and one dir per (variant, seed)."""
    variants = variants or BEST
    gaps = gaps or {}
    root.mkdir(parents=True, exist_ok=True)
    trials = []
    n = 0
    for order, (variant, accs) in enumerate(variants.items()):
        for seed, best in zip(seeds, accs):
            cfg = trial_config(seed)
            spec = {"variant": variant, "seed": seed, "data": "d0", "order": order, "trial": cfg.to_dict()}
            trials.append(spec)
            d = root / f"{variant}_seed{seed}_abcde_{n:05d}"
            n += 1
            d.mkdir()
            (d / "params.json").write_text(json.dumps({"spec": spec, "classes": {"d0": CLASSES}}))
            (d / "result.json").write_text(
                "".join(json.dumps(r) + "\n" for r in _epochs(best, epochs, "completed", gaps.get(variant, 0.05)))
            )
            diag = 4 + seed
            (d / "confusion_matrix.json").write_text(
                json.dumps({"epoch": epochs, "classes": CLASSES, "matrix": [[diag, 1, 0], [0, diag, 1], [1, 0, diag]]})
            )
            if checkpoints:
                (d / f"checkpoint_{epochs - 1:06d}").mkdir()
                torch.save(
                    {
                        "model": trained_state(seed),
                        "config": cfg.to_dict(),
                        "classes": CLASSES,
                        "epoch": epochs,
                        "val_accuracy": best,
                    },
                    d / f"checkpoint_{epochs - 1:06d}" / "model.pt",
                )
    (root / "study.json").write_text(
        json.dumps(
            {
                "command": ["runner/tune.py", "configs/x.py"],
                "git_commit": "0123abc",
                "study": root.name,
                "reference": next(iter(variants)),
                "seeds": list(seeds),
                "variants": {v: {} for v in variants},
                "trials": trials,
                "data": {"d0": {"source": "builtin:colours", "classes": CLASSES, "image_size": SIZE}},
                "versions": {"runner": "0.1.0", "torch": torch.__version__},
                "machine": {"cpus": 2, "hostname": "test"},
                "cluster": {"cpus": 2.0, "gpus": 0, "nodes": 1},
            }
        )
    )
    return root


@pytest.fixture
def study(tmp_path) -> Path:
    return make_study(tmp_path / "colours")


# --------------------------------------------------------------------------- picking the checkpoint


def test_pick_checkpoint_best_variant_and_seed(study):
    picked = pick.pick(study)
    row = picked.record
    assert row.variant == "better" and row.seed == 2  # best mean variant, its best seed (0.96)
    assert picked.path == study / row.checkpoint / "model.pt" and picked.path.exists()
    row = pick.pick(study, "base").record
    assert (row.variant, row.seed) == ("base", 2)
    row = pick.pick(study, "same", seed=1).record
    assert (row.variant, row.seed) == ("same", 1)


def crash(trial_dir: Path) -> None:
    """Make a trial look like one that raised during its last epoch."""
    lines = (trial_dir / "result.json").read_text().splitlines()
    last = {**json.loads(lines[-1]), "status": "running"}
    (trial_dir / "result.json").write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
    (trial_dir / "error.txt").write_text("Traceback (most recent call last):\nRuntimeError: boom\n")


def test_pick_checkpoint_skips_errored_trials(study):
    crash(next(study.glob("better_seed2_*")))
    assert pick.pick(study, "better").record.seed == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ({"variant": "nope"}, "choose one of base, better, same"),
        ({"variant": "base", "seed": 9}, "variant 'base' seed 9 has no checkpoint"),
    ],
)
def test_pick_checkpoint_errors(study, args, message):
    with pytest.raises(ConfigError, match=message):
        pick.pick(study, **args)


def test_pick_checkpoint_no_checkpoints(tmp_path):
    root = make_study(tmp_path / "s", checkpoints=False)
    with pytest.raises(ConfigError, match="no trial has a checkpoint"):
        pick.pick(root)


def test_load_checkpoint_rebuilds_the_model(study):
    model, cfg, classes, ckpt = pick.load_model(pick.pick(study).path)
    assert classes == CLASSES and cfg.data.image_size == SIZE and cfg.model == ModelConfig(hidden=(16,))
    assert not model.training
    assert model.net[1].in_features == SIZE * SIZE * 3 and ckpt["epoch"] == 3


def test_load_checkpoint_garbage(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a runner checkpoint"):
        pick.load_model(bad)


def test_a_checkpoint_the_trial_loop_writes_loads(tmp_path):
    """Written by the loop's own function, with the best epoch's predictions (a numpy array in the loop):
    torch.load(weights_only=True) once refused them, so evaluate failed on every real checkpoint."""
    from runner.study.plan import TrialSpec
    from runner.study.resources import Fit
    from runner.trial.engine import EarlyStopping, build_optimizer
    from runner.trial.loop import TrainingState, checkpoint_state

    cfg = trial_config(0)
    model = build_model(cfg.model, SIZE * SIZE * 3, len(CLASSES))
    model.load_state_dict(trained_state(0))
    spec = TrialSpec("base", 0, 0, "d0", tuple(CLASSES), cfg, Fit(1.0, 1.0, 0.0))
    progress = TrainingState(EarlyStopping(3), best_preds=np.array([0, 2, 1], dtype=np.int64))
    opt = build_optimizer(cfg.optim, model.parameters())
    state = checkpoint_state(spec, model, opt, progress, epoch=2, score=0.9)
    d = Path(checkpoints.save(state))
    loaded, _, classes, ckpt = pick.load_model(d / "model.pt")
    assert classes == CLASSES and ckpt["best_preds"] == [0, 2, 1]
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_a_checkpoint_holding_a_numpy_array_still_loads(tmp_path):
    """Checkpoints written before best_preds became a list keep working."""
    cfg = trial_config(0)
    torch.save(
        {
            "model": trained_state(0),
            "config": cfg.to_dict(),
            "classes": CLASSES,
            "epoch": 2,
            "best_preds": np.array([0, 2, 1]),
        },
        tmp_path / "model.pt",
    )
    _, _, _, ckpt = pick.load_model(tmp_path / "model.pt")
    assert list(ckpt["best_preds"]) == [0, 2, 1]


# --------------------------------------------------------------------------- evaluate


def test_evaluate_class_folder(study, tmp_path, capsys):
    data = write_pngs(tmp_path / "pics")
    (data / "red" / "broken.png").write_bytes(b"not an image")
    assert cli.command("evaluate", [str(study), "--data", str(data)]) == 0
    out = study / "eval_pics"
    m = json.loads((out / "metrics.json").read_text())
    assert m["accuracy"] == 1.0 and m["images"] == 9 and m["split"] == "all"
    assert len(m["skipped_files"]) == 1 and "broken.png" in m["skipped_files"][0]
    assert (m["variant"], m["seed"]) == ("better", 2)
    cm = json.loads((out / "confusion_matrix.json").read_text())
    assert cm["classes"] == CLASSES and cm["matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "precision" in (out / "classification_report.txt").read_text()
    text = capsys.readouterr().out
    assert "accuracy    1.000" in text and "no test/ or val/" in text


def test_evaluate_train_val_folder_uses_val_and_maps_classes_by_name(study, tmp_path):
    data = tmp_path / "tv"
    write_pngs(data / "train", per_class=2)
    write_pngs(data / "val", per_class=2, classes=["blue", "red"], seed=7)  # no green in val: indices shift
    m = evaluate.evaluate_folder(study, data, tmp_path / "out", variant="base")
    assert m["images"] == 4 and m["split"] == "val" and m["accuracy"] == 1.0
    cm = json.loads((tmp_path / "out" / "confusion_matrix.json").read_text())["matrix"]
    assert cm == [[2, 0, 0], [0, 0, 0], [0, 0, 2]]  # blue and red stay in the model's rows 0 and 2


def test_evaluate_unknown_class_is_an_error(study, tmp_path, capsys):
    data = write_pngs(tmp_path / "pics", classes=["blue", "red"])
    (data / "purple").mkdir()
    Image.new("RGB", (8, 8), (128, 0, 128)).save(data / "purple" / "p.png")
    assert cli.command("evaluate", [str(study), "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "['purple']" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["no results dir", "dir without results", "missing data", "no images"])
def test_evaluate_bad_input_one_line_exit_2(study, tmp_path, capsys, case):
    data = write_pngs(tmp_path / "pics")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    results, folder = {
        "no results dir": (tmp_path / "gone", data),
        "dir without results": (tmp_path / "pics", data),
        "missing data": (study, tmp_path / "nothing"),
        "no images": (study, empty),
    }[case]
    assert cli.command("evaluate", [str(results), "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


@pytest.mark.e2e
def test_evaluate_cli_no_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "runner.evaluate", str(tmp_path / "gone"), "--data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- predict


def test_predict_any_layout(study, tmp_path, capsys):
    data = tmp_path / "inbox"
    write_pngs(data / "deep" / "er", per_class=2)
    Image.fromarray(colour_images(1, "red", 5)[0]).save(data / "loose.png")
    (data / "broken.png").write_bytes(b"not an image")
    (data / "notes.txt").write_text("ignored")
    out = tmp_path / "preds.csv"
    assert cli.command("predict", [str(study), "--data", str(data), "--out", str(out)]) == 0
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == predict.COLUMNS
        rows = list(reader)
    assert len(rows) == 7  # 6 in class folders + loose.png; broken.png skipped
    assert "skipped 1 files" in capsys.readouterr().err
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["loose.png"]["predicted_class"] == "red"
    for r in rows:
        truth = Path(r["path"]).parent.name if r["path"].endswith("_0.png") or r["path"].endswith("_1.png") else "red"
        assert r["predicted_class"] == truth
        confs = [float(r["confidence"]), float(r["top2_confidence"]), float(r["top3_confidence"])]
        assert confs == sorted(confs, reverse=True) and sum(confs) == pytest.approx(1.0, abs=1e-3)
        assert {r["predicted_class"], r["top2_class"], r["top3_class"]} == set(CLASSES)


def test_predict_variant_and_default_out(study, tmp_path, monkeypatch):
    data = write_pngs(tmp_path / "pics", per_class=1)
    monkeypatch.chdir(tmp_path)
    assert cli.command("predict", [str(study), "--data", str(data), "--variant", "same"]) == 0
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("case", ["missing data", "no images", "no results"])
def test_predict_bad_input_one_line_exit_2(study, tmp_path, capsys, case):
    (tmp_path / "empty" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "x" / "a.txt").write_text("no images")
    results, folder = {
        "missing data": (study, tmp_path / "nothing"),
        "no images": (study, tmp_path / "empty"),
        "no results": (tmp_path / "empty", tmp_path / "empty"),
    }[case]
    assert cli.command("predict", [str(results), "--data", str(folder), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "p.csv").exists()


def test_prediction_rows_with_two_classes():
    rows = predict.prediction_rows([Path("a.png")], np.array([[0.3, 0.7]]), ["x", "y"])
    assert rows == [
        {
            "path": "a.png",
            "predicted_class": "y",
            "confidence": 0.7,
            "top2_class": "x",
            "top2_confidence": 0.3,
            "top3_class": "",
            "top3_confidence": "",
        }
    ]
