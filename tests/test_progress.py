"""The console while a study runs (runner.driver.trial_progress and its callbacks), driven through Tune's callback methods with fake
trials: the fixed-column lines of a log or a file, and the live display of a terminal. No Ray cluster."""

import io
import re
from dataclasses import dataclass, field

import pytest

from runner.driver.callbacks import printer as make_printer
from runner.driver.trial_progress import LinePrinter, LivePrinter, Tally

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SHOW_CURSOR, HIDE_CURSOR = "\x1b[?25h", "\x1b[?25l"


@dataclass
class FakeTrial:
    """What the printer reads of a Tune trial."""

    trial_id: str
    variant: str
    seed: int
    status: str = "PENDING"
    epochs: int | None = 4
    config: dict = field(init=False)

    def __post_init__(self):
        train = {} if self.epochs is None else {"trial": {"train": {"epochs": self.epochs}}}
        self.config = {"spec": {"variant": self.variant, "seed": self.seed, **train}}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _result(epoch: int, acc: float, status: str = "running", best_epoch: int | None = None) -> dict:
    return {"epoch": epoch, "best_val_accuracy": acc, "best_epoch": best_epoch or epoch, "status": status}


def _run_phase(printer, clock: Clock, trials: list[FakeTrial]) -> None:
    """A phase of 4 trials: a completes, b is pruned by the scheduler at epoch 2, c fails, d never starts."""
    a, b, c, _ = trials
    for t in (a, b, c):
        t.status = "RUNNING"
        printer.on_trial_start(iteration=1, trials=trials, trial=t)
    for epoch in (1, 2):
        clock.now += 10
        printer.on_trial_result(iteration=2, trials=trials, trial=a, result=_result(epoch, 0.4 + 0.1 * epoch))
        printer.on_trial_result(iteration=2, trials=trials, trial=b, result=_result(epoch, 0.3, best_epoch=1))
    printer.on_trial_complete(iteration=3, trials=trials, trial=b)  # last result still "running": ASHA stopped it
    b.status = "TERMINATED"
    clock.now += 5
    printer.on_trial_error(iteration=4, trials=trials, trial=c)
    c.status = "ERROR"
    printer.on_trial_result(iteration=5, trials=trials, trial=a, result=_result(3, 0.7, status="completed"))
    printer.on_trial_complete(iteration=5, trials=trials, trial=a)
    a.status = "TERMINATED"


def _trials() -> list[FakeTrial]:
    return [FakeTrial(f"t{i}", v, s) for i, (v, s) in enumerate([("base", 0), ("base", 1), ("wide", 0), ("wide", 1)])]


def test_lines_for_a_log_are_fixed_columns():
    out, clock = io.StringIO(), Clock()
    printer = LinePrinter(4, out, clock)
    _run_phase(printer, clock, _trials())
    assert out.getvalue().splitlines() == [
        "[1/4]     20s  base                         seed 1    pruned        best val acc  0.300  epoch 1/2",
        "[2/4]     25s  wide                         seed 0    error         best val acc      -  epoch -/-",
        "[3/4]     25s  base                         seed 0    completed     best val acc  0.700  epoch 3/3",
    ]


def test_heartbeat_says_what_runs_after_quiet_time():
    out, clock = io.StringIO(), Clock()
    printer = LinePrinter(2, out, clock)
    trials = [FakeTrial("t0", "base", 0, "RUNNING"), FakeTrial("t1", "base", 1, "PENDING")]
    printer.on_trial_result(iteration=1, trials=trials, trial=trials[0], result=_result(3, 0.5))
    clock.now += LinePrinter.HEARTBEAT_S - 1
    printer.on_step_end(iteration=2, trials=trials)
    assert out.getvalue() == ""
    clock.now += 1
    printer.on_step_end(iteration=3, trials=trials)
    assert out.getvalue() == "            30s  0/2 done, 1 running: base/0 epoch 3\n"


