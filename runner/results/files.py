"""Each epoch once in a trial's result.json and progress.csv, also when the trial redid some.

A trial restarted from its last checkpoint (a resumed study, a lost process retried, sparse checkpoints with
``train.checkpoint_every``) trains and reports again the epochs after it. Tune's loggers append, so the files
would hold those epochs twice. Before they write such an epoch, ``drop_from`` cuts both files back to the rows
before its first copy: the rows kept are a prefix of each file, so the cut is a truncation in place (no new
file, nothing to write on a full disk, and the loggers' append-mode handles go on at the new end).
TensorBoard's events do the same with ``purge_step`` (runner.tblog); ``runner.results.read_results`` keeps the
later rows of files written before this.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

RESULT, PROGRESS = "result.json", "progress.csv"


def last_epoch(trial_dir: Path) -> int:
    """The highest epoch result.json holds (0 when none)."""
    epochs = [json_epoch(line) for line in _read(trial_dir / RESULT).splitlines()]
    return max((e for e in epochs if e is not None), default=0)


def drop_from(trial_dir: Path, epoch: int) -> None:
    """Cut result.json and progress.csv before their first row of ``epoch`` or later (rows without an epoch,
    such as a fault's report, go with the rows after them). A file that cannot be read or cut is left as it
    is: read_results still counts each epoch once."""
    for name, rows in ((RESULT, _json_rows), (PROGRESS, _csv_rows)):
        path = trial_dir / name
        text = _read(path)
        cut = _offset(rows(text), epoch)
        if cut is not None:
            try:
                with open(path, "r+b") as f:
                    f.truncate(len(text[:cut].encode()))
            except OSError:
                pass


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def json_epoch(line: str) -> int | None:
    """A result.json row's epoch; None for a row without one (a fault's report) or cut short."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def _json_rows(text: str):
    """(offset, epoch or None) of each result.json row."""
    pos = 0
    for line in text.splitlines(keepends=True):
        yield pos, json_epoch(line)
        pos += len(line)


def _csv_rows(text: str):
    """(offset, epoch or None) of each progress.csv row after its header (a quoted field may span lines)."""
    lines = text.splitlines(keepends=True)
    consumed = [0]

    def feed():
        for line in lines:
            consumed[0] += len(line)
            yield line

    reader = csv.reader(feed())
    try:
        col = next(reader).index("epoch")
        pos = consumed[0]
        for row in reader:
            try:
                yield pos, int(float(row[col]))
            except (IndexError, ValueError):
                yield pos, None
            pos = consumed[0]
    except (StopIteration, ValueError, csv.Error):
        return


def _offset(rows, epoch: int) -> int | None:
    """Where the rows of ``epoch`` and later start: the first such row, or the rows without an epoch just before
    it; None when there is none."""
    start = None  # the first of the epoch-less rows since the last row with an epoch
    for pos, e in rows:
        if e is None:
            start = pos if start is None else start
        elif e >= epoch:
            return pos if start is None else start
        else:
            start = None
    return None


def callback():
    """A Tune callback, put before Tune's loggers: a trial's result for an epoch it reported before cuts its
    files back first (a class made on first use, so importing this module needs no Ray)."""
    from ray.tune import Callback

    class DropRedone(Callback):
        def __init__(self):
            self.last: dict[str, int] = {}  # trial id -> the last epoch its files hold

        def on_trial_result(self, iteration, trials, trial, result, **info):
            epoch = result.get("epoch")
            if epoch is None or not trial.local_path:
                return
            trial_dir = Path(trial.local_path)
            if trial.trial_id not in self.last:
                self.last[trial.trial_id] = last_epoch(trial_dir)
            if epoch <= self.last[trial.trial_id]:
                drop_from(trial_dir, epoch)
            self.last[trial.trial_id] = epoch

    return DropRedone()
