"""Benchmark: does ASHA pay for itself? A search study with its scheduler against the same study without one,
run one after the other on this machine.

    python bench/asha.py                              # configs/lr_search.py (34 trials), 3 pairs: ~10 min on 2 cores
    python bench/asha.py --study configs/lr_search.py --seeds 0 --pairs 1

Prints, for each run: its wall time (command start to exit), the epochs its trials ran, how many were pruned,
the setup time summed over its trials (trial entered -> first training step: a fresh process's start-up shows
here), and the median images/s; then wall with ASHA / wall without, against the target (issue #24: <= 0.6).
The two runs of a pair follow one another, and the pairs are repeated: this machine's speed drifts by ~10 % within
minutes (one pair gave 0.61, another 0.69, at one commit in one evening); the median pair's ratio is the result.
Every run goes to a temporary dir; each is a real `python -m runner.tune` in a subprocess.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.6  # issue #24: wall with ASHA <= 0.6 x wall without

WITHOUT = """import dataclasses, importlib.util
_spec = importlib.util.spec_from_file_location("_with_asha", {path!r})
_m = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_m)
study = dataclasses.replace(_m.study, name=_m.study.name + "_no_asha", scheduler=None)
"""


def run(study: Path, out: Path, seeds: str | None) -> dict:
    """One study, as a user runs it; what its summary.csv says of its trials."""
    argv = [sys.executable, "-m", "runner.tune", str(study), "--storage", str(out)]
    argv += ["--seeds", seeds] if seeds else []
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{study.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    rows = [r for d in out.iterdir() if d.is_dir() for r in csv.DictReader(open(d / "summary.csv"))]
    return {
        "wall": wall,
        "epochs": sum(int(r["epochs_run"] or 0) for r in rows),
        "pruned": sum(r["status"] == "pruned" for r in rows),
        "trials": len(rows),
        "setup": sum(float(r["setup_seconds"] or 0) for r in rows),
        "ips": statistics.median(float(r["images_per_second"] or 0) for r in rows),
        "answer": next((line for line in proc.stdout.splitlines() if line.startswith(("answer ", "best "))), "-"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="configs/lr_search.py", help="a study file with a scheduler")
    ap.add_argument("--seeds", help="the study's seeds instead of the file's, e.g. 0")
    ap.add_argument("--pairs", type=int, default=3, help="pairs of runs, with and without ASHA one after the other "
                    "(the machine's speed drifts by 10%% within minutes: the median pair's ratio is the result)")  # fmt: skip
    args = ap.parse_args()
    study = (ROOT / args.study).resolve()
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-asha-") as tmp:
        without = Path(tmp) / "without_asha.py"
        without.write_text(WITHOUT.format(path=str(study)))
        for i in range(args.pairs):
            runs = {}
            for name, path in (("with ASHA", study), ("without a scheduler", without)):
                out = Path(tmp) / f"{i}-{len(runs)}"
                out.mkdir()
                runs[name] = run(path, out, args.seeds)
            ratios.append(runs["with ASHA"]["wall"] / runs["without a scheduler"]["wall"])
            _print_pair(i + 1, runs, ratios[-1])
    ratio = statistics.median(ratios)
    print(f"\nwall with ASHA / without, per pair: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"median: {ratio:.2f}  (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")


def _print_pair(n: int, runs: dict, ratio: float) -> None:
    print(f"\npair {n}: {'':15} {'wall s':>7} {'trials':>6} {'epochs':>6} {'pruned':>6} {'setup s':>8} {'images/s':>8}")
    for name, r in runs.items():
        print(f"{name:24} {r['wall']:7.1f} {r['trials']:6d} {r['epochs']:6d} {r['pruned']:6d} {r['setup']:8.1f} "
              f"{r['ips']:8.0f}  {r['answer']}")  # fmt: skip
    a, b = runs["with ASHA"], runs["without a scheduler"]
    print(f"epochs with ASHA / without: {a['epochs'] / b['epochs']:.2f}; wall: {ratio:.2f}")


if __name__ == "__main__":
    main()
