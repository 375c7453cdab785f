"""Every file a results dir and its trial dirs hold: their names, and reading and cutting a trial's rows.

A results dir ``STORAGE/NAME`` holds Tune's state, study.json, audit.json, the study's tables and report, and one
dir per trial, ``VARIANT_seedN_TRIALID``, with params.json (its spec), result.json and progress.csv (a row per
epoch), its TensorBoard events, checkpoints, and the best epoch's confusion matrix and classification report.

A trial restarted from its last checkpoint (a resumed study, a lost process retried, sparse checkpoints with
``train.checkpoint_every``) trains and reports again the epochs after it. Tune's loggers append, so the files
would hold those epochs twice. Before they write such an epoch, ``drop_from`` cuts both files back to the rows
before its first copy: the rows kept are a prefix of each file, so the cut is a truncation in place (no new
file, nothing to write on a full disk, and the loggers' append-mode handles go on at the new end).
TensorBoard's events do the same with ``purge_step``; ``read_results`` keeps the later rows of files written
before this.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

# in the results dir
STUDY = "study.json"  # the plan, its phases, the data, the machine (runner.results.studyfile)
AUDIT = "audit.json"  # the data audit of every dataset
SUMMARY_CSV, SUMMARY_PARQUET, SUMMARY_MD = "summary.csv", "summary.parquet", "summary.md"
CONFUSION_BY_VARIANT = "confusion_by_variant.json"
REPORT = "report.html"
LOG = "runner.log"  # Ray's and Tune's own log records
# in a trial's dir
PARAMS = "params.json"  # Tune's: {"spec": TrialSpec.to_param(), "results_dir": ...}
RESULT, PROGRESS = "result.json", "progress.csv"  # Tune's loggers: a row per epoch
ERROR = "error.txt"  # the traceback of a trial whose code failed, then its one line
PRUNED = "pruned.json"  # the scheduler stopped the trial: {"epoch", "val_accuracy"} (runner.driver.tuner)
PRUNED_EVENTS = ".pruned"  # the suffix of the events file with a pruned trial's HParams session (results.hparams)
CONFUSION, CLASS_REPORT = "confusion_matrix.json", "classification_report.txt"  # at the best epoch


def trial_dir_name(variant: str, seed: int, trial_id: str) -> str:
    """A trial's dir in the results dir: VARIANT_seedN_TRIALID, the variant made safe for a path."""
    return f"{safe(variant)}_seed{seed}_{trial_id}"


def safe(variant: str) -> str:
    """A variant's name as its trial dirs spell it."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in variant)


# a trial dir: VARIANT_seedN_TRIALID, Tune trial ids like 3f2a91c0 (71ef6_00000 before runner queued its trials)
_TRIAL_DIR = re.compile(r"^(?P<variant>.+)_seed(?P<seed>-?\d+)_(?P<trial_id>[0-9a-f]+(?:_\d+)?)$")


def parse_trial_dir(name: str) -> tuple[str, int] | None:
    """(variant as the dir spells it, seed) of a trial dir's name; None for another name."""
    m = _TRIAL_DIR.match(name)
    return (m["variant"], int(m["seed"])) if m else None


def read_results(path: Path) -> list[dict]:
    """The per-epoch rows of a trial's result.json, one per epoch; lines cut short by a crash are skipped. A trial
    restarted from its last checkpoint (a lost process, a resumed study) redoes and reports again the epochs after
    it, with the same numbers (resume is exact): the later rows count."""
    if not path.exists():
        return []
    out: list[dict] = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if "epoch" not in row:
            continue
        while out and out[-1]["epoch"] >= row["epoch"]:
            out.pop()
        out.append(row)
    return out


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


def stage_rows(src: Path, epoch: int, staging: Path) -> None:
    """A trial's result.json and progress.csv rows in ``src`` up to ``epoch``, put into ``staging`` (where Tune
    writes them, appending, then copies them over the trial dir's) unless already there."""
    staging.mkdir(parents=True, exist_ok=True)
    if epoch <= 0 or (staging / RESULT).exists():
        return
    rows = [line for line in _lines(src / RESULT) if _row_epoch(line) <= epoch]
    (staging / RESULT).write_text("".join(f"{line}\n" for line in rows))
    table = list(csv.DictReader(io.StringIO("\n".join(_lines(src / PROGRESS)))))
    kept = [row for row in table if int(float(row.get("epoch") or 0)) <= epoch]
    if kept:
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=list(kept[0]))
        w.writeheader()
        w.writerows(kept)
        (staging / PROGRESS).write_text(text.getvalue())


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return []


def _row_epoch(line: str) -> int:
    """A result.json row's epoch; rows without one (a fault report) or cut short count as beyond any."""
    epoch = json_epoch(line)
    return 1 << 30 if epoch is None else epoch


def unmark_pruned(trial_dir: Path) -> bool:
    """A pruned trial that carries on (a search's confirmation) is pruned no more: its pruned.json and its pruned
    HParams session go (it writes its own at its end). True when it was marked."""
    marked = (trial_dir / PRUNED).exists()
    for f in [trial_dir / PRUNED, *trial_dir.glob(f"events.out.tfevents.*{PRUNED_EVENTS}")]:
        f.unlink(missing_ok=True)
    return marked
