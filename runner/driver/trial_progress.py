"""The console while a study runs: what runner.driver.callbacks shows of a phase's trials as Tune reports them.

On a terminal: a live display (rich) of the phase's trials done / running / pending / pruned / failed,
each running trial's epoch, the best val accuracy so far and an ETA; the fixed-column line of each trial
that ends scrolls above it, and a fixed-column line of the counts stays when the phase ends. Otherwise (a
CI log, ``> file``): the fixed-column line as each trial ends, and a heartbeat when nothing else was
printed for a while. Either way a trial the scheduler stopped early (ASHA) ends ``pruned``, at the epoch
it reached.
"""

from __future__ import annotations

import atexit
import statistics
import sys
import time
from collections.abc import Callable

from runner.results.status import Status, TuneState, ended

KINDS = ("done", "running", "pending", "pruned", "failed")  # how the counts split a phase's trials


def isatty(out) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class Tally:
    """What the console knows of one phase's trials, from Tune's callbacks. ``trials``: objects with
    ``trial_id``, ``status`` (Tune's: PENDING, RUNNING, TERMINATED, ERROR) and ``config["spec"]``."""

    def __init__(self, total: int, clock: Callable[[], float] = time.time):
        self.total, self.clock = total, clock
        self.t0 = clock()
        self.trials: list = []  # Tune's trials, as the latest callback passed them
        self.first_seen: dict[str, str] = {}  # trial id -> its Tune status when first seen (TERMINATED: restored)
        self.last: dict[str, dict] = {}  # trial id -> its latest result
        self.ended: dict[str, str] = {}  # trial id -> the Status it ended with, in this phase
        self.epochs_run = 0  # results received: trial-epochs run in this phase
        self.best: tuple[float, str] | None = None  # the best val accuracy so far, and its variant/seed

    def see(self, trials) -> None:
        if trials is not None:
            self.trials = list(trials)
            for t in self.trials:
                self.first_seen.setdefault(t.trial_id, str(t.status))

    def result(self, trial, result: dict) -> None:
        self.last[trial.trial_id] = result
        self.epochs_run += 1
        acc = result.get("best_val_accuracy", result.get("val_accuracy"))
        if isinstance(acc, float) and (self.best is None or acc > self.best[0]):
            self.best = (acc, name(trial))

    def end(self, trial, status: str | None = None) -> str:
        """Record how ``trial`` ended: ``status``, or its last result's; a trial that Tune completed while its
        last result said it had epochs to go was stopped by the scheduler: pruned."""
        if status is None:
            # Tune ended it while its last result said it had epochs to go: the scheduler stopped it
            status = ended(self.last.get(trial.trial_id, {}).get("status", Status.COMPLETED), stopped_by_scheduler=True)
        self.ended[trial.trial_id] = status
        return status

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def states(self) -> dict[str, str]:
        """Trial id -> one of KINDS, for every trial seen (Tune lists a phase's trials as it creates them)."""
        out = {t.trial_id: self._state(t) for t in self.trials}
        out.update({tid: _kind(s) for tid, s in self.ended.items()})
        return out

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for state in self.states().values():
            counts[state] += 1
        counts["pending"] += max(0, self.total - sum(counts.values()))  # not created by Tune yet
        return counts

    def running(self) -> list:
        states = self.states()
        return [t for t in self.trials if states[t.trial_id] == "running"]

    def eta(self) -> float | None:
        """Seconds left if every trial left runs all its epochs at this phase's pace so far (trial-epochs per
        second of wall time, trials at once included); None before the first epoch or without train.epochs."""
        states = self.states()
        left = [t for t in self.trials if states[t.trial_id] in ("running", "pending")]
        epochs = [_epochs(t) for t in self.trials]
        if not self.epochs_run or None in epochs or not epochs:
            return None
        epochs_left = sum(_epochs(t) - self.last.get(t.trial_id, {}).get("epoch", 0) for t in left)
        epochs_left += (self.total - len(states)) * statistics.mean(epochs)  # trials Tune has not created yet
        return max(0.0, epochs_left) * self.elapsed() / self.epochs_run

    def _state(self, trial) -> str:
        if trial.trial_id in self.ended:
            return _kind(self.ended[trial.trial_id])
        status = str(trial.status)
        if status == TuneState.TERMINATED:  # finished in an earlier run of this phase (restored), or stopped as it ends
            return "done" if self.first_seen.get(trial.trial_id) == TuneState.TERMINATED else "running"
        return {TuneState.RUNNING: "running", TuneState.ERROR: "failed"}.get(status, "pending")


