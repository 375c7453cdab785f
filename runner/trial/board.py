"""TensorBoard for one trial, with the course's tags, written by rank 0 into the trial's dir.

Per epoch (step = epoch): scalars train/loss, train/accuracy, val/loss, val/accuracy,
time/epoch_seconds, time/images_per_second, and weight histograms. At the end, for the best epoch:
image val/confusion_matrix, image val/images (predicted / true labels), text
val/classification_report; and the trial's HParams session (its dotted config keys, without the seed,
in its variant's group) with best/val_accuracy and best/epoch. The study's one HParams experiment config
(every hyper-parameter's domain and the metrics) goes to the results root: ``write_experiment``. So the
HParams tab shows a row per variant, averaged over its seeds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runner.config import flatten, is_learned

# result field -> TensorBoard tag, written every epoch
EPOCH_TAGS = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "epoch_seconds": "time/epoch_seconds",
    "images_per_second": "time/images_per_second",
}
HISTOGRAM_SAMPLE = 65_536  # weights drawn per layer for its histogram (bench/ and README: the cost of all of them)


class TrialBoard:
    def __init__(self, logdir: str, purge_step: int = 1):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed trial restarts at purge_step: TensorBoard hides any older event at or after it, so an
        # epoch logged just before a crash and logged again after the restart shows once.
        self.writer = SummaryWriter(log_dir=logdir, purge_step=purge_step if purge_step > 1 else None)
        self._sample: dict = {}  # parameter name -> indices of the weights its histogram draws

    def epoch(self, metrics: dict, model) -> None:
        """The epoch's scalars (from its result fields) and weight histograms."""
        for key, tag in EPOCH_TAGS.items():
            self.writer.add_scalar(tag, metrics[key], metrics["epoch"])
        self.histograms(model, metrics["epoch"])

    def histograms(self, model, epoch: int) -> None:
        """Weight histograms from a fixed random sample of each layer's weights (the same sample every epoch)."""
        import torch

        for name, p in model.named_parameters():
            if p.dim() < 2:  # weights only; biases add noise to the tab
                continue
            flat = p.detach().reshape(-1)
            if flat.numel() > HISTOGRAM_SAMPLE:
                if name not in self._sample:
                    gen = torch.Generator().manual_seed(len(name))
                    # drawn with replacement: a randperm of all the weights cost more than the histograms themselves
                    pick = torch.randint(flat.numel(), (HISTOGRAM_SAMPLE,), generator=gen)
                    self._sample[name] = pick.to(flat.device)
                flat = flat[self._sample[name]]
            w = flat.float().cpu()
            if bool(w.isfinite().all()):  # a diverged trial has none to draw
                self.writer.add_histogram(f"weights/{name}", w, epoch)

    def best(
        self,
        epoch: int,
        cm: np.ndarray,
        report: str,
        images: np.ndarray,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        classes: list[str],
    ) -> None:
        import matplotlib

        matplotlib.use("Agg")
        self.writer.add_figure("val/confusion_matrix", confusion_figure(cm, classes, epoch), epoch)
        self.writer.add_figure("val/images", image_grid_figure(images, y_true, y_pred, classes), epoch)
        self.writer.add_text("val/classification_report", "    " + report.replace("\n", "\n    "), epoch)

    def test(self, epoch: int, test: dict, report: str) -> None:
        """The best epoch's model on the test split (step: that epoch)."""
        self.writer.add_scalar("test/accuracy", test["accuracy"], epoch)
        self.writer.add_scalar("test/loss", test["loss"], epoch)
        self.writer.add_text("test/classification_report", "    " + report.replace("\n", "\n    "), epoch)

    def finish(self, spec, stopper, test: dict | None = None) -> None:
        """The trial's HParams session (its variant's group) with its best val accuracy and epoch (and test
        accuracy), then close the run."""
        metrics = {"best/val_accuracy": max(stopper.best, 0.0), "best/epoch": stopper.best_epoch}
        if test is not None:
            metrics["best/test_accuracy"] = test["accuracy"]
        self.hparams(hparams(spec.variant, spec.config), metrics, group=spec.variant)
        self.writer.close()

    def hparams(self, values: dict, metrics: dict, group: str) -> None:
        """This run as one HParams session of ``group``: TensorBoard averages a group's sessions (a variant's
        seeds). Written into this run, not a timestamped sub-run (as SummaryWriter.add_hparams would), and
        without an experiment config of its own: the study's one is at the results root (write_experiment)."""
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, 0)
        for s in _session(values, group):
            self.writer.file_writer.add_summary(s)

    def close(self) -> None:
        self.writer.close()


