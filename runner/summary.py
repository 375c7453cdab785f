"""Results dir -> study tables: summary.csv / summary.parquet (a row per trial), summary.md (a row per variant).

Reads only what Ray Tune left on disk (each trial's params.json, result.json, error.txt and
confusion_matrix.json), so it works on any finished, interrupted or restored study:
``python -m runner.summary RESULTS_DIR|URI``.

Per variant: best val accuracy over seeds as mean ± 95 % CI (t-distribution), std, min, max; the
median best epoch; the train-val gap (final train accuracy - final val accuracy, mean over seeds),
flagged as overfitting above ``OVERFIT_GAP``; and the comparison with the reference variant over
shared seeds (runner.stats: paired t-test or Wilcoxon, Holm-corrected p, verdict). Errored trials
are left out of every statistic. The reference is study.json's "reference", else the first variant.

``confusion_by_variant.json``: {variant: {"classes", "matrix", "trials"}}, the sum of the
confusion matrices (at each trial's best epoch, rows true, columns predicted) over the variant's
trials that wrote one; trials whose classes differ from the variant's first are left out.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import sys
from pathlib import Path

from runner import stats

log = logging.getLogger(__name__)

OVERFIT_GAP = 0.20  # train-val accuracy gap (fraction) above which a variant is flagged as overfitting

COLUMNS = [
    "variant", "seed", "status", "best_val_accuracy", "best_epoch", "epochs_run", "final_train_accuracy",
    "final_val_accuracy", "final_val_loss", "trial_seconds", "setup_seconds", "images_per_second",
    "checkpoint", "trial_dir", "error",
]


def trial_rows(results_dir: Path) -> list[dict]:
    """One row per trial directory, in the study's variant order, then by seed."""
    rows = []
    for params in sorted(Path(results_dir).glob("*/params.json")):
        d = params.parent
        spec = json.loads(params.read_text())["spec"]
        results = read_results(d / "result.json")
        last = results[-1] if results else {}
        err = d / "error.txt"
        status = last.get("status", "pending")
        finished = status in ("completed", "early_stopped", "diverged")
        if err.exists() and not finished:  # error.txt stays behind when a retry later finished the trial
            status = "error"
        elif status == "running":
            status = "interrupted"
        ips = [r["images_per_second"] for r in results[1:]] or [r["images_per_second"] for r in results]
        rows.append({
            "variant": spec["variant"], "seed": spec["seed"], "status": status,
            "best_val_accuracy": last.get("best_val_accuracy"), "best_epoch": last.get("best_epoch"),
            "epochs_run": last.get("epoch", 0), "final_train_accuracy": last.get("train_accuracy"),
            "final_val_accuracy": last.get("val_accuracy"), "final_val_loss": last.get("val_loss"),
            "trial_seconds": _round(last.get("time_total_s"), 2), "setup_seconds": _round(last.get("setup_seconds"), 2),
            "images_per_second": _round(statistics.median(ips), 1) if ips else None,
            "checkpoint": _best_checkpoint(d), "trial_dir": d.name,
            "error": _first_error_line(err) if err.exists() and not finished else "",
            "_order": spec.get("order", 0),
        })
    # Trials the study planned (study.json) that never started, e.g. after Ctrl-C: a row each, "pending".
    started = {(r["variant"], r["seed"]) for r in rows}
    study_json = Path(results_dir) / "study.json"
    planned = json.loads(study_json.read_text()).get("trials", []) if study_json.exists() else []
    for spec in planned:
        if (spec["variant"], spec["seed"]) not in started:
            rows.append({c: None for c in COLUMNS} | {"variant": spec["variant"], "seed": spec["seed"], "status": "pending",
                                                     "epochs_run": 0, "checkpoint": "", "trial_dir": "", "error": "",
                                                     "_order": spec.get("order", 0)})
    rows.sort(key=lambda r: (r.pop("_order"), r["variant"], r["seed"]))
    return rows


