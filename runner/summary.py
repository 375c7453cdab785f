"""Results dir -> study tables: summary.csv / summary.parquet (a row per trial), summary.md (a row per variant).

Reads only what Ray Tune left on disk (each trial's params.json, result.json and error.txt), so it
works on any finished, interrupted or restored study: ``python -m runner.summary RESULTS_DIR``.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from pathlib import Path

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
        results = _read_results(d / "result.json")
        last = results[-1] if results else {}
        err = d / "error.txt"
        status = last.get("status", "pending")
        if err.exists():
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
            "error": _first_error_line(err) if err.exists() else "",
            "_order": spec.get("order", 0),
        })
    rows.sort(key=lambda r: (r.pop("_order"), r["variant"], r["seed"]))
    return rows


def variant_rows(rows: list[dict], order: list[str] | None = None) -> list[dict]:
    """Per variant: trials, finished trials, mean/std/min/max of best val accuracy, mean best epoch."""
    variants = list(dict.fromkeys(order or [])) + [v for v in dict.fromkeys(r["variant"] for r in rows) if v not in (order or [])]
    out = []
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        if not rs:
            continue
        done = [r for r in rs if r["status"] != "error"]  # an errored trial's numbers describe nothing
        accs = [r["best_val_accuracy"] for r in done if r["best_val_accuracy"] is not None]
        eps = [r["best_epoch"] for r in done if r["best_epoch"]]
        gaps = [r["final_train_accuracy"] - r["final_val_accuracy"] for r in done
                if r["final_train_accuracy"] is not None and r["final_val_accuracy"] is not None]
        out.append({
            "variant": v, "trials": len(rs), "ok": sum(r["status"] in ("completed", "early_stopped") for r in rs),
            "mean": statistics.fmean(accs) if accs else None,
            "std": statistics.stdev(accs) if len(accs) > 1 else None,
            "min": min(accs) if accs else None, "max": max(accs) if accs else None,
            "best_epoch": statistics.median(eps) if eps else None,
            "train_val_gap": statistics.fmean(gaps) if gaps else None,
        })
    return out


def write(results_dir: Path, order: list[str] | None = None, partial: bool = False) -> list[dict]:
    """Write summary.csv, summary.parquet and summary.md into ``results_dir``; returns the trial rows."""
    results_dir = Path(results_dir)
    rows = trial_rows(results_dir)
    with open(results_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    _write_parquet(results_dir / "summary.parquet", rows)
    (results_dir / "summary.md").write_text(markdown(results_dir.name, variant_rows(rows, order), rows, partial))
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
    lines += [
        "Best val accuracy per variant over seeds (fractions 0..1). Gap = final train accuracy - final val accuracy.",
        "",
        "| variant | trials | ok | mean | std | min | max | median best epoch | train-val gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        lines.append(f"| {v['variant']} | {v['trials']} | {v['ok']} | {_f(v['mean'])} | {_f(v['std'])} | {_f(v['min'])} | "
                     f"{_f(v['max'])} | {_f(v['best_epoch'], 1)} | {_f(v['train_val_gap'])} |")
    bad = [r for r in rows if r["status"] not in ("completed", "early_stopped")]
    if bad:
        lines += ["", "Trials that did not finish:", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {r['status']}{': ' + r['error'] if r['error'] else ''}" for r in bad]
    return "\n".join(lines) + "\n"


def console_table(variants: list[dict]) -> str:
    """Fixed-column table for the terminal."""
    w = max([7] + [len(v["variant"]) for v in variants])
    head = f"{'variant':<{w}}  trials  ok    mean     std     min     max  best ep    gap"
    lines = [head, "-" * len(head)]
    for v in variants:
        lines.append(f"{v['variant']:<{w}}  {v['trials']:>6}  {v['ok']:>2}  {_f(v['mean']):>6}  {_f(v['std']):>6}  "
                     f"{_f(v['min']):>6}  {_f(v['max']):>6}  {_f(v['best_epoch'], 1):>7}  {_f(v['train_val_gap']):>5}")
    return "\n".join(lines)


def _read_results(path: Path) -> list[dict]:
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
    found = sorted(trial_dir.glob("**/checkpoint_*/model.pt"), key=lambda p: p.stat().st_mtime)
    return str(found[-1].parent.relative_to(trial_dir.parent)) if found else ""


def _first_error_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    # Tune writes the traceback; its last line names the exception.
    return lines[-1][:300] if lines else "error"


def _round(x, n):
    return None if x is None else round(float(x), n)


def _f(x, n: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{n}f}"


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python -m runner.summary RESULTS_DIR")
    print(console_table(variant_rows(write(Path(sys.argv[1])))))
