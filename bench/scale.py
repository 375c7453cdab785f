"""Benchmark: does a study's cost grow linearly with its trials? (issue 24)

    python bench/scale.py                 # 250 and 1,000 tiny trials (~8 min on 2 cores)
    python bench/scale.py --small 60 --large 240   # quicker

Runs the same tiny study (builtin:digits at 8x8, one epoch, 2 variants x N/2 seeds) at two sizes, one after
the other on this machine, each as a user would (`python -m runner.tune STUDY`), and prints for each:
  wall         the command's wall time, start to exit
  trials wall  the console's "N s running trials" (the Tune runs)
  in trials    the trials' own time, summed (each trial's trial_seconds: entered -> last report)
  outside      per trial-slot: (trials wall x concurrent trials - in trials) / trials
  peak RSS     the driver process's peak resident memory
  trial RSS    the largest resident memory of a trial process (Tune reuses them from trial to trial), sampled
  results      `python -m runner.summary DIR` then `python -m runner.report DIR` (tables, report.html and
               the HParams of every variant), each a fresh process as a user runs them
and the ratios against the targets: large wall <= 4.4x small wall; outside <= 0.25 s per trial-slot at both sizes;
results <= 10 s at the large size.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.results import files  # noqa: E402

STUDY = """
from runner.config import DataConfig, Study, TrainConfig, TrialConfig
study = Study(
    name="scale",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), train=TrainConfig(epochs=1)),
    variants={{"a": {{}}, "b": {{"model.dropout": 0.2}}}},
    seeds=range({seeds}),
)
"""


class TrialMemory(threading.Thread):
    """The peak RSS of Ray's trial processes (``ray::ImplicitFunc``), sampled every 0.5 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_kib, self.done = 0, threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if not (proc / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                        continue
                    rss = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("VmRSS"))
                    self.peak_kib = max(self.peak_kib, int(rss.split()[1]))
                except (OSError, StopIteration, ValueError):
                    continue


def run(trials: int, root: Path) -> dict:
    study = root / f"scale{trials}.py"
    study.write_text(STUDY.format(seeds=trials // 2))
    out = root / f"out{trials}"
    log = root / f"console{trials}.txt"
    memory = TrialMemory()
    memory.start()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.tune", str(study), "--storage", str(out), "--name", "s"],
            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)  # the driver's own peak RSS (Ray's processes are not its children)
    wall = time.perf_counter() - t0
    memory.done.set()
    console = log.read_text()
    if status != 0:
        sys.exit(f"the {trials}-trial study failed ({status}):\n{console[-3000:]}")
    rss_gib = usage.ru_maxrss / 2**20
    running = re.search(r"\(([\d.]+) s running trials\)", console)
    concurrent = re.search(r"(\d+) at a time", console)
    t1 = time.perf_counter()
    for tool in ("runner.summary", "runner.report"):
        again = subprocess.run([sys.executable, "-m", tool, str(out / "s")], cwd=ROOT, capture_output=True, text=True)
        if again.returncode != 0:
            sys.exit(f"{tool} failed on the {trials}-trial study:\n{again.stderr[-3000:]}")
    results_s = time.perf_counter() - t1
    in_trials = 0.0
    for rj in (out / "s").glob(f"*/{files.RESULT}"):
        in_trials += max((r.get("time_total_s") or 0.0 for r in files.read_results(rj)), default=0.0)
    slots = int(concurrent.group(1)) if concurrent else os.cpu_count()
    trials_wall = float(running.group(1)) if running else float("nan")
    return {
        "trials": trials,
        "wall": wall,
        "trials wall": trials_wall,
        "in trials": in_trials,
        "concurrent": slots,
        "outside": (trials_wall * slots - in_trials) / trials,
        "peak RSS GiB": rss_gib,
        "trial RSS GiB": memory.peak_kib / 2**20,
        "results": results_s,
        "snapshot warnings": (out / "s" / "runner.log").read_text().count("snapshotting has been triggered")
        if (out / "s" / "runner.log").exists()
        else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=250)
    ap.add_argument("--large", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-scale-") as tmp:
        rows = [run(n, Path(tmp)) for n in (args.small, args.large)]
    keys = list(rows[0])
    print(f"{'':20}" + "".join(f"{r['trials']:>12}" for r in rows))
    for k in keys[1:]:
        print(f"{k:20}" + "".join(f"{r[k]:>12.2f}" if isinstance(r[k], float) else f"{r[k]:>12}" for r in rows))
    small, large = rows
    ratio = large["wall"] / small["wall"]
    scale = args.large / args.small
    checks = [
        (f"wall {args.large} / wall {args.small}", ratio, 1.1 * scale),
        (f"outside per slot at {args.small}, s", small["outside"], 0.25),
        (f"outside per slot at {args.large}, s", large["outside"], 0.25),
        (f"results at {args.large}, s", large["results"], 10.0),
    ]
    print()
    for name, value, target in checks:
        print(f"{name:32} {value:8.2f}   target <= {target:.2f}   {'ok' if value <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