def variant_rows(rows: list[dict], order: list[str] | None = None, reference: str | None = None) -> list[dict]:
    """Per variant: trials, finished trials, best val accuracy stats over seeds, best epoch, gap, and the
    comparison with ``reference`` (default: the first variant)."""
    variants = list(dict.fromkeys(order or [])) + [v for v in dict.fromkeys(r["variant"] for r in rows) if v not in (order or [])]
    variants = [v for v in variants if any(r["variant"] == v for r in rows)]
    done = [r for r in rows if r["status"] != "error"]  # an errored trial's numbers describe nothing
    by_seed = {v: {r["seed"]: r["best_val_accuracy"] for r in done if r["variant"] == v and r["best_val_accuracy"] is not None}
               for v in variants}
    tests = stats.compare_all(by_seed, reference or (variants[0] if variants else ""))
    out = []
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        ok = [r for r in done if r["variant"] == v]
        accs = list(by_seed[v].values())
        mean, ci = stats.mean_ci(accs)
        eps = [r["best_epoch"] for r in ok if r["best_epoch"]]
        gaps = [r["final_train_accuracy"] - r["final_val_accuracy"] for r in ok
                if r["final_train_accuracy"] is not None and r["final_val_accuracy"] is not None]
        gap = statistics.fmean(gaps) if gaps else None
        out.append({
            "variant": v, "trials": len(rs), "ok": sum(r["status"] in ("completed", "early_stopped") for r in rs),
            "n": len(accs), "mean": mean, "ci": ci,
            "std": statistics.stdev(accs) if len(accs) > 1 else None,
            "min": min(accs) if accs else None, "max": max(accs) if accs else None,
            "best_epoch": statistics.median(eps) if eps else None,
            "train_val_gap": gap, "overfitting": gap is not None and gap > OVERFIT_GAP,
            "mean_diff": tests[v]["mean_diff"], "test": tests[v]["test"], "shared_seeds": tests[v]["n"],
            "p": tests[v]["p"], "p_holm": tests[v]["p_holm"], "verdict": tests[v]["verdict"],
        })
    return out


def confusion_by_variant(results_dir: Path, rows: list[dict]) -> dict[str, dict]:
    """{variant: {"classes", "matrix", "trials"}}: confusion matrices summed over the variant's trials."""
    out: dict[str, dict] = {}
    for r in rows:
        path = Path(results_dir) / r["trial_dir"] / "confusion_matrix.json"
        if r["status"] == "error" or not path.exists():
            continue
        try:
            cm = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s: unreadable; left out of the variant's confusion matrix", path)
            continue
        agg = out.setdefault(r["variant"], {"classes": cm["classes"], "matrix": None, "trials": 0})
        if cm["classes"] != agg["classes"]:
            log.warning("%s: classes differ from the variant's other trials; left out", path)
            continue
        m = cm["matrix"]
        agg["matrix"] = m if agg["matrix"] is None else [[a + b for a, b in zip(x, y)] for x, y in zip(agg["matrix"], m)]
        agg["trials"] += 1
    return out


