"""Text renderings of a study's summary: the console's fixed-column table and summary.md.

Numbers come from runner.results.summary (VariantSummary) and runner.results (TrialRecord); the cell
formatting here is shared with report.html (runner.results.report).
"""

from __future__ import annotations

import math

from runner.results import stats
from runner.results.status import TRAINED, Status
from runner.results.summary import OVERFIT_GAP
from runner.results.verdict import Verdict

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
METRIC_WORDS = {
    "best_val_accuracy": "Best val accuracy (the best epoch, picked on val: optimistic)",
    "test_accuracy": "Test accuracy (the best val epoch's model on the test split, which nothing was picked on)",
    "final_val_accuracy": "Final val accuracy (the last epoch)",
}
SECOND_HEADER = ["variant", "test accuracy ± 95% CI", "best val - test ± 95% CI", "epochs to 95% ± 95% CI",
                 "Δ epochs vs reference", "p (Holm)", "convergence"]  # fmt: skip


def fmt(x, n: int = 3) -> str:
    """A number with ``n`` decimals, or "-" for none."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{n}f}"


def signed(x) -> str:
    return "-" if x is None else f"{x:+.3f}"


def pvalue(p) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


EFFECT_HEADER = ["variant", "Δ vs reference ± 95% CI", "P(beats reference on a new seed)",
                 "detectable Δ (80 % power)", "seeds to detect Δ"]  # fmt: skip


def verdict_text(v) -> str:
    """The verdict, with the look that reached it for sequential seeds."""
    if v.pruned and v.n < 2 and v.verdict != Verdict.REFERENCE:
        return f"pruned ({v.pruned} of {v.trials} seeds)"
    if v.decided_at is None or v.verdict == Verdict.REFERENCE:
        return v.verdict or "-"
    if v.verdict == Verdict.UNDECIDED:
        return f"undecided ({v.decided_at} seeds so far)"
    return f"{v.verdict} (at {v.decided_at} seeds)"


def effect_cells(v) -> list[str]:
    """A VariantSummary's effect size cells under EFFECT_HEADER ("-" for the reference)."""
    e = v.effect
    if not e:
        return [v.variant, str(Verdict.REFERENCE), "-", "-", "-"]
    delta = signed(e["delta"]) + (f" ± {fmt(e['ci'])}" if e["ci"] is not None else "")
    p_better = "-" if e["p_better"] is None else f"{e['p_better']:.0%}"
    needs = "-" if e["n"] < 2 else (f"~{e['seeds_needed']}" if e["seeds_needed"] else "not within 1000")
    return [v.variant, delta, p_better, fmt(e["detectable"]), needs]


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
        pvalue(v.p_holm if v.decided_at is None else v.p),
        verdict_text(v),
    ]


def _mean_ci(m) -> str:
    return fmt(m.mean) + (f" ± {fmt(m.ci)}" if m.ci is not None else "")


def second_cells(v) -> list[str]:
    """A VariantSummary's test split and convergence as text cells under SECOND_HEADER."""
    e = v.epochs_to_95
    ep = fmt(e.mean, 1) + (f" ± {fmt(e.ci, 1)}" if e.ci is not None else "")
    diff = "-" if e.mean_diff is None else f"{e.mean_diff:+.1f}"
    return [v.variant, _mean_ci(v.test_accuracy), _mean_ci(v.val_overestimate), ep, diff, pvalue(e.p_holm),
            e.verdict or "-"]  # fmt: skip


def has_test(variants) -> bool:
    return any(v.test_accuracy.n for v in variants)


def rankings(variants) -> list[str]:
    """The variants ranked by the study's metric (highest first) and by epochs to 95 % (fewest first)."""
    out = []
    by_metric = sorted((v for v in variants if v.mean is not None), key=lambda v: -v.mean)
    if len(by_metric) > 1:
        out.append(f"ranked by {by_metric[0].metric}: " + " > ".join(f"{v.variant} {fmt(v.mean)}" for v in by_metric))
    by_speed = sorted((v for v in variants if v.epochs_to_95.mean is not None), key=lambda v: v.epochs_to_95.mean)
    if len(by_speed) > 1:
        out.append("ranked by epochs_to_95 (fewest first): "
                   + " < ".join(f"{v.variant} {fmt(v.epochs_to_95.mean, 1)}" for v in by_speed))  # fmt: skip
    return out


