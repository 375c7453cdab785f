"""Every line a study prints on the console, from the plan to the advice at its end: fixed columns, one idea a line.

Only the CLI prints; these functions print what they are given (the plan, the study, its one summary).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from runner import storage
from runner.config import Study
from runner.results import answer, files, render, sequential, studyfile
from runner.results.summary import StudySummary
from runner.results.verdict import Verdict
from runner.storage import Results
from runner.study.plan import Plan
from runner.study.space import describe

DEFAULT_STORAGE = "~/ray_results"


def dry_run(plan: Plan, study: Study, location: str, disk: int, address: str | None) -> None:
    """The ``plan`` on this machine (a cluster given by --address is not contacted), the results dir it would make
    under ``location`` and the ``disk`` bytes it would write; nothing is created."""
    where = "this machine" if not address else f"this machine (the cluster at {address} is not contacted in a dry run)"
    print(f"{_study_line(plan)}, {plan.concurrent} at a time on {where} ({plan.cluster.cpus:g} CPUs)")
    print(f"output {storage.join(location, plan.study)}")
    search(study)
    print(f"disk   about {gib(disk)} of checkpoints, events and results")
    print()
    w = max(7, *(len(s.variant) for s in plan.specs))
    print(f"{'variant':<{w}}  seed  epochs  batch  workers  cpus/worker  gpus/worker  changes")
    for s in plan.specs:
        cfg = s.config
        changes = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in study.variants[s.variant].items()) or "(base)"  # fmt: skip
        print(
            f"{s.variant:<{w}}  {s.seed:>4}  {cfg.train.epochs:>6}  {cfg.train.batch_size:>5}  "
            f"{cfg.resources.workers_per_trial:>7}  {s.fit.cpus_per_worker:>11g}  {cfg.resources.gpus_per_worker:>11g}  {changes}"
        )
    print("\ndry run: nothing started")


def study_plan(plan: Plan, results: Results, resuming: bool) -> None:
    """The plan's notes, its size and where it runs, and the results dir."""
    for n in plan.notes:
        print(f"note   {n}")
    c = plan.cluster
    print(
        f"{_study_line(plan)}, {plan.concurrent} at a time on {c.cpus:g} CPUs"
        + (f" / {c.gpus:g} GPUs" if c.gpus else "")
        + f" ({c.nodes} node{'s' if c.nodes > 1 else ''})"
    )
    print(f"output {results}" + ("  (resuming: finished trials are kept)" if resuming else ""))


def search(study: Study) -> None:
    """What a search samples and how, and the scheduler, in a line each."""
    from runner.driver.search import batches

    s = study.search
    if s is not None:
        space = ", ".join(f"{k} ~ {describe(d)}" for k, d in s.space.items())
        later = f" ({batches(s)[0]} now, the rest as results come in)" if len(batches(s)) > 1 else ""
        print(f"search {s.samples} {s.algorithm} samples{later}, seed {s.seed}: {space}")
        if s.confirm:
            print(f"       then the {s.confirm} best samples by score are confirmed: run every epoch over every seed, "
                  "compared with the reference")  # fmt: skip
    if study.scheduler is not None:
        a = study.scheduler
        print(f"asha   samples behind the other samples on val accuracy stop at epoch {a.grace_epochs}, "
              f"{a.grace_epochs * a.reduction_factor:g}, ... (keeping the top 1/{a.reduction_factor:g}); they count as "
              "pruned; the reference and fixed variants run every epoch")  # fmt: skip


def end(args: argparse.Namespace, results: Results, s: StudySummary, report, seconds: float, fit_seconds: float) -> int:
    """The console's last lines from the study's summary: its tables, how long it took, where its files are, what
    did not finish and how to finish it, or advice; the exit code."""
    records, unfinished = s.planned, s.unfinished
    print()
    print(render.console_table(s.variants))
    if s.search:
        print("\n".join(["", *render.search_console(*s.search)]))
    print()
    print(f"{'stopped' if unfinished else 'done'} after {seconds:.0f} s ({fit_seconds:.0f} s running trials)")
    where(results, report)
    if unfinished:
        print(f"interrupted: {len(unfinished)} of {len(records)} trials unfinished (summary marked partial); finish "
              f"them with\n  {resume_command(args, results)}", file=sys.stderr)  # fmt: skip
        return 130
    failed = [r for r in records if not r.status.finished]
    if failed:
        print(
            "failed trials: " + ", ".join(f"{r.variant} seed {r.seed} ({r.status}: {r.error[:120]})" for r in failed),
            file=sys.stderr,
        )
        return 1
    advise(args, results, s)
    if lines := answer.lines(answer.of(s)):  # a search's answer: the last lines
        print("\n".join(["", *lines]))
    return 0