# -------------------------------------------------------------------------------------------- HParams
# TensorBoard's HParams tab reads one experiment config (every hyper-parameter with its domain, and the
# metrics) from the results root, and one session per trial run, grouped by variant. Both name a
# hyper-parameter by its dotted config key and render its value with ``render``, so they always match.

BEST_TAGS = ("best/val_accuracy", "best/epoch")  # written by TrialBoard.finish, step 0
EXPERIMENT_FILE = ".hparams"  # suffix of the results root's events file that holds the experiment config


is_hparam = is_learned  # TensorBoard's hparams: the settings that change what a trial learns


def render(key: str, value):
    """A config value as an HParams value (a number, string or bool): augment.train as its transforms' names
    ("none" without), other lists as their items joined by "-" (model.hidden (512, 128) -> "512-128").
    Idempotent: a rendered value renders to itself."""
    if key == "augment.train" and isinstance(value, list | tuple):
        return ",".join(str(a.get("name")) if isinstance(a, dict) else str(a) for a in value) or "none"
    if isinstance(value, list | tuple):
        return "-".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "none" if value is None else value


def hparams(variant: str, cfg) -> dict:
    """A trial's hyper-parameters (a TrialConfig) as HParams values, by dotted key, with its variant; not its
    seed (a variant's seeds are one session group)."""
    flat = flatten(cfg.to_dict())
    return {"variant": variant, **{k: render(k, v) for k, v in flat.items() if is_hparam(k)}}


def experiment_metrics(test: bool) -> list[str]:
    """The HParams metrics: the best epoch's numbers (and test accuracy with a test split), then the last
    epoch's course scalars."""
    course = [tag for tag in EPOCH_TAGS.values() if not tag.startswith("time/")]
    return [*BEST_TAGS, *(["best/test_accuracy"] if test else []), *course]


def experiment_domains(
    variants: Mapping[str, Mapping[str, Any]], space: Mapping[str, Any], base=None
) -> dict[str, list | tuple[float, float]]:
    """Each hyper-parameter's domain for write_experiment: "variant" -> the variant names; a key the variants
    set -> its distinct values (``variants``: name -> dotted overrides, with the ``base`` TrialConfig's value for
    variants that keep it; or name -> hparams() values); a searched key of ``space`` -> (low, high) of a numeric
    distribution, or its options, widened by any value a variant sets. With ``base``, every hyper-parameter."""
    base_values = hparams("", base) if base is not None else {}
    base_values.pop("variant", None)
    seen: dict[str, list] = {k: [] for k in base_values}
    for overrides in variants.values():
        rendered = {k: render(k, v) for k, v in overrides.items() if is_hparam(k) and k != "variant"}
        for k, v in {**base_values, **rendered}.items():
            seen.setdefault(k, []).append(v)
    domains: dict[str, list | tuple[float, float]] = {"variant": list(variants)}
    for k in sorted(set(seen) | {k for k in space if is_hparam(k)}):
        domains[k] = _domain(k, seen.get(k, []), space.get(k))
    return domains


