"""Reporting an epoch from a background thread, so writing its checkpoint and the round trip to Tune overlap
the next epoch's training.

The loop hands over the epoch's metrics and its checkpoint state; the reporter copies the state's tensors
(so the next steps cannot change them) and one thread writes the checkpoint, reports, and removes the
temporary dir, one epoch at a time and in order. At most one epoch is in flight: ``submit`` first waits
for the one before, so a trial holds one extra copy of its weights and optimizer state, reused while
checkpoints come epoch after epoch (a fresh copy every epoch cost more in page faults than the
copying itself) and let go at the first epoch without one. An exception in the
thread (a full disk, Tune stopping the trial, a test's simulated crash) is raised in the loop at its next batch
(an in-process trial; ``failed``) or its next ``submit`` or ``wait``; the trial then resumes from the last
checkpoint that was reported, as before.
"""

from __future__ import annotations

import shutil
import threading
import time

from runner import checkpoints


class Reporter:
    def __init__(self, report):
        """``report(metrics, checkpoint_dir or None)``: the session's report (copies the dir before returning)."""
        self._report = report
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._copy = None  # the last snapshot: its tensors are reused by the next one
        self.checkpoint_seconds: float | None = None  # what the last checkpoint took to write and report (wall)

    def submit(self, metrics: dict, state: dict | None, frozen: dict | None = None) -> None:
        """Report ``metrics`` (with a checkpoint of ``state`` when given) once the previous epoch's is done;
        ``state`` is copied before this returns; ``frozen`` entries join the checkpoint as they are (their owner
        replaces them, never changes them in place)."""
        self.wait()
        if state is not None:
            state = self._copy = snapshot(state, self._copy)
            state = {**state, **(frozen or {})}
        elif self._copy is not None:
            self._copy = None  # checkpoints are sparse (train.checkpoint_every): no copy held between them
            trim_heap()
        self._thread = threading.Thread(target=self._run, args=(metrics, state), name="runner-report", daemon=True)
        self._thread.start()

    def failed(self) -> bool:
        """Whether reporting has raised (Tune stopping the trial, a full disk): the loop stops at the next batch
        and ``wait`` raises it, so a stopped trial's process is free for the next trial at once."""
        return self._error is not None

    def wait(self) -> None:
        """Block until every submitted epoch is reported; raise what reporting raised."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self, metrics: dict, state: dict | None) -> None:
        ckpt_dir, t0 = None, time.perf_counter()
        try:
            ckpt_dir = checkpoints.save(state) if state is not None else None
            self._report(metrics, ckpt_dir)
            if ckpt_dir:
                self.checkpoint_seconds = time.perf_counter() - t0
        except BaseException as e:  # noqa: BLE001 - SystemExit from Tune's stop, KeyboardInterrupt: the loop re-raises
            self._error = e
        finally:
            if ckpt_dir:
                shutil.rmtree(ckpt_dir, ignore_errors=True)


def snapshot(state, into=None):
    """``state`` with every tensor copied to the CPU (nested dicts, lists and tuples followed); a tensor at the
    same place in ``into`` with the same shape and dtype is overwritten instead of allocating a new one."""
    import torch

    if isinstance(state, torch.Tensor):
        if isinstance(into, torch.Tensor) and into.shape == state.shape and into.dtype == state.dtype:
            return into.copy_(state.detach())
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        into = into if isinstance(into, dict) else {}
        return {k: snapshot(v, into.get(k)) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        into = into if isinstance(into, (list, tuple)) and len(into) == len(state) else [None] * len(state)
        return type(state)(snapshot(v, i) for v, i in zip(state, into))
    return state


def trim_heap() -> None:
    """Give the heap's free pages back to the OS (glibc keeps the pages of freed tensors otherwise)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
