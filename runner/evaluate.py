"""Evaluate a study's best checkpoint on an image folder.

``python -m runner.evaluate RESULTS_DIR|URI --data FOLDER [--variant V] [--seed S] [--out DIR]``

The checkpoint: among the variant's trials (default variant: the best mean best-val-accuracy in the
summary; ``--seed`` narrows to one trial), the one with the highest best val accuracy. The model is
rebuilt from the checkpoint's own config and classes; FOLDER is decoded at the checkpoint's image
size. A FOLDER with train/ and val/ is evaluated on val/, any other ``FOLDER/CLASS/*`` on every
image. Folder classes are matched to the model's by name: the folder may hold fewer classes, never
unknown ones. Writes metrics.json, confusion_matrix.json/.png and classification_report.txt into
``--out`` (default RESULTS_DIR/eval_FOLDERNAME). Bad input: one line on stderr, exit 2.

Also the checkpoint plumbing ``runner.predict`` shares: ``pick_checkpoint``, ``load_checkpoint``,
``probabilities``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import sys
from pathlib import Path

import numpy as np
import torch

from runner import storage, summary
from runner.config import ConfigError, TrialConfig
from runner.data import folder
from runner.data.augment import normalize
from runner.engine import EVAL_BATCH, evaluate
from runner.metrics import classification_report, confusion
from runner.model import build_model
from runner.trial import CHECKPOINT_FILE, read_checkpoint


def pick_checkpoint(results_dir: Path | str, variant: str | None = None, seed: int | None = None) -> tuple[Path, dict]:
    """(path of the best model.pt, its trial row) for ``variant`` (default: best mean) and optionally ``seed``.
    For a URI (s3://, gs://) the row's ``checkpoint_uri`` names it, and the path is a local copy."""
    if storage.is_uri(str(results_dir)):
        return _pick_remote(str(results_dir), variant, seed)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"{results_dir}: no such results dir")
    all_rows = summary.trial_rows(results_dir)
    if not all_rows:
        raise ConfigError(f"{results_dir}: no trial results here; give STORAGE/NAME of a study run with python -m runner.tune")
    rows = [r for r in all_rows if r["status"] != "error"]  # an errored trial's checkpoint is not trusted
    with_ckpt = [r for r in rows if r["checkpoint"]]
    if variant is None:
        ranked = [v for v in summary.variant_rows(rows) if v["mean"] is not None
                  and any(r["variant"] == v["variant"] for r in with_ckpt)]
        if not ranked:
            raise ConfigError(f"{results_dir}: no trial has a checkpoint yet")
        variant = max(ranked, key=lambda v: v["mean"])["variant"]
    known = list(dict.fromkeys(r["variant"] for r in all_rows))
    if variant not in known:
        raise ConfigError(f"--variant {variant!r}: not in {results_dir}; choose one of {', '.join(known)}")
    candidates = [r for r in with_ckpt if r["variant"] == variant and (seed is None or r["seed"] == seed)]
    if not candidates:
        raise ConfigError(f"{results_dir}: variant {variant!r}{'' if seed is None else f' seed {seed}'} has no checkpoint")
    best = max(candidates, key=lambda r: r["best_val_accuracy"] if r["best_val_accuracy"] is not None else -1.0)
    return results_dir / best["checkpoint"] / CHECKPOINT_FILE, best


def _pick_remote(uri: str, variant: str | None, seed: int | None) -> tuple[Path, dict]:
    """Pick from a copy of the results' small files, then fetch only the picked model.pt (removed at exit)."""
    results = storage.Results(uri)
    atexit.register(results.close)
    try:
        results.pull()
        try:
            path, row = pick_checkpoint(results.local, variant, seed)
        except ConfigError as e:
            raise ConfigError(str(e).replace(str(results.local), uri)) from None
        storage.download(results.join(row["checkpoint"]), path.parent, lambda rel: rel != CHECKPOINT_FILE)
    except OSError as e:
        raise ConfigError(f"{uri}: cannot read the results ({storage.first_line(e)}); check the URI and credentials") from None
    return path, {**row, "checkpoint_uri": results.join(row["checkpoint"], CHECKPOINT_FILE)}


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, TrialConfig, list[str], dict]:
    """(model in eval mode on the CPU, its trial config, class names, the raw checkpoint dict)."""
    try:
        ckpt = read_checkpoint(path)
        cfg = TrialConfig.from_dict(ckpt["config"])
        classes = list(ckpt["classes"])
        size = cfg.data.image_size
        model = build_model(cfg.model, size * size * 3, len(classes))
        model.load_state_dict(ckpt["model"])
    except Exception as e:  # noqa: BLE001 - whatever fails (unpickling, keys, shapes), the file is not one of ours
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{path}: not a runner checkpoint ({type(e).__name__}: {first[:200]})") from None
    return model.eval(), cfg, classes, ckpt


