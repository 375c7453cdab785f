"""Benchmark: what does a sequential look, or a search batch, cost beyond its trials? (issue 24: <= 1.5 s)

    python bench/looks.py                 # 2 variants, seeds 0-1 then looks up to 8 seeds (~1 min on 2 cores)
    python bench/looks.py --max-seeds 12
    python bench/looks.py --batches       # a TPE search of 24 samples (5 batches) against a random one of 24

Runs the same trials twice, one after the other on this machine, each as a user would (`python -m runner.tune`):
  looks     Study(seeds=(0, 1), max_seeds=N) of two variants that never differ (the same config), so every look
            is undecided and adds one seed to both: N - 2 looks of 2 trials each after the first phase
  one run   Study(seeds=range(N)) of the same two variants: the same 2N trials in one Tune run
The trials are tiny (builtin:digits at 8x8, one epoch), 2 at a time, so the looks' trials run as the one run's do,
two by two. Prints each run's wall and "running trials", and (wall of the looks - wall of one run) / looks: what a
look adds beyond its trials, against the target. With --batches: the same for a learning search's batches, a TPE
search (8 samples, then 4 at a time) against a random search of as many samples (one batch), over 2 seeds.
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

SEARCH = """
from runner.config import DataConfig, Search, Study, TrainConfig, TrialConfig, loguniform
study = Study(
    name="batches",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), train=TrainConfig(epochs=1)),
    variants={{"base": {{}}}},
    search=Search(space={{"optim.lr": loguniform(1e-3, 1e-2)}}, samples={samples}, algorithm="{algorithm}", seed=0),
    seeds=(0, 1),
)
"""

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


def batches(samples: int) -> None:
    """A TPE search's batches against a random search of as many samples."""
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as tmp:
        tpe, flat = Path(tmp) / "tpe.py", Path(tmp) / "random.py"
        tpe.write_text(SEARCH.format(samples=samples, algorithm="optuna"))
        flat.write_text(SEARCH.format(samples=samples, algorithm="random"))
        seq, one = run(tpe, Path(tmp) / "a"), run(flat, Path(tmp) / "b")
    n = samples // 4 - 2  # the batches after the first 8 samples
    if seq["trials"] != one["trials"]:
        sys.exit(f"expected as many trials in each; got {seq['trials']} and {one['trials']}")
    print(f"{'':24} {'wall s':>7} {'running trials s':>16} {'trials':>6}")
    for name, r in ((f"TPE, {n + 1} batches", seq), ("random, one batch", one)):
        print(f"{name:24} {r['wall']:7.1f} {r['fit']:16.1f} {r['trials']:6d}")
    per = (seq["wall"] - one["wall"]) / n
    print(f"a batch adds {per:.2f} s beyond its trials  (target <= {TARGET}: {'met' if per <= TARGET else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-seeds", type=int, default=8)
    ap.add_argument("--batches", action="store_true", help="a TPE search's batches instead of sequential looks")
    args = ap.parse_args()
    if args.batches:
        batches(24)
        return
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