def reference_of(variants) -> str | None:
    return next((v.variant for v in variants if v.verdict == Verdict.REFERENCE), None)


def sequential_study(variants) -> bool:
    return any(v.decided_at is not None for v in variants)


def method_note(variants=()) -> str:
    """How the comparison is made, in one sentence set (summary.md and report.html)."""
    if sequential_study(variants):
        return (
            "Δ = mean over shared seeds of (variant - reference). Sequential seeds: at each look a paired t-test "
            f"over the first n seeds; the error rate α = {stats.ALPHA} is spent over the looks (Pocock-type alpha "
            "spending) and Holm-corrected over the variants within a look, so the chance of any false verdict stays "
            f"below {stats.ALPHA}; p is the deciding (or last) look's, and a verdict says at how many seeds it came."
        )
    return (
        f"Δ = mean over shared seeds of (variant - reference). Test: paired t-test below {stats.WILCOXON_MIN} "
        f"shared seeds, Wilcoxon signed-rank from {stats.WILCOXON_MIN}; p Holm-corrected over the variants "
        f"compared; verdict at α = {stats.ALPHA}."
    )


def markdown(name: str, variants, records, partial: bool = False, search=None, answer: list[str] = ()) -> str:
    """summary.md; ``answer``: a search's answer section (runner.results.answer.markdown)."""
    lines = [f"# {name}", ""]
    if partial:
        lines += ["**Partial results: the study was interrupted; resume it to finish.**", ""]
    lines += answer
    metric = variants[0].metric if variants else "best_val_accuracy"
    lines += [
        f"{METRIC_WORDS[metric]} per variant over seeds (fractions 0..1; `{metric}` ranks the variants and decides "
        "the verdicts): n seeds, mean ± half-width of the 95 % confidence interval (t-distribution; none for n = 1). "
        f"Gap = final train accuracy - final val accuracy, mean over seeds; flagged *overfits* when above {OVERFIT_GAP:.2f}.",
        "",
        f"Reference: {reference_of(variants) or '-'}. {method_note(variants)}",
        "",
        "| " + " | ".join(VARIANT_HEADER) + " |",
        "|" + "|".join("---" if h in ("variant", "test", "verdict") else "---:" for h in VARIANT_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(variant_cells(v)) + " |" for v in variants]
    caveat = optimism_note(search)
    lines += ["", caveat] if caveat else []
    lines += _effects_markdown(variants)
    lines += _second_markdown(variants)
    lines += search_markdown(*search) if search else []
    left_out = sum(not r.planned for r in records)
    if left_out:
        lines += ["", f"{left_out} trials of variants or seeds no longer in the study are kept on disk and left out."]
    bad = [r for r in records if r.status not in TRAINED and r.status != Status.PRUNED and r.planned]
    pruned = sum(r.status == Status.PRUNED and r.planned for r in records)
    if pruned:
        lines += ["", f"{pruned} trials were pruned (stopped early by ASHA); they are left out of every mean and test."]
    if bad:
        lines += ["", "Trials that did not finish:", ""]
        lines += [f"- {r.variant} seed {r.seed}: {r.status}{': ' + r.error if r.error else ''}" for r in bad]
    return "\n".join(lines) + "\n"


TOP_SAMPLES = 10  # samples listed in summary.md and on the console (report.html lists all)


def sample_cells(s) -> list[str]:
    """A search sample's row: name, its values, seeds run to the end, mean ± CI, pruned seeds."""
    values = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in s.values.values()]
    return [s.name + CONFIRMED_MARK * s.confirmed, *values, str(s.n), fmt(s.mean), fmt(s.ci), str(s.pruned),
            fmt(s.score)]  # fmt: skip


CONFIRMED_MARK = "*"  # after a confirmed sample's name