def _kind(status: str) -> str:
    return {Status.PRUNED: "pruned", Status.ERROR: "failed"}.get(status, "done")


def _epochs(trial) -> int | None:
    return trial.config["spec"].get("trial", {}).get("train", {}).get("epochs")


def name(trial) -> str:
    spec = trial.config["spec"]
    return f"{spec['variant']}/{spec['seed']}"


def trial_line(n: int, total: int, elapsed: float, trial, status: str, result: dict) -> str:
    """The fixed-column line of a trial that ended, the ``n``-th of ``total``."""
    spec = trial.config["spec"]
    acc = result.get("best_val_accuracy")
    acc_s = f"{acc:6.3f}" if isinstance(acc, float) else "     -"
    ep = f"{result.get('best_epoch', '-')}/{result.get('epoch', '-')}"
    return (
        f"[{n:>{len(str(total))}}/{total}] {elapsed:6.0f}s  {spec['variant'][:28]:<28} "
        f"seed {spec['seed']:<4} {status:<13} best val acc {acc_s}  epoch {ep}"
    )


def counts_lines(tally: Tally) -> tuple[str, str]:
    """The phase while it runs, in two fixed-column lines (80 columns): the counts; the best val accuracy so far
    and the ETA."""
    c = tally.counts()
    return (
        f"{tally.elapsed():6.0f}s  done {c['done']:>3}  running {c['running']:>3}  pending {c['pending']:>3}  "
        f"pruned {c['pruned']:>3}  failed {c['failed']:>3}",
        f"         best val acc {_best(tally)}  eta {_duration(tally.eta())}",
    )


def final_line(tally: Tally) -> str:
    """The phase as it ended, in one fixed-column line: unfinished trials (stopped running, or never started)
    are the ones --resume carries on."""
    c = tally.counts()
    return (
        f"[{len(tally.ended)}/{tally.total}] {tally.elapsed():6.0f}s  done {c['done']:>3}  pruned {c['pruned']:>3}  "
        f"failed {c['failed']:>3}  unfinished {c['running'] + c['pending']:>3}  best val acc {_best(tally)}"
    )


def _best(tally: Tally) -> str:
    return f"{tally.best[0]:6.3f} {tally.best[1]}" if tally.best else "     -"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