@torch.no_grad()
def probabilities(model: torch.nn.Module, images: np.ndarray, cfg: TrialConfig) -> np.ndarray:
    """Softmax class probabilities (N, classes) for uint8 images (N, S, S, 3), normalized as in training."""
    out = [torch.softmax(model(normalize(torch.from_numpy(images[i:i + EVAL_BATCH]), cfg.augment)), 1).numpy()
           for i in range(0, len(images), EVAL_BATCH)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def load_labelled(root: Path, size: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """(images, labels as the model's class indices, "path: why" of files that failed to decode, "val" or "all")."""
    if not root.is_dir():
        raise ConfigError(f"--data {root}: no such folder (give ROOT/CLASS/* or ROOT/train|val/CLASS/*)")
    found = folder.scan(root)
    idx = np.flatnonzero(found.is_val) if found.is_val is not None else np.arange(len(found.paths))
    names = [found.classes[found.labels[i]] for i in idx]
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ConfigError(f"--data {root}: classes {unknown} are unknown to the model, which knows {classes}")
    paths = [found.paths[i] for i in idx]
    images, ok, why = decode(paths, size)
    if not ok.any():
        raise ConfigError(f"--data {root}: none of {len(paths)} images could be decoded")
    labels = np.array([classes.index(n) for n, good in zip(names, ok) if good], dtype=np.int64)
    skipped = [f"{p}: {w}" for p, good, w in zip(paths, ok, why) if not good]
    return images, labels, skipped, "all" if found.is_val is None else "val"


def decode(paths: list[Path], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images of the files that decoded, ok mask per path, why each file failed ("" when it did not))."""
    images, decoded = folder.decode_all(paths, size)
    return images, np.array([d.ok for d in decoded], dtype=bool), [d.error for d in decoded]


def evaluate_folder(results_dir: Path, data: Path, out: Path, variant: str | None = None,
                    seed: int | None = None) -> dict:
    """Evaluate the picked checkpoint on ``data``; writes the files into ``out`` and returns metrics.json's dict."""
    ckpt_path, row = pick_checkpoint(results_dir, variant, seed)
    model, cfg, classes, ckpt = load_checkpoint(ckpt_path)
    images, labels, skipped, split = load_labelled(Path(data), cfg.data.image_size, classes)
    sums, preds = evaluate(model, images, labels, cfg.augment, torch.device("cpu"))
    cm = confusion(labels, preds, len(classes))
    report = classification_report(labels, preds, classes)
    metrics = {
        "accuracy": sums[1].item() / sums[2].item(), "loss": sums[0].item() / sums[2].item(), "images": len(labels),
        "split": split, "skipped_files": skipped, "data": str(data), "checkpoint": row.get("checkpoint_uri", str(ckpt_path)),
        "variant": row["variant"], "seed": row["seed"], "checkpoint_epoch": ckpt.get("epoch"),
        "checkpoint_val_accuracy": ckpt.get("val_accuracy"), "classes": classes,
        "per_class_recall": {c: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, c in enumerate(classes)},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "confusion_matrix.json").write_text(json.dumps({"classes": classes, "matrix": cm.tolist()}))
    (out / "classification_report.txt").write_text(report)
    _confusion_png(cm, classes, f"{row['variant']} seed {row['seed']} on {Path(data).name}", out / "confusion_matrix.png")
    return {**metrics, "report": report}


def _confusion_png(cm: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runner.tblog import confusion_figure

    fig = confusion_figure(cm, classes, 0)
    fig.axes[0].set_title(title, fontsize=9)
    fig.savefig(path, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runner.evaluate", description="Evaluate a study's best checkpoint on an image folder.")
    p.add_argument("results_dir", help="the study's results dir (STORAGE/NAME, a directory or s3:// / gs:// URI)")
    p.add_argument("--data", type=Path, required=True, help="image folder: ROOT/CLASS/* or ROOT/train|val/CLASS/* (val/ is used)")
    p.add_argument("--variant", help="variant whose best trial to use (default: the best mean val accuracy)")
    p.add_argument("--seed", type=int, help="use this seed's trial of the variant")
    p.add_argument("--out", type=Path, help="output dir (default RESULTS_DIR/eval_FOLDERNAME; ./eval_FOLDERNAME for a URI)")
    args = p.parse_args(argv)
    where = Path(".") if storage.is_uri(args.results_dir) else Path(args.results_dir)
    out = args.out or where / f"eval_{args.data.resolve().name}"
    try:
        m = evaluate_folder(args.results_dir, args.data, out, args.variant, args.seed)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"checkpoint  {m['checkpoint']} (variant {m['variant']}, seed {m['seed']}, epoch {m['checkpoint_epoch']}, "
          f"val accuracy {summary._f(m['checkpoint_val_accuracy'])})")
    print(f"data        {m['data']}: {m['images']} images" + (f", {len(m['skipped_files'])} unreadable skipped" if m["skipped_files"] else ""))
    if m["split"] == "all":
        print("note        the folder has no val/: evaluated on every image, including any the model was trained on")
    print(f"accuracy    {m['accuracy']:.3f} (loss {m['loss']:.3f})")
    print()
    print(m["report"])
    print(f"written     {out}: metrics.json, confusion_matrix.json, confusion_matrix.png, classification_report.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