def advise(args: argparse.Namespace, results: Results, s: StudySummary) -> None:
    """When variants are undecided with a fixed number of seeds: the command that adds seeds, and how many."""
    variants = s.variants
    undecided = [
        v
        for v in variants
        if v.verdict in (Verdict.NO_DIFFERENCE, Verdict.TOO_FEW_SEEDS) and not (v.pruned and v.n < 2)
    ]  # fmt: skip - a sample ASHA pruned is decided enough
    if not undecided or any(v.decided_at is not None for v in variants):
        return  # all decided, or sequential seeds already went as far as max_seeds
    seeds = _seeds_run(s.study)
    needed = [v.effect.get("seeds_needed") for v in undecided if v.effect.get("seeds_needed")]
    target = max(len(seeds) + 1, min(max(needed, default=2 * len(seeds)), max(2 * len(seeds), 10)))
    more = sequential.extend(seeds, target)
    added = more[len(seeds) :]
    names = ", ".join(v.variant for v in undecided[:6]) + (
        f" and {len(undecided) - 6} more" if len(undecided) > 6 else ""
    )
    print(f"undecided: {names} (with {_n(len(seeds), 'seed')}); to run "
          f"{'seeds' if len(added) > 1 else 'seed'} {seed_spec(added)} too (only the new trials run), use\n"
          f"  {resume_command(args, results, seed_spec(more))}")  # fmt: skip


def resume_command(args, results, seeds: str | None = None) -> str:
    """The command that resumes (or, with ``seeds``, grows) this study, as the user ran it."""
    words = [args.config, *(f"--set={v}" for v in args.set)]
    if seeds:
        words.append(f"--seeds={seeds}")
    if args.storage != DEFAULT_STORAGE:
        words.append(f"--storage={args.storage}")
    return f"python -m runner.tune {shlex.join(words)} --resume {shlex.quote(results.uri)}"


def _seeds_run(found: studyfile.StudyFile) -> list[int]:
    """The study's seeds, from the study.json its summary read."""
    return list(found.seeds) if found and found.seeds else sorted({p["seed"] for p in found.trials})


def seed_spec(seeds: list[int]) -> str:
    """[0, 1, 2, 3, 7] -> '0-3,7'."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(f"{start}-{s}" if s > start else str(s))
            start = None
    return ",".join(parts)


def where(results: Results, report) -> None:
    print(f"results     {results}")
    print(f"summary     {results.join(files.SUMMARY_MD)}")
    if report:
        print(f"report      {results.join(files.REPORT)}")
    print(f"tensorboard {storage.tensorboard_command(results.uri)}")


def _study_line(plan: Plan) -> str:
    return (
        f"study  {plan.study}: {_n(len(plan.variants), 'variant')} x {_n(len(plan.seeds), 'seed')} = "
        f"{len(plan.specs)} trials"
    )


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def data_line(s: dict) -> str:
    when = "from cache" if s["from_cache"] else f"loaded in {s['load_seconds']:.1f} s"
    splits = " / ".join(f"{s[f'{name}_images']} {name}" for name in ("train", "val", "test") if f"{name}_images" in s)
    gray = " grayscale" if s.get("channels") == 1 else ""
    line = (
        f"data   {s['source']}: {splits} images, {len(s['classes'])} classes, "
        f"{s['image_size']}x{s['image_size']}{gray}, {when}"
    )
    if s["skipped_files"]:
        line += f", {len(s['skipped_files'])} unreadable files skipped"
    if s["ignored_files"]:
        line += f", {_n(s['ignored_files'], 'non-image file')} ignored"
    return line


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