class LinePrinter:
    """Fixed-column lines for a log or a file: one as each trial ends, and a heartbeat."""

    HEARTBEAT_S = 30  # with nothing else printed for this long, say what is running

    def __init__(self, total: int, out=sys.stdout, clock: Callable[[], float] = time.time):
        self.total, self.out, self.tally = total, out, Tally(total, clock)
        self.done = 0
        self.last_print = clock()

    def grow(self, n: int) -> None:
        """``n`` more trials in this run (a search batch or a look of sequential seeds)."""
        self.total += n
        self.tally.total += n

    def on_trial_start(self, iteration, trials, trial, **info):
        self.tally.see(trials)

    def on_step_end(self, iteration, trials, **info):
        self.tally.see(trials)
        if self.tally.clock() - self.last_print < self.HEARTBEAT_S:
            return
        running = [t for t in trials if t.status == TuneState.RUNNING]
        epochs = ", ".join(
            f"{name(t)} epoch {self.tally.last.get(t.trial_id, {}).get('epoch', 0)}" for t in running[:4]
        )
        self._write(
            f"        {self.tally.elapsed():6.0f}s  {self.done}/{self.total} done, {len(running)} running: {epochs}"
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.tally.see(trials)
        self.tally.result(trial, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.tally.see(trials)
        self._line(trial, self.tally.end(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tally.see(trials)
        self._line(trial, self.tally.end(trial, Status.ERROR))

    def _line(self, trial, status: str) -> None:
        self.done += 1
        last = self.tally.last.get(trial.trial_id, {})
        self._write(trial_line(self.done, self.total, self.tally.elapsed(), trial, status, last))

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
        self.last_print = self.tally.clock()


class LivePrinter(LinePrinter):
    """A live display on a terminal (rich), redrawn on each of Tune's events; the lines of trials that end
    scroll above it. Stopped when the phase ends (Tune calls on_experiment_end after Ctrl-C too) and, should
    the process end without that (a second Ctrl-C), at exit: the cursor comes back, the terminal is as it was."""

    REFRESH_S = 0.25  # between trial events, redraw (the clock, the ETA) at most this often
    SHOWN = 8  # running trials listed

    def __init__(self, total: int, out=sys.stdout, clock: Callable[[], float] = time.time):
        super().__init__(total, out, clock)
        self._live = None
        self._drawn = float("-inf")

    def __getstate__(self):  # Tune pickles its callbacks with the experiment: not the live display
        return {**self.__dict__, "_live": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        super().on_trial_start(iteration, trials, trial, **info)
        self._draw()

    def on_step_end(self, iteration, trials, **info):  # the display is the heartbeat
        self.tally.see(trials)
        if self.tally.clock() - self._drawn >= self.REFRESH_S:
            self._draw()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        super().on_trial_result(iteration, trials, trial, result, **info)
        self._draw()

    def on_trial_complete(self, iteration, trials, trial, **info):
        super().on_trial_complete(iteration, trials, trial, **info)
        self._draw()

    def on_trial_error(self, iteration, trials, trial, **info):
        super().on_trial_error(iteration, trials, trial, **info)
        self._draw()

    def on_experiment_end(self, trials, **info):
        self.tally.see(trials)
        self.close()

    def close(self) -> None:
        """Stop the live display and leave the counts as one fixed-column line."""
        if self._live is not None:
            live, self._live = self._live, None
            atexit.unregister(self.close)
            live.stop()
            live.console.print(final_line(self.tally), markup=False, highlight=False, soft_wrap=True)

    def _write(self, line: str) -> None:
        self._start().console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.last_print = self.tally.clock()

    def _draw(self) -> None:
        self._start().update(live_view(self.tally, self.SHOWN), refresh=True)
        self._drawn = self.tally.clock()

    def _start(self):
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.out, force_terminal=True)
            # print() elsewhere goes above the display, not through it; only when the display is on stdout
            to_stdout = self.out is sys.stdout
            self._live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=to_stdout,
                              redirect_stderr=to_stdout and isatty(sys.stderr))  # fmt: skip
            self._live.start()
            atexit.register(self.close)
        return self._live


def live_view(tally: Tally, shown: int):
    """The live display: the counts line, then each running trial's epoch as a bar."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    rows = Table.grid(padding=(0, 2))
    running = tally.running()
    for t in running[:shown]:
        epoch, epochs = tally.last.get(t.trial_id, {}).get("epoch", 0), _epochs(t)
        bar = ProgressBar(total=epochs, completed=epoch, width=30) if epochs else Text("")
        rows.add_row(Text(f"  {name(t)[:34]:<34}"), Text(f"epoch {epoch:>3}/{epochs or '?'}"), bar)
    if len(running) > shown:
        rows.add_row(Text(f"  and {len(running) - shown} more"), Text(""), Text(""))
    return Group(*(Text(line, no_wrap=True, overflow="ellipsis") for line in counts_lines(tally)), rows)