def _domain(key: str, values: list, dist) -> list | tuple[float, float]:
    if dist is not None and hasattr(dist, "options"):
        return _distinct([*(render(key, o) for o in dist.options), *values])
    if dist is not None:
        numbers = [v for v in values if _is_number(v)]
        return (float(min([dist.low, *numbers])), float(max([dist.high, *numbers])))
    return _distinct(values)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _distinct(values: list) -> list:
    """Sorted distinct values of one type, as TensorBoard's Discrete domain needs: numbers as floats; a mix
    of kinds as strings."""
    if all(isinstance(v, bool) for v in values):
        return sorted(set(values))
    if all(_is_number(v) for v in values):
        return sorted({float(v) for v in values})
    return sorted({str(v) for v in values})


def write_experiment(logdir: str | Path, domains: Mapping[str, list | tuple[float, float]], metrics: list[str]) -> Path:
    """The study's one HParams experiment config, in an events file of its own at ``logdir`` (the results
    root), replacing an earlier one (TensorBoard would keep the first it reads). ``domains``: name -> a list
    of values (discrete) or a (low, high) tuple (an interval); ``metrics``: scalar tags of each trial run."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # not torch's: the driver loads no torch

    logdir = Path(logdir)
    for old in logdir.glob(f"events.out.tfevents.*{EXPERIMENT_FILE}"):
        old.unlink()
    writer = EventFileWriter(str(logdir), filename_suffix=EXPERIMENT_FILE)
    writer.add_event(Event(summary=_experiment(domains, metrics), wall_time=time.time()))
    writer.close()
    return next(logdir.glob(f"events.out.tfevents.*{EXPERIMENT_FILE}"))


def _experiment(domains: Mapping[str, list | tuple[float, float]], metrics: list[str]):
    """The Summary holding the experiment config (hparams_config_pb's, with ``differs`` set, so the HParams
    table shows the hyper-parameters that vary first)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    infos = []
    for name, domain in domains.items():
        info = api_pb2.HParamInfo(name=name, differs=len(domain) > 1 if isinstance(domain, list) else True)
        if isinstance(domain, list):
            hp.Discrete(domain).update_hparam_info(info)
        else:
            hp.RealInterval(*map(float, domain)).update_hparam_info(info)
        infos.append(info)
    exp = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=[hp.Metric(tag).as_proto() for tag in metrics], time_created_secs=time.time()
    )
    summary = Summary()
    data = plugin_data_pb2.HParamsPluginData(experiment=exp)
    summary.value.add(
        tag=metadata.EXPERIMENT_TAG, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return summary


def pruned_session(trial_dir: str | Path, variant: str, cfg, best: float, best_epoch: int) -> None:
    """The HParams session of a trial the scheduler stopped (it never reached TrialBoard.finish), written by the
    driver into the trial's run in an events file of its own. TensorBoard has no status for "stopped early": it
    says UNKNOWN, so the dashboard's status filter tells pruned trials from those that ran to the end."""
    from tensorboard.plugins.hparams import api_pb2
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(trial_dir), filename_suffix=".pruned")
    for tag, value in {"best/val_accuracy": best, "best/epoch": best_epoch}.items():
        writer.add_scalar(tag, value, 0)
    for s in _session(hparams(variant, cfg), variant, api_pb2.STATUS_UNKNOWN):
        writer.file_writer.add_summary(s)
    writer.close()


def _session(values: dict, group: str, status=None) -> list:
    """A trial's HParams session start (its values, in ``group``) and end (success, or ``status``) summaries."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    end = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(
            status=api_pb2.STATUS_SUCCESS if status is None else status, end_time_secs=time.time()
        )
    )
    end_summary = Summary()
    end_summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(end), tensor=metadata.NULL_TENSOR
    )
    return [hp.hparams_pb(values, trial_id=group), end_summary]


def confusion_figure(cm: np.ndarray, classes: list[str], epoch: int):
    import matplotlib.pyplot as plt

    n = len(classes)
    # Margins in inches, set once: tight_layout drew the figure an extra time (~0.1 s of a trial's end each)
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
    right). One axes showing one tiled image: a subplot per image had cost ~0.3 s of every trial's end."""
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