def test_make_printer_prints_lines_when_not_a_terminal():
    from ray.tune import Callback

    out = io.StringIO()
    printer = make_printer(4, out)
    assert isinstance(printer, Callback) and isinstance(printer, LinePrinter)
    assert not isinstance(printer, LivePrinter)
    assert isinstance(make_printer(4, FakeTerminal()), LivePrinter)


def test_tally_counts_and_eta():
    clock, trials = Clock(), _trials()
    tally = Tally(5, clock)  # a fifth trial Tune has not created yet
    tally.see(trials)
    trials[0].status = trials[1].status = "RUNNING"
    clock.now += 20
    for epoch in (1, 2):
        tally.result(trials[0], _result(epoch, 0.5))
    tally.result(trials[1], _result(1, 0.6))
    tally.end(trials[1])
    trials[1].status = "TERMINATED"
    assert tally.counts() == {"done": 0, "running": 1, "pending": 3, "pruned": 1, "failed": 0}
    assert tally.best == (0.6, "base/1")
    # 3 trial-epochs in 20 s; left: 2 epochs of base/0, 4 each of 2 pending trials and of the one not created
    assert tally.eta() == pytest.approx((2 + 4 + 4 + 4) * 20 / 3)


def test_a_trial_finished_before_a_resume_counts_as_done_and_one_stopped_at_the_end_as_unfinished():
    tally, trials = Tally(3), _trials()[:3]
    trials[0].status = "TERMINATED"  # restored finished
    trials[1].status = "RUNNING"
    tally.see(trials)
    trials[1].status = "TERMINATED"  # Tune stops it as the phase ends (Ctrl-C): no on_trial_complete
    tally.see(trials)
    assert tally.counts() == {"done": 1, "running": 1, "pending": 1, "pruned": 0, "failed": 0}


def _live_phase(end: str) -> tuple[str, FakeTerminal]:
    out, clock, trials = FakeTerminal(), Clock(), _trials()
    printer = LivePrinter(4, out, clock)
    _run_phase(printer, clock, trials)
    frames = ANSI.sub("", out.getvalue())
    if end == "experiment_end":
        printer.on_experiment_end(trials=trials)
    else:
        printer.close()  # what atexit runs when the process ends without on_experiment_end
    return frames, out


def test_live_display_shows_counts_epochs_and_best():
    frames, _ = _live_phase("experiment_end")
    assert "done   0  running   3  pending   1  pruned   0  failed   0" in frames
    assert "done   0  running   1  pending   1  pruned   1  failed   1" in frames  # after b pruned, c failed
    assert re.search(r"base/0 +epoch +2/4", frames) and re.search(r"base/1 +epoch +2/4", frames)
    assert "best val acc  0.600 base/0" in frames
    assert "eta 1m00s" in frames  # 4 trial-epochs in 20 s, 12 epochs left
    # the lines of trials that ended, as in a log
    assert (
        "[1/4]     20s  base                         seed 1    pruned        best val acc  0.300  epoch 1/2" in frames
    )


@pytest.mark.parametrize("end", ["experiment_end", "exit"])
def test_live_display_ends_with_the_cursor_back_and_a_counts_line(end):
    _, out = _live_phase(end)
    text = out.getvalue()
    assert HIDE_CURSOR in text and text.rindex(SHOW_CURSOR) > text.rindex(HIDE_CURSOR)
    last = ANSI.sub("", text).splitlines()[-1]
    assert last == "[3/4]     25s  done   1  pruned   1  failed   1  unfinished   1  best val acc  0.700 base/0"


def test_live_printer_pickles_without_its_display():
    import pickle

    printer = LivePrinter(4, FakeTerminal())
    printer.on_trial_start(iteration=1, trials=_trials(), trial=_trials()[0])
    assert printer._live is not None
    copy = pickle.loads(pickle.dumps(printer))
    assert copy._live is None and copy.total == 4
    printer.close()