def sample_header(samples) -> list[str]:
    return ["sample", *(samples[0].values if samples else []), "n", "mean", "±95% CI", "pruned", "score"]


SAMPLES_NOTE = (
    "Samples best first by the mean over seeds that ran every epoch (n), with the half-width of its 95 % CI; "
    "pruned: seeds ASHA stopped early (out of the mean); score: the mean over every seed, pruned ones at the "
    "epoch they stopped (what the searcher learns from)."
)
CONFIRMED_NOTE = (
    f"{CONFIRMED_MARK} confirmed: after the search, run every epoch over every seed (pruned trials carried on from "
    "their checkpoints), and compared with the reference in the variant table above like a fixed variant."
)


def optimism_note(search) -> str:
    """What the variant table must say of confirmed samples: they were picked on the seeds they are compared on."""
    confirmed = [s.name for s in search[0] if s.confirmed] if search else []
    if not confirmed:
        return ""
    return (f"Confirmed samples ({', '.join(confirmed)}): picked as the search's best on these seeds' val scores, so "
            "their Δ and verdicts on these seeds are optimistic (the winner's curse); the test split, which no pick "
            "saw, and fresh seeds (max_seeds, --seeds) are not.")  # fmt: skip


IMPORTANCE_NOTE = (
    "Importance: how much a random forest's fit of each trial's value from the sampled values drops when that "
    "hyper-parameter's values are shuffled (scikit-learn permutation importance; log-scale keys as log10), as a "
    "share of the total."
)


