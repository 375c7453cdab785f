"""Label every image under a folder with a study's best checkpoint.

``python -m runner.predict RESULTS_DIR --data FOLDER [--out predictions.csv] [--variant V] [--seed S]``

Any layout: every image file under FOLDER (recursively) gets a CSV row with its path, the predicted
class and its softmax probability, and the second and third most probable classes. The checkpoint
is picked as in ``runner.evaluate``. Files that cannot be decoded are skipped and counted on stderr.
Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from runner.config import ConfigError
from runner.data import folder
from runner.inference import pick
from runner.inference.evaluate import probabilities

MAX_LISTED = 10  # undecodable files named on stderr
COLUMNS = ["path", "predicted_class", "confidence", "top2_class", "top2_confidence", "top3_class", "top3_confidence"]


def list_images(root: Path) -> list[Path]:
    """Every image file under ``root``, sorted; hidden files and folders left out."""
    if not root.is_dir():
        raise ConfigError(f"--data {root}: no such folder")
    try:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in folder.IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    except OSError as e:
        raise ConfigError(f"--data {root}: cannot read the folder ({e.strerror or e})") from None
    if not files:
        raise ConfigError(f"--data {root}: no images ({', '.join(sorted(folder.IMAGE_SUFFIXES))}) under it")
    return files


def prediction_rows(paths: list[Path], probs: np.ndarray, classes: list[str]) -> list[dict]:
    """CSV rows: the top-3 classes of each image by probability (fewer when the model has fewer classes)."""
    rows = []
    for path, p in zip(paths, probs):
        top = np.argsort(-p, kind="stable")[:3]
        row = {"path": str(path)}
        for k, (name, conf) in enumerate(
            zip(("predicted_class", "top2_class", "top3_class"), ("confidence", "top2_confidence", "top3_confidence"))
        ):
            row[name] = classes[top[k]] if k < len(top) else ""
            row[conf] = round(float(p[top[k]]), 4) if k < len(top) else ""
        rows.append(row)
    return rows


def predict_folder(
    results_dir: Path, data: Path, out: Path, variant: str | None = None, seed: int | None = None
) -> tuple[str, int, list[tuple[Path, str]]]:
    """Write the CSV; returns (checkpoint used, images labelled, (path, why) of files that could not be decoded)."""
    picked = pick.pick(results_dir, variant, seed)
    model, cfg, classes, _ = pick.load_model(picked.path)
    paths = list_images(Path(data))
    images, ok, why = folder.decode_checked(paths, cfg.data.image_size, cfg.data.channels)
    if not ok.any():
        raise ConfigError(f"--data {data}: none of {len(paths)} images could be decoded (first: {paths[0]}: {why[0]})")
    good = [p for p, g in zip(paths, ok) if g]
    rows = prediction_rows(good, probabilities(model, images, cfg), classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return picked.source, len(rows), [(p, w) for p, g, w in zip(paths, ok, why) if not g]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="the study's results dir (STORAGE/NAME, a directory or s3:// / gs:// URI)")
    p.add_argument("--data", type=Path, required=True, help="folder of images, any layout, searched recursively")
    p.add_argument("--out", type=Path, default=Path("predictions.csv"), help="CSV to write (default ./predictions.csv)")
    p.add_argument("--variant", help="variant whose best trial to use (default: the best mean val accuracy)")
    p.add_argument("--seed", type=int, help="use this seed's trial of the variant")


def run(args: argparse.Namespace) -> int:
    try:
        ckpt, n, skipped = predict_folder(args.results_dir, args.data, args.out, args.variant, args.seed)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipped {len(skipped)} files that could not be decoded:", file=sys.stderr)
        for path, why in skipped[:MAX_LISTED]:
            print(f"  {path}: {why}", file=sys.stderr)
        if len(skipped) > MAX_LISTED:
            print(f"  ... and {len(skipped) - MAX_LISTED} more", file=sys.stderr)
    print(f"checkpoint  {ckpt}")
    print(f"predicted   {n} images -> {args.out}")
    return 0
