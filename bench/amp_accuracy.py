"""Does bf16 autocast (train.amp) change accuracy? Each variant of a study with and without it, paired by seed.

    python bench/amp_accuracy.py configs/init_study.py configs/regularization_study.py --seeds 0-2

For every study file it runs one study holding each variant twice, as written (fp32) and with
train.amp=true (named VARIANT+bf16), then pairs every (variant, seed) fp32 trial with its bf16 twin
and tests the best val accuracy differences with runner.results.stats (paired by seed per variant, and
pooled over all pairs). Prints a row per variant and the pooled line; needs a CPU with native bf16
(runner.study.resources.cpu_bf16) or a GPU, else train.amp is fp32 and the test compares fp32 with itself.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.results import stats  # noqa: E402
from runner.results.records import read_records  # noqa: E402

SUFFIX = "+bf16"


def paired_study(tmp: Path, study_file: str, seeds: str) -> Path:
    """A study file with each variant of ``study_file`` as written and with train.amp=true."""
    name = Path(study_file).stem
    p = tmp / f"{name}_amp.py"
    p.write_text(
        "import dataclasses\nfrom runner.config import load_study\n"
        f"s = load_study({str(Path(study_file).resolve())!r})\n"
        f"variants = {{**s.variants, **{{v + {SUFFIX!r}: {{**o, 'train.amp': True}} for v, o in s.variants.items()}}}}\n"
        f"study = dataclasses.replace(s, name={name + '_amp'!r}, variants=variants)\n"
    )
    return p


def run(study: Path, tmp: Path, seeds: str) -> Path:
    args = [sys.executable, "-m", "runner.tune", str(study), "--storage", str(tmp), "--seeds", seeds]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{study.name}: runner failed ({proc.returncode}): {proc.stderr.strip()[-1000:]}")
    return tmp / study.stem


def pairs(results: Path) -> dict[str, tuple[dict, dict, list, list]]:
    """variant -> ({seed: fp32 best val acc}, {seed: bf16 ...}, fp32 images/s, bf16 images/s)."""
    out: dict = {}
    for r in read_records(results):
        base = r.variant.removesuffix(SUFFIX)
        row = out.setdefault(base, ({}, {}, [], []))
        amp = r.variant.endswith(SUFFIX)
        row[amp][r.seed] = r.last.get("best_val_accuracy")
        row[2 + amp].extend(e["images_per_second"] for e in r.epochs[1:])
    return out


def report(title: str, by_variant: dict) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<24} {'n':>2} {'fp32':>7} {'bf16':>7} {'delta':>8} {'±95%':>7} {'p':>6}  {'img/s fp32':>10} {'bf16':>6}"
    )
    pooled_ref, pooled_amp, fp_rates, bf_rates = {}, {}, [], []
    for v, (ref, amp, r32, r16) in by_variant.items():
        c, e = stats.compare(ref, amp), stats.effect(ref, amp)
        p = "-" if c["p"] is None else f"{c['p']:.3f}"
        ci = "-" if e["ci"] is None else f"{e['ci']:.4f}"
        print(f"{v:<24} {c['n']:>2} {statistics.mean(ref.values()):7.4f} {statistics.mean(amp.values()):7.4f} "
              f"{e['delta']:+8.4f} {ci:>7} {p:>6}  {statistics.median(r32):10.0f} {statistics.median(r16):6.0f}")  # fmt: skip
        for s in ref.keys() & amp.keys():
            pooled_ref[len(pooled_ref)], pooled_amp[len(pooled_amp)] = ref[s], amp[s]
        fp_rates += r32
        bf_rates += r16
    c, e = stats.compare(pooled_ref, pooled_amp), stats.effect(pooled_ref, pooled_amp)
    print(f"pooled over {c['n']} pairs: delta {e['delta']:+.4f} ± {e['ci']:.4f} (95% t-CI), {c['test']} p = {c['p']:.3f}, "
          f"detectable at 80% power {e['detectable']:.4f}; images/s bf16/fp32 "
          f"{statistics.median(bf_rates) / statistics.median(fp_rates):.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", help="study files, e.g. configs/init_study.py")
    ap.add_argument("--seeds", default="0-2", help="seeds of every study (default 0-2)")
    ap.add_argument("--keep", help="write the results dirs here instead of a temporary dir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-amp-") as tmp:
        where = Path(args.keep or tmp)
        for f in args.studies:
            results = run(paired_study(where, f, args.seeds), where, args.seeds)
            report(f"{f}: best val accuracy, fp32 vs bf16 autocast, paired by seed", pairs(results))


if __name__ == "__main__":
    main()
