"""What a search study answers: its best confirmed sample, its verdict against the reference, and its config to paste.

Pure numbers from the study's summary (no Ray, no torch). The console's last lines, summary.md and report.html all
say it from ``of(summary)``. A confirmed sample (Search(confirm=k)) ran every epoch over every seed of the study, so
it has the same columns and verdict as a fixed variant. It was also picked as one of the k best on those seeds' val
scores, so its difference from the reference on them is optimistic (the winner's curse); the test split, which no
choice saw, is the honest estimate where the study holds one out.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from runner.results.render import fmt, pvalue, signed

OPTIMISTIC = (
    "picked as one of the best on these seeds' val scores, so its Δ vs the reference on them is optimistic "
    "(the winner's curse)"
)


@dataclass(frozen=True)
class Answer:
    sample: str  # s003
    values: dict  # dotted key -> its sampled value, exact (pasting it reruns the confirmed config)
    confirmed: bool  # ran every epoch over every seed (Search(confirm=k)); False: the search's best by score only
    reference: str | None
    row: object | None  # its runner.results.summary.VariantSummary (confirmed samples only)
    rank_of: int  # how many samples were confirmed (or searched, unconfirmed)

    def set_line(self) -> str:
        """``--set key=value ...`` for the command line (values that parse back to themselves)."""
        return " ".join(shlex.quote(f"--set={k}={_literal(v)}") for k, v in self.values.items())

    def variant(self) -> str:
        """A variant dict to paste into a study file's ``variants``."""
        return "{" + ", ".join(f"{json.dumps(k)}: {_python(v)}" for k, v in self.values.items()) + "}"

    def verdict_line(self) -> str:
        """``s003 vs base: 0.912 ± 0.010 over 3 seeds, Δ +0.009 ± 0.004, P(beats base) 0.81, p_holm 0.04: better``."""
        r = self.row
        if r is None:
            return f"{self.sample}: not confirmed"
        parts = [f"{fmt(r.mean)} ± {fmt(r.ci)} over {r.n} seeds"]
        if self.reference and r.variant != self.reference:
            e = r.effect or {}
            delta = f"Δ {signed(e.get('delta', r.mean_diff))}"
            parts.append(delta + (f" ± {fmt(e['ci'])}" if e.get("ci") is not None else ""))
            if e.get("p_better") is not None:
                parts.append(f"P(beats {self.reference}) {e['p_better']:.2f}")
            parts.append(f"p_holm {pvalue(r.p_holm if r.p_holm is not None else r.p)}")
        test = r.test_accuracy
        if test.n:
            parts.append(f"test accuracy {fmt(test.mean)} ± {fmt(test.ci)}")
        return f"{self.sample} vs {self.reference}: " + ", ".join(parts) + f": {r.verdict or '-'}"


def of(s) -> Answer | None:
    """The answer of a search study's summary ``s`` (runner.results.summary.StudySummary); None without a search or
    before any sample has a value. The best confirmed sample by its mean; without confirmation, the search's best."""
    if s.study is None or not s.search or not s.search[0]:
        return None
    samples = s.search[0]  # best first (runner.results.search_summary.samples)
    confirmed = [x for x in samples if x.confirmed and x.mean is not None]
    rows = {v.variant: v for v in s.variants}
    if confirmed:
        best = max(confirmed, key=lambda x: rows[x.name].mean if x.name in rows else x.mean)
        return Answer(best.name, _exact(s, best.name), True, s.study.reference, rows.get(best.name), len(confirmed))
    best = samples[0]
    if best.mean is None and best.score is None:
        return None
    return Answer(best.name, _exact(s, best.name), False, s.study.reference, None, len(samples))


def lines(a: Answer | None) -> list[str]:
    """The answer as plain lines (the console's last ones; summary.md quotes them)."""
    if a is None:
        return []
    if not a.confirmed:
        return [f"best   {a.sample} by the search's score (not confirmed: Search(confirm=k), or --confirm K with "
                "--resume, runs the best over every seed and gives them verdicts)",
                f"  {a.set_line()}"]  # fmt: skip
    return [
        f"answer {a.verdict_line()}",
        f"       ({a.sample} is the best of {a.rank_of} confirmed samples, {OPTIMISTIC}"
        + ("; the test accuracy is not)" if a.row is not None and a.row.test_accuracy.n else ")"),
        f"  as options:  {a.set_line()}",
        f"  as variant:  {a.variant()}",
    ]


def markdown(a: Answer | None) -> list[str]:
    """The search's answer (runner.results.answer): its verdict and its config to paste."""
    if a is None:
        return []
    if not a.confirmed:
        return ["## Best sample (not confirmed)", "",
                f"{a.sample} has the search's best score; `Search(confirm=k)` (or `--confirm K` with `--resume`) runs "
                "the best samples over every seed and gives them verdicts.", "", "```", a.set_line(), "```", ""]  # fmt: skip
    honest = "; the test accuracy is not" if a.row is not None and a.row.test_accuracy.n else ""
    return ["## Answer", "", a.verdict_line(), "",
            f"{a.sample} is the best of {a.rank_of} confirmed samples, {OPTIMISTIC}{honest}. To use it:", "",
            "```", a.set_line(), a.variant(), "```", ""]  # fmt: skip


def _exact(s, sample: str) -> dict:
    """The searched keys' values of ``sample`` as planned (every seed has the same)."""
    keys = list(s.study.search.get("space", {}))
    seeds = [p["seed"] for p in s.study.trials if p.get("variant") == sample]
    values = s.study.values(sample, seeds[0]) if seeds else {}
    return {k: values[k] for k in keys if k in values}


def _literal(v) -> str:
    """A value as --set reads it back (runner.study.keys.parse_value): numbers and tuples as literals, a string
    as is unless it would read as something else."""
    from runner.study.keys import parse_value

    if isinstance(v, str) and parse_value(v) == v:
        return v
    return repr(tuple(v) if isinstance(v, list) else v)


def _python(v) -> str:
    return json.dumps(v) if isinstance(v, str) else repr(tuple(v) if isinstance(v, list) else v)
