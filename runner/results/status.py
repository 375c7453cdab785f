"""Where a trial stands: the one ``Status`` every file, table and console line uses, and Tune's own states."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a trial stands. Each epoch's result carries one; a record derives its own from the last."""

    RUNNING = "running"  # in result.json only: the trial had more epochs to go
    COMPLETED = "completed"  # ran every epoch
    EARLY_STOPPED = "early_stopped"  # stopped by train.patience
    DIVERGED = "diverged"  # a loss became NaN/inf: a result (that setting does not train), not a failure
    PRUNED = "pruned"  # stopped early by the study's scheduler (ASHA) for being behind: a result, not a failure
    ERROR = "error"  # the training code failed; error.txt holds the traceback
    INTERRUPTED = "interrupted"  # started, then the study stopped (Ctrl-C, SIGTERM, kill): --resume finishes it
    PENDING = "pending"  # planned, never started
    DAMAGED = "damaged"  # its files cannot be read (params.json empty or cut short): a row, never a traceback
    # reported by a trial whose results storage failed (full, read-only, gone): the driver stops the study, and the
    # trial stays unfinished (a report without an epoch: never a row of result.json)
    STORAGE_FAULT = "storage_fault"

    @property
    def finished(self) -> bool:
        """Ran to an end that is a result."""
        return self in FINISHED

    @property
    def unfinished(self) -> bool:
        """--resume runs it (again, from its last checkpoint)."""
        return self in UNFINISHED


FINISHED = frozenset({Status.COMPLETED, Status.EARLY_STOPPED, Status.DIVERGED, Status.PRUNED})
UNFINISHED = frozenset({Status.RUNNING, Status.INTERRUPTED, Status.PENDING})
TRAINED = frozenset({Status.COMPLETED, Status.EARLY_STOPPED})  # finished with a model worth comparing


def ended(last: str, stopped_by_scheduler: bool) -> Status:
    """How a trial that is no longer running ended, from its last result's status: one whose last result still
    said ``running`` was stopped, by the scheduler (pruned) or by the study stopping (interrupted)."""
    status = Status(last)
    if status != Status.RUNNING:
        return status
    return Status.PRUNED if stopped_by_scheduler else Status.INTERRUPTED


class TuneState(StrEnum):
    """A Tune trial's own status (``Trial.status``), as the driver's callbacks and saved state show it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"  # its function returned: finished, or stopped by the scheduler
    ERROR = "ERROR"
