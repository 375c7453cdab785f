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

import numpy as np

from runner.results.figures import confusion_figure, image_grid_figure
from runner.results.hparams import EPOCH_TAGS, hparams, session

HISTOGRAM_SAMPLE = 65_536  # weights drawn per layer for its histogram (docs/performance.md: the cost of all of them)


class TrialBoard:
    def __init__(self, logdir: str, purge_step: int = 1):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed trial restarts at purge_step: TensorBoard hides any older event at or after it, so an
        # epoch logged just before a crash and logged again after the restart shows once. Also at 1: a trial
        # stopped before its first checkpoint starts over in the same dir, after epochs it had logged.
        self.writer = SummaryWriter(log_dir=logdir, purge_step=purge_step)
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
        for s in session(values, group):
            self.writer.file_writer.add_summary(s)

    def close(self) -> None:
        self.writer.close()
