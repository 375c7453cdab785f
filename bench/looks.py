"""Benchmark: what does a sequential look cost beyond its trials? (issue 24: <= 1.5 s)

    python bench/looks.py                 # 2 variants, seeds 0-1 then looks up to 8 seeds (~2 min on 2 cores)
    python bench/looks.py --max-seeds 12

Runs the same trials twice, one after the other on this machine, each as a user would (`python -m runner.tune`):
  looks     Study(seeds=(0, 1), max_seeds=N) of two variants that never differ (the same config), so every look
            is undecided and adds one seed to both: N - 2 looks of 2 trials each after the first phase
  one run   Study(seeds=range(N)) of the same two variants: the same 2N trials in one Tune run
The trials are tiny (builtin:digits at 8x8, one epoch), 2 at a time, so the looks' trials run as the one run's do,
two by two. Prints each run's wall and "running trials", and (wall of the looks - wall of one run) / looks: what a
look adds beyond its trials, against the target.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5  # issue 24: a look or a batch adds <= 1.5 s beyond its trials

STUDY = """
from runner.config import DataConfig, Study, TrainConfig, TrialConfig
study = Study(
    name="looks",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), train=TrainConfig(epochs=1)),
    variants={{"a": {{}}, "same": {{"model.dropout": 0.0}}}},
    {seeds}
)
"""


def run(study: Path, out: Path) -> dict:
    """One study as a user runs it: its wall, its console's "running trials", how many looks it printed."""
    argv = [sys.executable, "-m", "runner.tune", str(study), "--storage", str(out), "--max-concurrent", "2"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"{study.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    fit = re.search(r"([\d.]+) s running trials", proc.stdout)
    trials = len(re.findall(r"^\[\s*\d+/\d+\]", proc.stdout, re.M))
    return {"wall": wall, "fit": float(fit.group(1)) if fit else float("nan"), "trials": trials,
            "looks": proc.stdout.count("seeds  undecided after")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-seeds", type=int, default=8)
    args = ap.parse_args()
    n = args.max_seeds
    with tempfile.TemporaryDirectory(prefix="bench-looks-") as tmp:
        looks, flat = Path(tmp) / "looks.py", Path(tmp) / "flat.py"
        looks.write_text(STUDY.format(seeds=f"seeds=(0, 1), max_seeds={n},"))
        flat.write_text(STUDY.format(seeds=f"seeds=range({n}),"))
        seq = run(looks, Path(tmp) / "a")
        one = run(flat, Path(tmp) / "b")
    if seq["looks"] != n - 2 or seq["trials"] != one["trials"]:
        sys.exit(f"expected {n - 2} looks and {2 * n} trials each; got {seq['looks']} looks, {seq['trials']} and "
                 f"{one['trials']} trials")  # fmt: skip
    print(f"{'':24} {'wall s':>7} {'running trials s':>16} {'trials':>6} {'looks':>5}")
    for name, r in (("sequential looks", seq), ("one run", one)):
        print(f"{name:24} {r['wall']:7.1f} {r['fit']:16.1f} {r['trials']:6d} {r['looks']:5d}")
    per_look = (seq["wall"] - one["wall"]) / seq["looks"]
    print(f"a look adds {per_look:.2f} s beyond its trials  (target <= {TARGET}: "
          f"{'met' if per_look <= TARGET else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
