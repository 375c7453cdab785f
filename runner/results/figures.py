"""The study's figures drawn with matplotlib (Agg): a confusion matrix and a grid of val images with their labels,
for TensorBoard (runner.trial.board), report.html and the evaluate command."""

from __future__ import annotations

import numpy as np


def confusion_figure(cm: np.ndarray, classes: list[str], epoch: int):
    import matplotlib.pyplot as plt

    n = len(classes)
    # Margins in inches, set once: tight_layout would draw the figure an extra time
    cell, left, right, bottom, top = 0.6, 1.3, 0.15, 1.05, 0.35
    width, height = left + right + cell * max(n, 3), bottom + top + cell * max(n, 3)
    fig, ax = plt.subplots(figsize=(width, height), dpi=90)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true")
    ax.set_title(f"confusion matrix, epoch {epoch}", fontsize=9)
    ax.set_xticklabels([c[:14] for c in classes], rotation=45, ha="right", fontsize=7)
    ax.set_yticklabels([c[:14] for c in classes], fontsize=7)
    high = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if cm[i, j] > high else "black"
            )
    return fig


def image_grid_figure(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], n: int = 16):
    """Up to ``n`` val images spread over the classes, 4 a row, each under its predicted and true class (green when
    right). One axes showing one tiled image, not a subplot per image: drawing is a trial's end's largest cost."""
    import matplotlib.pyplot as plt

    pick = np.unique(np.linspace(0, len(images) - 1, min(n, len(images))).astype(int))  # spread over classes
    images, y_true, y_pred, n = images[pick], y_true[pick], y_pred[pick], len(pick)
    cols = 4
    rows = max(1, -(-n // cols))
    h, w, channels = images.shape[1:]
    gap = max(2, w // 8)
    tile_w = w + gap
    tile_h = round(tile_w * 1.1)  # a tile is 2.0 x 2.2 inches: the image, and above it two lines of text
    mosaic = np.full((rows * tile_h, cols * tile_w, channels), 255, dtype=np.uint8)
    fig = plt.figure(figsize=(cols * 2.0, rows * 2.2), dpi=80)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    for k in range(n):
        top, left = (k // cols) * tile_h + tile_h - h - gap // 2, (k % cols) * tile_w + gap // 2
        mosaic[top : top + h, left : left + w] = images[k]
        ok = y_true[k] == y_pred[k]
        ax.text(left + w / 2, top - gap / 4, f"pred {classes[y_pred[k]][:12]}\ntrue {classes[y_true[k]][:12]}",
                ha="center", va="bottom", fontsize=7, color="green" if ok else "red")  # fmt: skip
    ax.imshow(mosaic.squeeze(-1) if channels == 1 else mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    return fig
