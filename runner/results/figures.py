"""The study's figures drawn with matplotlib (Agg): a confusion matrix and a grid of val images with their labels,
for TensorBoard (runner.trial.board), report.html and the evaluate command; report.html's learning curves (95 % CI
bands clipped to what the value can be, whole epochs on the x axis) and a search's parallel coordinates."""

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


def bounds(key: str) -> tuple[float | None, float | None]:
    """What a per-epoch value can be: an accuracy 0..1, a loss 0 or more (a CI band stops there)."""
    if "accuracy" in key:
        return 0.0, 1.0
    return (0.0, None) if "loss" in key else (None, None)


def draw_curve(ax, c: dict, key: str, **style):
    """One variant's mean of ``key`` per epoch (runner.results.summary.learning_curves) with its 95 % CI as a band
    clipped to what ``key`` can be; a curve of one epoch as a marker with its CI as an error bar (a band of one
    point draws nothing)."""
    lo, hi = np.asarray(c["lo"], dtype=float), np.asarray(c["hi"], dtype=float)
    if bounds(key) != (None, None):
        lo, hi = np.clip(lo, *bounds(key)), np.clip(hi, *bounds(key))
    one = len(c["epoch"]) == 1
    (line,) = ax.plot(c["epoch"], c["mean"], marker="o" if one else ".", ms=6 if one else None, **style)
    if one:
        below, above = max(c["mean"][0] - lo[0], 0.0), max(hi[0] - c["mean"][0], 0.0)
        ax.errorbar(c["epoch"], c["mean"], yerr=[[below], [above]], color=line.get_color(), ls="none", capsize=4)
    else:
        ax.fill_between(c["epoch"], lo, hi, color=line.get_color(), alpha=0.15)
    return line


def epoch_axis(ax, last: int) -> None:
    """Whole epochs from 1 to ``last`` on the x axis (one epoch: 0.5 .. 1.5 around it, not 0.945 .. 1.055)."""
    from matplotlib.ticker import MaxNLocator

    pad = 0.5 if last <= 1 else max(0.25, 0.03 * (last - 1))
    ax.set_xlim(1 - pad, last + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def val_figure(val: dict, names: list[str]):
    """Every variant's val accuracy per epoch on one plot: mean over seeds, band 95 % CI."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7 + 2 * (len(names) > 8), 4), dpi=90, layout="constrained")
    for v in names:
        draw_curve(ax, val[v], "val_accuracy", label=v)
    epoch_axis(ax, max(max(val[v]["epoch"]) for v in names))
    ax.set(xlabel="epoch", ylabel="val accuracy")
    bar = "; one epoch: error bar" if any(len(val[v]["epoch"]) == 1 for v in names) else ""
    ax.set_title(f"val accuracy: mean over seeds, band 95 % CI{bar}", fontsize=10)
    if len(names) > 8:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncols=1 + len(names) // 25)
    else:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def curve_panels_figure(train: dict, val: dict, names: list[str]):
    """One panel per variant with its train and val accuracy per epoch; every panel on the same epochs and
    accuracies, so they compare at a glance."""
    import matplotlib.pyplot as plt

    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=80, sharey=True, squeeze=False)
    last = max(max(c[v]["epoch"]) for c in (train, val) for v in names if v in c)
    for ax, v in zip(axes.ravel(), names):
        for key, c, style in (("train_accuracy", train.get(v), "--"), ("val_accuracy", val[v], "-")):
            if c:
                draw_curve(ax, c, key, ls=style, label=key.split("_")[0])
        ax.set_title(f"{v} ({max(val[v]['n'])} seeds)", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        epoch_axis(ax, last)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def _confirmed_line() -> dict:
    """A confirmed sample's line: thick, outlined in black (the best scores are a light yellow), on top."""
    from matplotlib import patheffects

    return {"lw": 2.8, "ms": 4, "zorder": 3, "path_effects": [patheffects.withStroke(linewidth=4.6, foreground="k")]}


def parallel_figure(samples: list, log: set, metric: str = "score"):
    """A search's samples on parallel coordinates: one vertical axis per sampled key (scaled to its range; log10 for
    a log-scale key) and one for the score; a line per sample coloured by its score (the colour bar), confirmed
    samples thick and on top, samples whose every seed was pruned dotted."""
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scored = [s for s in samples if s.score is not None]
    columns, labels = [], []
    for k in samples[0].values:
        col, ends = scaled([s.values[k] for s in scored], k in log)
        columns.append(col)
        labels.append(f"{k}\n{ends}")
    scores = np.array([s.mean if s.mean is not None else s.score for s in scored], dtype=float)
    lo, hi = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    norm, cmap = Normalize(lo, hi if hi > lo else lo + 1e-9), plt.get_cmap("viridis")
    columns.append(np.clip(norm(scores), 0, 1))
    labels.append(f"score\n{lo:.3f} .. {hi:.3f}")
    fig, ax = plt.subplots(figsize=(max(10.0, 2.2 * len(columns) + 3), 4.5), dpi=90, layout="constrained")
    for i, s in sorted(enumerate(scored), key=lambda item: item[1].confirmed):  # confirmed drawn last, on top
        style = _confirmed_line() if s.confirmed else {"lw": 1.1, "alpha": 0.6, "ms": 2.5, "zorder": 2}
        ax.plot(range(len(columns)), [c[i] for c in columns], color=cmap(norm(scores[i])), ls="-" if s.n else ":",
                marker="o", **style)  # fmt: skip
    ax.set_xticks(range(len(columns)), labels, fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.15, len(columns) - 0.85)
    for x in range(len(columns)):
        ax.axvline(x, color="#999", lw=0.6, zorder=1)
    ax.set_title("samples: sampled values (each axis scaled to its range) and score", fontsize=10)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"{metric} (score)", pad=0.01)
    fig.legend(handles=_parallel_legend(scored), loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


def _parallel_legend(scored: list) -> list:
    from matplotlib.lines import Line2D

    kinds = [("confirmed", _confirmed_line(), any(s.confirmed for s in scored)),
             ("not confirmed", dict(lw=1.1, alpha=0.6), any(not s.confirmed for s in scored)),
             ("every seed pruned", dict(lw=1.1, ls=":"), any(not s.n for s in scored))]  # fmt: skip
    return [Line2D([], [], **{"color": "#555", "marker": "o", "ms": 3, **kw, "zorder": 2}, label=label)
            for label, kw, shown in kinds if shown]  # fmt: skip


def scaled(values: list, log: bool) -> tuple[np.ndarray, str]:
    """Values scaled to 0..1 for one axis, and what its ends mean (a choice's options in order)."""
    if not values:
        return np.array([]), ""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        x = np.array(values, dtype=float)
        log = log and x.min() > 0
        x = np.log10(x) if log else x
        lo, hi = min(values), max(values)
        return (x - x.min()) / (np.ptp(x) or 1.0), f"{lo:.3g} .. {hi:.3g}{' (log)' if log else ''}"
    options = sorted({str(v) for v in values})
    return np.array([options.index(str(v)) / max(len(options) - 1, 1) for v in values]), " | ".join(options)
