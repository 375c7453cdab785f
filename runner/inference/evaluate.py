"""Evaluate a study's best checkpoint on an image folder.

``python -m runner.evaluate RESULTS_DIR|URI --data FOLDER [--variant V] [--seed S] [--out DIR]``

The checkpoint: among the variant's trials (default variant: the best mean best-val-accuracy in the
summary; ``--seed`` narrows to one trial), the one with the highest best val accuracy. The model is
rebuilt from the checkpoint's own config and classes; FOLDER is decoded at the checkpoint's image
size and channels. A FOLDER with test/ is evaluated on test/, else one with val/ on val/, any other
``FOLDER/CLASS/*`` on every image. Folder classes are matched to the model's by name: the folder may hold fewer classes, never
unknown ones. Writes metrics.json, confusion_matrix.json/.png and classification_report.txt into
``--out`` (default RESULTS_DIR/eval_FOLDERNAME). Bad input: one line on stderr, exit 2.

The checkpoint is picked and loaded by runner.inference.pick; ``probabilities`` is shared with runner.inference.predict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from runner import checkpoints, storage
from runner.config import ConfigError, TrialConfig
from runner.data import folder
from runner.data.augment import normalize
from runner.data.split import TEST, VAL
from runner.inference import pick
from runner.results import files, render
from runner.trial.engine import EVAL_BATCH, evaluate
from runner.trial.metrics import classification_report, confusion


@torch.no_grad()
def probabilities(model: torch.nn.Module, images: np.ndarray, cfg: TrialConfig) -> np.ndarray:
    """Softmax class probabilities (N, classes) for uint8 images (N, S, S, C), normalized as in training."""
    out = [
        torch.softmax(model(normalize(torch.from_numpy(images[i : i + EVAL_BATCH]), cfg.augment)), 1).numpy()
        for i in range(0, len(images), EVAL_BATCH)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def load_labelled(root: Path, size: int, classes: list[str], channels: int = 3) -> tuple:
    """(images, labels as the model's class indices, "path: why" of files that failed to decode, the split used:
    "test" when the folder has test/, else "val" when it has val/, else "all")."""
    if not root.is_dir():
        raise ConfigError(f"--data {root}: no such folder (give ROOT/CLASS/* or ROOT/train|val|test/CLASS/*)")
    found = folder.scan(root)
    split = next((name for code, name in ((TEST, "test"), (VAL, "val")) if (found.split == code).any()), "all")
    idx = (
        np.arange(len(found.paths))
        if split == "all"
        else np.flatnonzero(found.split == (TEST if split == "test" else VAL))
    )
    names = [found.classes[found.labels[i]] for i in idx]
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ConfigError(f"--data {root}: classes {unknown} are unknown to the model, which knows {classes}")
    paths = [found.paths[i] for i in idx]
    images, ok, why = folder.decode_checked(paths, size, channels)
    if not ok.any():
        raise ConfigError(f"--data {root}: none of {len(paths)} images could be decoded")
    labels = np.array([classes.index(n) for n, good in zip(names, ok) if good], dtype=np.int64)
    skipped = [f"{p}: {w}" for p, good, w in zip(paths, ok, why) if not good]
    return images, labels, skipped, split


def evaluate_folder(
    results_dir: Path, data: Path, out: Path, variant: str | None = None, seed: int | None = None
) -> dict:
    """Evaluate the picked checkpoint on ``data``; writes the files into ``out`` and returns metrics.json's dict."""
    picked = pick.pick(results_dir, variant, seed)
    model, cfg, classes, ckpt = pick.load_model(picked.path)
    images, labels, skipped, split = load_labelled(Path(data), cfg.data.image_size, classes, cfg.data.channels)
    sums, preds = evaluate(model, images, labels, cfg.augment, torch.device("cpu"))
    cm = confusion(labels, preds, len(classes))
    report = classification_report(labels, preds, classes)
    metrics = {
        "accuracy": sums[1].item() / sums[2].item(),
        "loss": sums[0].item() / sums[2].item(),
        "images": len(labels),
        "split": split,
        "skipped_files": skipped,
        "data": str(data),
        "checkpoint": picked.source,
        "variant": picked.record.variant,
        "seed": picked.record.seed,
        "checkpoint_epoch": ckpt.get(checkpoints.EPOCH),
        "checkpoint_val_accuracy": ckpt.get(checkpoints.SCORE),
        "classes": classes,
        "per_class_recall": {
            c: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, c in enumerate(classes)
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / files.CONFUSION).write_text(json.dumps({"classes": classes, "matrix": cm.tolist()}))
    (out / files.CLASS_REPORT).write_text(report)
    _confusion_png(
        cm,
        classes,
        f"{picked.record.variant} seed {picked.record.seed} on {Path(data).name}",
        out / "confusion_matrix.png",
    )
    return {**metrics, "report": report}


def _confusion_png(cm: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runner.results.figures import confusion_figure

    fig = confusion_figure(cm, classes, 0)
    fig.axes[0].set_title(title, fontsize=9)
    fig.savefig(path, format="png")
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="the study's results dir (STORAGE/NAME, a directory or s3:// / gs:// URI)")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="image folder: ROOT/CLASS/* or ROOT/train|val|test/CLASS/* (test/ is used, else val/)",
    )
    p.add_argument("--variant", help="variant whose best trial to use (default: the best mean val accuracy)")
    p.add_argument("--seed", type=int, help="use this seed's trial of the variant")
    p.add_argument(
        "--out", type=Path, help="output dir (default RESULTS_DIR/eval_FOLDERNAME; ./eval_FOLDERNAME for a URI)"
    )


def run(args: argparse.Namespace) -> int:
    where = Path(".") if storage.is_uri(args.results_dir) else Path(args.results_dir)
    out = args.out or where / f"eval_{args.data.resolve().name}"
    try:
        m = evaluate_folder(args.results_dir, args.data, out, args.variant, args.seed)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"checkpoint  {m['checkpoint']} (variant {m['variant']}, seed {m['seed']}, epoch {m['checkpoint_epoch']}, "
        f"val accuracy {render.fmt(m['checkpoint_val_accuracy'])})"
    )
    print(
        f"data        {m['data']}: {m['images']} images"
        + ("" if m["split"] == "all" else f" of {m['split']}/")
        + (f", {len(m['skipped_files'])} unreadable skipped" if m["skipped_files"] else "")
    )
    if m["split"] == "all":
        print(
            "note        the folder has no test/ or val/: evaluated on every image, including any the model was trained on"
        )
    print(f"accuracy    {m['accuracy']:.3f} (loss {m['loss']:.3f})")
    print()
    print(m["report"])
    print(f"written     {out}: metrics.json, confusion_matrix.json, confusion_matrix.png, classification_report.txt")
    return 0