def study_reference(results_dir: Path) -> str | None:
    """The reference variant named in the results dir's study.json, if any."""
    try:
        return json.loads((Path(results_dir) / "study.json").read_text()).get("reference")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def write(results_dir: Path, order: list[str] | None = None, partial: bool = False,
          reference: str | None = None) -> list[dict]:
    """Write summary.csv, summary.parquet, summary.md and confusion_by_variant.json into ``results_dir``.

    ``reference``: the variant the others are compared with (default: study.json's, else the first).
    Returns the trial rows.
    """
    results_dir = Path(results_dir)
    rows = trial_rows(results_dir)
    reference = reference or study_reference(results_dir)
    with open(results_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    _write_parquet(results_dir / "summary.parquet", rows)
    (results_dir / "summary.md").write_text(markdown(results_dir.name, variant_rows(rows, order, reference), rows, partial))
    (results_dir / "confusion_by_variant.json").write_text(json.dumps(confusion_by_variant(results_dir, rows)))
    return rows


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"variant": pa.string(), "seed": pa.int64(), "status": pa.string(), "best_epoch": pa.int64(),
             "epochs_run": pa.int64(), "checkpoint": pa.string(), "trial_dir": pa.string(), "error": pa.string()}
    schema = pa.schema([(c, types.get(c, pa.float64())) for c in COLUMNS])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def markdown(name: str, variants: list[dict], rows: list[dict], partial: bool = False) -> str:
    lines = [f"# {name}", ""]
    if partial:
        lines += ["**Partial results: the study was interrupted; resume it to finish.**", ""]
    ref = next((v["variant"] for v in variants if v.get("verdict") == "reference"), None)
    lines += [
        "Best val accuracy per variant over seeds (fractions 0..1): n seeds, mean ± half-width of the 95 % confidence "
        "interval (t-distribution; none for n = 1). Gap = final train accuracy - final val accuracy, mean over seeds; "
        f"flagged *overfits* when above {OVERFIT_GAP:.2f}.",
        "",
        f"Reference: {ref or '-'}. Δ = mean over shared seeds of (variant - reference). Test: paired t-test below "
        f"{stats.WILCOXON_MIN} shared seeds, Wilcoxon signed-rank from {stats.WILCOXON_MIN}; p Holm-corrected over the "
        f"variants compared; verdict at α = {stats.ALPHA}.",
        "",
        "| " + " | ".join(VARIANT_HEADER) + " |",
        "|" + "|".join("---" if h in ("variant", "test", "verdict") else "---:" for h in VARIANT_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(variant_cells(v)) + " |" for v in variants]
    bad = [r for r in rows if r["status"] not in ("completed", "early_stopped")]
    if bad:
        lines += ["", "Trials that did not finish:", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {r['status']}{': ' + r['error'] if r['error'] else ''}" for r in bad]
    return "\n".join(lines) + "\n"


VARIANT_HEADER = ["variant", "trials", "ok", "n", "mean ± 95% CI", "std", "min", "max", "median best epoch",
                  "train-val gap", "Δ vs reference", "test", "p (Holm)", "verdict"]


def variant_cells(v: dict) -> list[str]:
    """A variant row as the text cells under VARIANT_HEADER (summary.md and report.html)."""
    mean = _f(v["mean"]) + (f" ± {_f(v['ci'])}" if v.get("ci") is not None else "")
    gap = _f(v["train_val_gap"]) + (" overfits" if v.get("overfitting") else "")
    return [v["variant"], str(v["trials"]), str(v["ok"]), str(v.get("n", "-")), mean, _f(v["std"]), _f(v["min"]),
            _f(v["max"]), _f(v["best_epoch"], 1), gap, _signed(v.get("mean_diff")), v.get("test") or "-",
            _p(v.get("p_holm")), v.get("verdict", "-")]


SHORT_VERDICT = {"no detectable difference": "no diff"}


def console_table(variants: list[dict]) -> str:
    """Fixed-column table for the terminal; ! marks a train-val gap above OVERFIT_GAP."""
    w = max([7] + [len(v["variant"]) for v in variants])
    head = f"{'variant':<{w}}  trials  ok    mean  ±95%ci     std     min     max  best ep     gap    p holm  verdict"
    lines = [head, "-" * len(head)]
    for v in variants:
        flag = "!" if v.get("overfitting") else " "
        verdict = v.get("verdict") or "-"
        lines.append(f"{v['variant']:<{w}}  {v['trials']:>6}  {v['ok']:>2}  {_f(v['mean']):>6}  {_f(v.get('ci')):>6}  "
                     f"{_f(v['std']):>6}  {_f(v['min']):>6}  {_f(v['max']):>6}  {_f(v['best_epoch'], 1):>7}  "
                     f"{_f(v['train_val_gap']):>6}{flag}  {_p(v.get('p_holm')):>7}  {SHORT_VERDICT.get(verdict, verdict)}")
    ref = next((v["variant"] for v in variants if v.get("verdict") == "reference"), None)
    if ref and len(variants) > 1:
        lines.append(f"verdict: vs {ref} over shared seeds, Holm-corrected p < {stats.ALPHA}; no diff = no detectable difference")
    if any(v.get("overfitting") for v in variants):
        lines.append(f"! train-val gap above {OVERFIT_GAP:.2f}: overfits")
    return "\n".join(lines)


def read_results(path: Path) -> list[dict]:
    """The per-epoch rows of a trial's result.json; lines cut short by a crash are skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return [r for r in out if "epoch" in r]


def _best_checkpoint(trial_dir: Path) -> str:
    """The kept checkpoint with the highest val accuracy (earliest epoch on ties); Ray also keeps the latest.
    Checkpoints without meta.json (older results) fall back to the newest. A checkpoint counts by its
    model.pt or its meta.json (a URI's results are summarized from a copy without the weights)."""
    def score(d: Path) -> tuple:
        try:
            meta = json.loads((d / "meta.json").read_text())
            return (1, meta["val_accuracy"], -meta["epoch"], 0.0)
        except (OSError, ValueError, KeyError):
            return (0, 0.0, 0, (d / "model.pt").stat().st_mtime if (d / "model.pt").exists() else 0.0)

    found = {p.parent for pattern in ("**/checkpoint_*/model.pt", "**/checkpoint_*/meta.json") for p in trial_dir.glob(pattern)}
    return str(max(found, key=score).relative_to(trial_dir.parent)) if found else ""


def _first_error_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    # Tune writes the traceback; its last line names the exception.
    return lines[-1][:300] if lines else "error"


def _round(x, n):
    return None if x is None else round(float(x), n)


def _f(x, n: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{n}f}"


def _signed(x) -> str:
    return "-" if x is None else f"{x:+.3f}"


def _p(p) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def main(argv: list[str]) -> int:
    from runner.storage import Results, is_uri

    if len(argv) != 1 or not (is_uri(argv[0]) or Path(argv[0]).is_dir()):
        print("usage: python -m runner.summary RESULTS_DIR|URI", file=sys.stderr)
        return 2
    results = Results(argv[0])
    try:
        results.pull()
        rows = write(results.local)
        results.push()
        print(console_table(variant_rows(rows, reference=study_reference(results.local))))
    except OSError as e:
        print(f"error: {argv[0]}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    finally:
        results.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
