"""The console while a study runs: a fixed-column line as each trial ends, and a heartbeat."""

from __future__ import annotations

import sys
import time

from runner.results import Status


def make_printer(total: int, out=sys.stdout):
    """A Tune callback that prints one fixed-column line as each trial ends."""
    from ray.tune import Callback

    class Printer(Callback):
        HEARTBEAT_S = 30  # with nothing else printed for this long, say what is running

        def __init__(self):
            self.done = 0
            self.t0 = self.last_print = time.time()
            self.last: dict[str, dict] = {}

        def on_step_end(self, iteration, trials, **info):
            if time.time() - self.last_print < self.HEARTBEAT_S:
                return
            running = [t for t in trials if t.status == "RUNNING"]
            epochs = ", ".join(f"{_name(t)} epoch {self.last.get(t.trial_id, {}).get('epoch', 0)}" for t in running[:4])
            self._write(
                f"        {time.time() - self.t0:6.0f}s  {self.done}/{total} done, {len(running)} running: {epochs}"
            )

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trial, self.last.get(trial.trial_id, {}).get("status", Status.COMPLETED))

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, Status.ERROR)

        def _line(self, trial, status: str) -> None:
            self.done += 1
            spec = trial.config["spec"]
            r = self.last.get(trial.trial_id, {})
            acc = r.get("best_val_accuracy")
            acc_s = f"{acc:6.3f}" if isinstance(acc, float) else "     -"
            ep = f"{r.get('best_epoch', '-')}/{r.get('epoch', '-')}"
            self._write(
                f"[{self.done:>{len(str(total))}}/{total}] {time.time() - self.t0:6.0f}s  {spec['variant'][:28]:<28} "
                f"seed {spec['seed']:<4} {status:<13} best val acc {acc_s}  epoch {ep}"
            )

        def _write(self, line: str) -> None:
            out.write(line + "\n")
            out.flush()
            self.last_print = time.time()

    return Printer()


def _name(trial) -> str:
    spec = trial.config["spec"]
    return f"{spec['variant']}/{spec['seed']}"