def search_markdown(samples, importance) -> list[str]:
    head = sample_header(samples)
    lines = ["", "## Search", "", SAMPLES_NOTE, "", "| " + " | ".join(head) + " |",
             "|---|" + "|".join("---:" for _ in head[1:]) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(sample_cells(s)).replace(CONFIRMED_MARK, "\\" + CONFIRMED_MARK, 1) + " |"
              for s in samples[:TOP_SAMPLES]]  # fmt: skip
    if any(s.confirmed for s in samples):
        lines += ["", CONFIRMED_NOTE]
    if len(samples) > TOP_SAMPLES:
        lines += ["", f"{len(samples) - TOP_SAMPLES} more samples in summary.csv and report.html."]
    if importance:
        lines += ["", IMPORTANCE_NOTE, "", "| hyper-parameter | importance |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in importance.items()]
    return lines


def search_console(samples, importance) -> list[str]:
    """The top samples and the importance, as fixed-column lines."""
    if not samples:
        return []
    head, rows = sample_header(samples), [sample_cells(s) for s in samples[: TOP_SAMPLES // 2]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    mark = f"; {CONFIRMED_MARK} confirmed" if any(s.confirmed for s in samples) else ""
    out = [f"top samples (n: seeds run to the end; pruned: stopped by ASHA{mark})", line(head), *map(line, rows)]
    if importance:
        out.append("importance: " + ", ".join(f"{k} {v:.3f}" for k, v in importance.items()))
    return out


def _effects_markdown(variants) -> list[str]:
    if len(variants) < 2:
        return []
    return [
        "",
        "## Effect sizes",
        "",
        "Δ: the mean paired difference from the reference with its 95 % t-interval. P(beats the reference on a new "
        "seed): the t predictive probability that one more seed's difference is positive. Detectable Δ: the smallest "
        "difference these seeds detect with 80 % power (two-sided paired t, α = 0.05). Seeds to detect Δ: about how "
        "many seeds would detect the observed Δ with 80 % power.",
        "",
        "| " + " | ".join(EFFECT_HEADER) + " |",
        "|---|" + "|".join("---:" for _ in EFFECT_HEADER[1:]) + "|",
        *["| " + " | ".join(effect_cells(v)) + " |" for v in variants],
    ]


def _second_markdown(variants) -> list[str]:
    lines = ["", "## Test split and convergence", ""]
    if has_test(variants):
        lines.append("Test accuracy: each trial's best val epoch, its model on the test split. Best val - test: how far "
                     "picking the epoch on val overstates accuracy on new images.")  # fmt: skip
    else:
        lines.append("No test split: add ROOT/test/CLASS/ or hold one out with data.test_fraction.")
    lines += [
        "Epochs to 95 %: the first epoch whose val accuracy reaches 95 % of the trial's best; compared with the "
        "reference like the metric above (fewer = faster).",
        "",
        "| " + " | ".join(SECOND_HEADER) + " |",
        "|" + "|".join("---" if h in ("variant", "convergence") else "---:" for h in SECOND_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(second_cells(v)) + " |" for v in variants]
    return lines + [""] + [f"- {line}" for line in rankings(variants)]


def console_table(variants) -> str:
    """Fixed-column table for the terminal; ! marks a train-val gap above OVERFIT_GAP."""
    w = max([7] + [len(v.variant) for v in variants])
    head = f"{'variant':<{w}}  trials  ok    mean  ±95%ci     std     min     max  best ep     gap    p holm  verdict"
    lines = [head, "-" * len(head)]
    for v in variants:
        flag = "!" if v.overfitting else " "
        verdict = verdict_text(v).replace(Verdict.NO_DIFFERENCE, Verdict.NO_DIFFERENCE.short)
        p = v.p_holm if v.decided_at is None else v.p
        lines.append(
            f"{v.variant:<{w}}  {v.trials:>6}  {v.ok:>2}  {fmt(v.mean):>6}  {fmt(v.ci):>6}  "
            f"{fmt(v.std):>6}  {fmt(v.min):>6}  {fmt(v.max):>6}  {fmt(v.best_epoch, 1):>7}  "
            f"{fmt(v.train_val_gap):>6}{flag}  {pvalue(p):>7}  {verdict}"
        )
    ref = reference_of(variants)
    if ref and len(variants) > 1 and sequential_study(variants):
        lines.append(f"verdict: vs {ref}, sequential seeds with α = {stats.ALPHA} spent over the looks (p: the "
                     "deciding look's); no diff = no detectable difference")  # fmt: skip
    elif ref and len(variants) > 1:
        lines.append(
            f"verdict: vs {ref} over shared seeds, Holm-corrected p < {stats.ALPHA}; no diff = no detectable difference"
        )
    if any(v.overfitting for v in variants):
        lines.append(f"! train-val gap above {OVERFIT_GAP:.2f}: overfits")
    return "\n".join(lines + [""] + _effects_console(variants, w) + [""] + _second_console(variants, w))


def _effects_console(variants, w: int) -> list[str]:
    head = f"{'variant':<{w}}   Δ vs ref  ±95%ci  P(beats ref)  detectable Δ  seeds for Δ"
    lines = [head, "-" * len(head)]
    for v in variants:
        _, delta, p_better, mde, needs = effect_cells(v)
        d, _, ci = delta.partition(" ± ")
        lines.append(f"{v.variant:<{w}}  {d:>9}  {ci or '-':>6}  {p_better:>12}  {mde:>12}  {needs:>11}")
    return lines


def _second_console(variants, w: int) -> list[str]:
    """Test accuracy, how far best val overstates it, and epochs to 95 % with their comparison; the rankings."""
    head = f"{'variant':<{w}}    test  ±95%ci  val-test  ±95%ci  ep to 95  ±95%ci  Δ epochs   p holm  convergence"
    lines = [head, "-" * len(head)]
    for v in variants:
        t, o, e = v.test_accuracy, v.val_overestimate, v.epochs_to_95
        diff = "-" if e.mean_diff is None else f"{e.mean_diff:+.1f}"
        verdict = e.verdict or "-"
        lines.append(
            f"{v.variant:<{w}}  {fmt(t.mean):>6}  {fmt(t.ci):>6}  {signed(o.mean):>8}  {fmt(o.ci):>6}  "
            f"{fmt(e.mean, 1):>8}  {fmt(e.ci, 1):>6}  {diff:>8}  {pvalue(e.p_holm):>7}  {verdict.replace(Verdict.NO_DIFFERENCE, Verdict.NO_DIFFERENCE.short)}"
        )
    if not has_test(variants):
        lines.append("test: no test split (add ROOT/test/CLASS/ or --set data.test_fraction=0.2)")
    return lines + rankings(variants)
