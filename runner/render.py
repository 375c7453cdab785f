"""Text renderings of a study's summary: the console's fixed-column table and summary.md.

Numbers come from runner.summary (VariantSummary) and runner.results (TrialRecord); the cell
formatting here is shared with report.html (runner.report).
"""

from __future__ import annotations

import math

from runner import stats
from runner.results import TRAINED

VARIANT_HEADER = [
    "variant",
    "trials",
    "ok",
    "n",
    "mean ± 95% CI",
    "std",
    "min",
    "max",
    "median best epoch",
    "train-val gap",
    "Δ vs reference",
    "test",
    "p (Holm)",
    "verdict",
]
SHORT_VERDICT = {"no detectable difference": "no diff"}


def fmt(x, n: int = 3) -> str:
    """A number with ``n`` decimals, or "-" for none."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{n}f}"


def signed(x) -> str:
    return "-" if x is None else f"{x:+.3f}"


def pvalue(p) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def variant_cells(v) -> list[str]:
    """A VariantSummary as the text cells under VARIANT_HEADER (summary.md and report.html)."""
    mean = fmt(v.mean) + (f" ± {fmt(v.ci)}" if v.ci is not None else "")
    gap = fmt(v.train_val_gap) + (" overfits" if v.overfitting else "")
    return [
        v.variant,
        str(v.trials),
        str(v.ok),
        str(v.n),
        mean,
        fmt(v.std),
        fmt(v.min),
        fmt(v.max),
        fmt(v.best_epoch, 1),
        gap,
        signed(v.mean_diff),
        v.test or "-",
        pvalue(v.p_holm),
        v.verdict or "-",
    ]


def reference_of(variants) -> str | None:
    return next((v.variant for v in variants if v.verdict == "reference"), None)


def method_note() -> str:
    """How the comparison is made, in one sentence set (summary.md and report.html)."""
    return (
        f"Δ = mean over shared seeds of (variant - reference). Test: paired t-test below {stats.WILCOXON_MIN} "
        f"shared seeds, Wilcoxon signed-rank from {stats.WILCOXON_MIN}; p Holm-corrected over the variants "
        f"compared; verdict at α = {stats.ALPHA}."
    )


def markdown(name: str, variants, records, partial: bool = False) -> str:
    from runner.summary import OVERFIT_GAP

    lines = [f"# {name}", ""]
    if partial:
        lines += ["**Partial results: the study was interrupted; resume it to finish.**", ""]
    lines += [
        "Best val accuracy per variant over seeds (fractions 0..1): n seeds, mean ± half-width of the 95 % confidence "
        "interval (t-distribution; none for n = 1). Gap = final train accuracy - final val accuracy, mean over seeds; "
        f"flagged *overfits* when above {OVERFIT_GAP:.2f}.",
        "",
        f"Reference: {reference_of(variants) or '-'}. {method_note()}",
        "",
        "| " + " | ".join(VARIANT_HEADER) + " |",
        "|" + "|".join("---" if h in ("variant", "test", "verdict") else "---:" for h in VARIANT_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(variant_cells(v)) + " |" for v in variants]
    bad = [r for r in records if r.status not in TRAINED]
    if bad:
        lines += ["", "Trials that did not finish:", ""]
        lines += [f"- {r.variant} seed {r.seed}: {r.status}{': ' + r.error if r.error else ''}" for r in bad]
    return "\n".join(lines) + "\n"


def console_table(variants) -> str:
    """Fixed-column table for the terminal; ! marks a train-val gap above OVERFIT_GAP."""
    from runner.summary import OVERFIT_GAP

    w = max([7] + [len(v.variant) for v in variants])
    head = f"{'variant':<{w}}  trials  ok    mean  ±95%ci     std     min     max  best ep     gap    p holm  verdict"
    lines = [head, "-" * len(head)]
    for v in variants:
        flag = "!" if v.overfitting else " "
        verdict = v.verdict or "-"
        lines.append(
            f"{v.variant:<{w}}  {v.trials:>6}  {v.ok:>2}  {fmt(v.mean):>6}  {fmt(v.ci):>6}  "
            f"{fmt(v.std):>6}  {fmt(v.min):>6}  {fmt(v.max):>6}  {fmt(v.best_epoch, 1):>7}  "
            f"{fmt(v.train_val_gap):>6}{flag}  {pvalue(v.p_holm):>7}  {SHORT_VERDICT.get(verdict, verdict)}"
        )
    ref = reference_of(variants)
    if ref and len(variants) > 1:
        lines.append(
            f"verdict: vs {ref} over shared seeds, Holm-corrected p < {stats.ALPHA}; no diff = no detectable difference"
        )
    if any(v.overfitting for v in variants):
        lines.append(f"! train-val gap above {OVERFIT_GAP:.2f}: overfits")
    return "\n".join(lines)
