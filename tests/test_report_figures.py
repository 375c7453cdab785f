"""report.html's figures as matplotlib draws them (runner.results.figures): the learning curves' CI bands stay
within what the value can be, a variant of one epoch gets whole-epoch ticks, and a search's parallel coordinates
are wide enough for their title, with a colour bar naming the score and confirmed samples marked."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from runner.results import figures, report  # noqa: E402
from runner.results.search_summary import Sample  # noqa: E402

# "high" is near 1 with a wide CI (its band would reach 1.05); "one" stopped after its first epoch on every seed.
VAL = {
    "high": {"epoch": [1, 2, 3], "mean": [0.90, 0.97, 0.99], "lo": [0.80, 0.90, 0.93], "hi": [1.00, 1.04, 1.05],
             "n": [3, 3, 3]},
    "one": {"epoch": [1], "mean": [0.98], "lo": [0.90], "hi": [1.06], "n": [2]},
}  # fmt: skip
TRAIN = {v: {**c, "mean": [min(m + 0.01, 1.0) for m in c["mean"]]} for v, c in VAL.items()}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _ys(ax) -> np.ndarray:
    """Every y of the axes' bands and error bars."""
    return np.concatenate([p.vertices[:, 1] for coll in ax.collections for p in coll.get_paths()])


def _visible_ticks(ax) -> list[float]:
    lo, hi = ax.get_xlim()
    return [float(t) for t in ax.get_xticks() if lo <= t <= hi]


def test_accuracy_bands_are_clipped_to_0_and_1():
    for fig in (figures.val_figure(VAL, list(VAL)), figures.curve_panels_figure(TRAIN, VAL, list(VAL))):
        for ax in fig.axes:
            if ax.collections:
                ys = _ys(ax)
                assert ys.min() >= 0.0 and ys.max() <= 1.0, (ax.get_title(), ys.max())
                assert ys.max() == pytest.approx(1.0)  # cut at 1, not left out


def test_loss_bands_stop_at_0():
    fig, ax = plt.subplots()
    figures.draw_curve(ax, {"epoch": [1, 2], "mean": [0.1, 0.05], "lo": [-0.2, -0.1], "hi": [1.4, 0.2]}, "val_loss")
    ys = _ys(ax)
    assert ys.min() == 0.0 and ys.max() == pytest.approx(1.4)  # a loss has no upper bound


def test_one_epoch_variant_gets_whole_epoch_ticks():
    fig = figures.val_figure({"one": VAL["one"]}, ["one"])
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xlim() == (0.5, 1.5)
    assert _visible_ticks(ax) == [1.0]  # not 0.945 .. 1.055
    assert ax.lines[0].get_marker() == "o" and len(ax.collections) == 1  # a marker with its CI as an error bar
    assert "one epoch: error bar" in ax.get_title()


def test_curve_panels_share_whole_epochs():
    fig = figures.curve_panels_figure(TRAIN, VAL, list(VAL))
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["high (3 seeds)", "one (2 seeds)"]
    assert {ax.get_xlim() for ax in panels} == {panels[0].get_xlim()}  # one axis from epoch 1 to 3 for all
    assert panels[0].get_xlim()[0] < 1 < 3 < panels[0].get_xlim()[1]
    for ax in panels:
        assert _visible_ticks(ax) == [1.0, 2.0, 3.0], ax.get_title()
        assert all(t.get_text().lstrip("−-").isdigit() for t in ax.get_xticklabels())
    drawn = {line.get_label(): line.get_marker() for line in panels[1].lines if not line.get_label().startswith("_")}
    assert drawn == {"train": "o", "val": "o"}  # the one-epoch panel draws its points


def _samples(keys: int = 2) -> list[Sample]:
    out = []
    for i in range(8):
        values = {"optim.lr": 10 ** (-5 + i / 2), "model.hidden": "32" if i % 2 else "16-8"}
        values.update({f"k{j}": float(i * j) for j in range(keys - 2)})
        pruned = i == 7
        mean = None if pruned else 0.5 + 0.05 * i
        out.append(Sample(f"s{i:03d}", values, 0 if pruned else 2, mean, 0.02, 2 * pruned, mean or 0.2, i in (5, 6)))
    return out


def test_parallel_figure_has_a_colour_bar_legend_and_room_for_its_title():
    fig = figures.parallel_figure(_samples(), {"optim.lr"}, "best_val_accuracy")
    assert fig.get_size_inches()[0] >= 8
    ax = fig.axes[0]
    bars = [a for a in fig.axes if a.get_ylabel() == "best_val_accuracy (score)"]
    assert len(bars) == 1  # the colour's key
    assert bars[0].get_ylim() == pytest.approx((0.2, 0.8))  # the scores' range (s007: the score it was pruned at)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["confirmed", "not confirmed", "every seed pruned"]
    thick = [line for line in ax.lines if line.get_linewidth() > 2]
    assert len(thick) == 2 and all(line.get_path_effects() for line in thick)  # s005 and s006, outlined
    assert min(line.get_zorder() for line in thick) > max(line.get_zorder() for line in ax.lines if line not in thick)
    assert [line.get_linestyle() for line in ax.lines].count(":") == 1  # s007: every seed pruned
    fig.canvas.draw()
    width, height = fig.bbox.width, fig.bbox.height
    for artist in [ax.title, *ax.get_xticklabels(), *fig.legends, bars[0].yaxis.label]:
        box = artist.get_window_extent()
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height, artist


def test_parallel_figure_grows_with_its_axes():
    narrow = figures.parallel_figure(_samples(2), set(), "best_val_accuracy").get_size_inches()[0]
    wide = figures.parallel_figure(_samples(6), set(), "best_val_accuracy").get_size_inches()[0]
    assert wide > narrow >= 8


def test_parallel_figure_png_is_wide():
    png = base64.b64decode(report._png(figures.parallel_figure(_samples(), {"optim.lr"}, "best_val_accuracy")))
    assert Image.open(io.BytesIO(png)).size[0] >= 8 * 90
