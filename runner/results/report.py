"""One self-contained HTML page per study: ``python -m runner.report RESULTS_DIR`` -> RESULTS_DIR/report.html.

Sections: a search's answer (runner.results.answer: its verdict and its config to paste), the summary table with its
statistics (runner.results.summary), a search's samples (confirmed ones marked) on parallel coordinates
(runner.results.figures), learning curves per variant (train and val accuracy per epoch: mean over seeds, band
95 % CI within 0..1), the test split and convergence, the confusion matrix per variant (summed over its trials), every trial's status, the data (study.json) and the data audit
(audit.json, when present), and where the results came from (command, git commit, versions,
machine). Figures are PNGs embedded as base64 and the CSS is inline: the page needs nothing but
itself, so it opens from file:// and can be mailed. Reads only the results dir, so it works on
interrupted studies (trials without results are listed, not drawn) and skips errored trials'
numbers like the summary does.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from pathlib import Path

import numpy as np

from runner.errors import no_results_dir
from runner.results import answer, files, render, studyfile, summary
from runner.results.summary import StudySummary, learning_curves
from runner.storage import write_atomic

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; } .note { color: #555; } .warn { color: #a40; font-weight: bold; }
img { max-width: 100%; } .grid { display: flex; flex-wrap: wrap; gap: 1em; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.5em 0.8em; overflow-x: auto; white-space: pre-wrap; }
.answer { font-size: 15px; }
"""
CONFIRMED = "\u2713"  # after a confirmed sample's name in the samples table
CONFIRMED_NOTE = render.CONFIRMED_NOTE.replace(render.CONFIRMED_MARK, CONFIRMED, 1)


def preload() -> None:
    """Import what the tables and this report need (scipy.stats, pyarrow.parquet, matplotlib on Agg): seconds that a
    study's driver spends while its trials train (runner.driver.callbacks) instead of at its end."""
    import matplotlib
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def write_report(s: StudySummary) -> Path:
    """Write report.html into the summary's results dir and return its path."""
    results_dir, found = s.results_dir, s.study
    study = found.doc if found else {}
    rows, variants, unfinished = s.planned, s.variants, s.unfinished
    parts = [
        f"<h1>{_e(study.get('study', results_dir.name))}</h1>",
        f"<p class='note'>{_e(results_dir)}: {len(rows)} trials, {len(variants)} variants</p>",
    ]
    if unfinished:
        parts.append(
            f"<p class='warn'>Partial results: {len(unfinished)} trials did not finish; resume the study to finish.</p>"
        )
    best = answer.of(s)
    if best is not None:
        parts += ["<h2>Answer</h2>" if best.confirmed else "<h2>Best sample (not confirmed)</h2>",
                  _answer_section(best, s)]  # fmt: skip
    parts += ["<h2>Summary</h2>", _summary_section(variants, render.optimism_note(s.search))]
    if s.search:
        parts += [
            "<h2>Search</h2>",
            _search_section(*s.search, log=set(found.search.get("log", [])), metric=found.metric),
        ]
    if rows:
        parts += ["<h2>Learning curves</h2>", _curves_section(rows, [v.variant for v in variants])]
    parts += ["<h2>Confusion matrices</h2>", _confusion_section(summary.confusion_by_variant(results_dir, rows))]
    parts += ["<h2>Trials</h2>", _trials_table(rows)]
    if study.get("data"):
        parts += ["<h2>Data</h2>"] + [f"<h3>{_e(k)}</h3>" + _kv_table(v) for k, v in study["data"].items()]
    audit = _read_json(results_dir / files.AUDIT)
    if audit:
        parts += ["<h2>Data audit</h2>", _kv_table(audit)]
    env = {
        k: study[k] for k in ("command", "git_commit", "versions", "machine", "cluster", "max_concurrent") if k in study
    }
    if isinstance(env.get("command"), list):
        env["command"] = " ".join(map(str, env["command"]))
    parts += ["<h2>Environment</h2>", _kv_table(env) if env else "<p class='note'>no study.json</p>"]
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{_e(study.get('study', results_dir.name))}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    out = results_dir / files.REPORT
    write_atomic(out, page)
    return out


def _summary_section(variants: list, caveat: str = "") -> str:
    metric = variants[0].metric if variants else "best_val_accuracy"
    note = (
        f"<p class='note'>{_e(render.METRIC_WORDS[metric])} over seeds (fractions 0..1; <code>{metric}</code> ranks "
        f"the variants and decides the verdicts), mean ± half-width of the 95 % CI (t-distribution). Reference: "
        f"<b>{_e(render.reference_of(variants) or '-')}</b>. {_e(render.method_note(variants))} "
        f"Gap = final train - final val accuracy, <i>overfits</i> above {summary.OVERFIT_GAP:.2f}.</p>"
    )
    main = _table(render.VARIANT_HEADER, [render.variant_cells(v) for v in variants], text_cols={0, 11, 13})
    main += f"<p class='warn'>{_e(caveat)}</p>" if caveat else ""
    if len(variants) > 1:
        main += (
            "<h3>Effect sizes</h3><p class='note'>Δ: mean paired difference from the reference with its 95 % CI. "
            "P(beats the reference on a new seed): t predictive probability. Detectable Δ: the smallest difference "
            "these seeds detect with 80 % power. Seeds to detect Δ: about how many seeds would detect the observed Δ.</p>"
            + _table(render.EFFECT_HEADER, [render.effect_cells(v) for v in variants], text_cols={0})
        )
    second = (
        "<h3>Test split and convergence</h3><p class='note'>"
        + ("Test accuracy: each trial's best val epoch, its model on the test split (picked on nothing). "
           "Best val - test: how far picking the epoch on val overstates accuracy on new images. "
           if render.has_test(variants) else "No test split: add ROOT/test/CLASS/ or hold one out with data.test_fraction. ")
        + "Epochs to 95 %: the first epoch whose val accuracy reaches 95 % of the trial's best (fewer = faster).</p>"
        + _table(render.SECOND_HEADER, [render.second_cells(v) for v in variants], text_cols={0, 6})
        + "".join(f"<p class='note'>{_e(line)}</p>" for line in render.rankings(variants))
    )  # fmt: skip
    return note + main + second


def _curves_section(rows: list, order: list[str]) -> str:
    train, val = learning_curves(rows, "train_accuracy"), learning_curves(rows, "val_accuracy")
    names = [v for v in order if v in val]
    if not names:
        return "<p class='note'>No epoch has finished yet.</p>"
    import matplotlib

    matplotlib.use("Agg")
    from runner.results import figures

    # All variants' val accuracy on one plot, then one panel per variant with train and val.
    overview = _png(figures.val_figure(val, names))
    panels = _png(figures.curve_panels_figure(train, val, names))
    return _img(overview, "val accuracy per variant") + _img(panels, "train and val accuracy per variant")


def _search_section(samples: list, importance: dict, log: set, metric: str) -> str:
    """Every sample with its CI (confirmed ones marked), the samples on parallel coordinates, and each
    hyper-parameter's importance."""
    cells = [[s.name + (f" {CONFIRMED}" if s.confirmed else ""), *render.sample_cells(s)[1:]] for s in samples]
    parts = [f"<p class='note'>{_e(render.SAMPLES_NOTE)}</p>", _table(render.sample_header(samples), cells, {0})]
    if any(s.confirmed for s in samples):
        parts.append(f"<p class='note'>{_e(CONFIRMED_NOTE)}</p>")
    if samples and samples[0].values and any(s.score is not None for s in samples):
        import matplotlib

        matplotlib.use("Agg")
        from runner.results.figures import parallel_figure

        fig = parallel_figure(samples, log, metric)
        parts.append(_img(_png(fig), "sampled values against the score, one line per sample"))
    if importance:
        parts += [f"<p class='note'>{_e(render.IMPORTANCE_NOTE)}</p>",
                  _table(["hyper-parameter", "importance"], [[k, f"{v:.3f}"] for k, v in importance.items()])]  # fmt: skip
    return "".join(parts)


def _answer_section(a, s: StudySummary) -> str:
    """What the search answers (runner.results.answer): the confirmed best with its verdict, the caveat and its
    config to paste; or the search's best by score, not confirmed, and how to confirm it."""
    if not a.confirmed:
        x = next(x for x in s.search[0] if x.name == a.sample)
        return (
            f"<p class='answer'><b>{_e(a.sample)}</b> is the search's best of {a.rank_of} samples ("
            + (f"mean {render.fmt(x.mean)} over the {x.n} seeds it ran to the end; " if x.n else "every seed pruned; ")
            + f"score {render.fmt(x.score)}), <b>not confirmed</b>: picked as the best on these seeds, so its numbers "
            "are optimistic, and ASHA may have cut some of its seeds short.</p>"
            f"<p>As options:</p><pre><code>{_e(a.set_line())}</code></pre>"
            "<p class='note'>To confirm: <code>Search(confirm=k)</code> in the study file, or for this finished "
            f"search <code>python -m runner.tune STUDY_FILE --resume {_e(s.results_dir)} --confirm K</code>: the K "
            "best samples by score run every epoch over every seed and get verdicts like a fixed variant.</p>"
        )
    honest = "; the test accuracy, which no choice saw, is not" if a.row is not None and a.row.test_accuracy.n else ""
    return (
        f"<p class='answer'><b>{_e(a.verdict_line())}</b></p>"
        f"<p class='note'>{_e(a.sample)} is the best of {a.rank_of} confirmed samples (run every epoch over every "
        f"seed after the search). It was {_e(answer.OPTIMISTIC)}{_e(honest)}.</p>"
        f"<p>As options:</p><pre><code>{_e(a.set_line())}</code></pre>"
        f"<p>As a variant (into the study file's <code>variants</code>):</p><pre><code>{_e(a.variant())}</code></pre>"
    )


def _confusion_section(cms: dict[str, dict]) -> str:
    if not cms:
        return "<p class='note'>No trial has written confusion_matrix.json yet.</p>"
    import matplotlib

    matplotlib.use("Agg")
    from runner.results.figures import confusion_figure

    imgs = []
    for v, cm in cms.items():
        fig = confusion_figure(np.asarray(cm["matrix"]), cm["classes"], 0)
        fig.axes[0].set_title(f"{v}: sum over {cm['trials']} trials", fontsize=9)
        imgs.append(_img(_png(fig), f"confusion matrix {v}"))
    return (
        "<p class='note'>Rows true class, columns predicted, at each trial's best epoch, summed over the variant's "
        "trials.</p><div class='grid'>" + "".join(imgs) + "</div>"
    )


def _trials_table(records: list) -> str:
    head = ["variant", "seed", "status", "best val accuracy", "best epoch", "epochs run", "seconds", "error"]
    rows = [r.row() for r in records]
    cells = [
        [
            r["variant"],
            str(r["seed"]),
            r["status"],
            render.fmt(r["best_val_accuracy"]),
            str(r["best_epoch"] or "-"),
            str(r["epochs_run"]),
            render.fmt(r["trial_seconds"], 1),
            r["error"],
        ]
        for r in rows
    ]
    return _table(head, cells, text_cols={0, 2, 7})


def _kv_table(d) -> str:
    """Any JSON value as a two-column table; nested dicts become dotted keys, long lists are cut."""
    flat: dict[str, object] = {}

    def walk(prefix: str, x) -> None:
        if isinstance(x, dict) and x:
            for k, v in x.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix or "value"] = x

    walk("", d)
    return _table(["key", "value"], [[k, _value(v)] for k, v in flat.items()], text_cols={0, 1})


def _value(v) -> str:
    if isinstance(v, list):
        shown = ", ".join(json.dumps(x) if isinstance(x, (dict, list)) else str(x) for x in v[:20])
        return shown + (f", ... ({len(v)} in all)" if len(v) > 20 else "")
    return json.dumps(v) if isinstance(v, dict) else str(v)


def _table(head: list[str], rows: list[list[str]], text_cols: set[int] = frozenset()) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    trs = "".join(
        "<tr>"
        + "".join(f"<td{' class=text' if i in text_cols else ''}>{_e(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{trs}</table>"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no matplotlib URL in the file
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{b64}'>"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return d if isinstance(d, dict) else {"value": d}


def add_arguments(p) -> None:
    p.add_argument("results_dir", type=Path, help="the study's results dir (STORAGE/NAME)")


def run(args) -> int:
    results_dir = args.results_dir
    if not results_dir.is_dir():
        print(f"error: {no_results_dir(str(results_dir))}", file=sys.stderr)
        return 2
    if not any(results_dir.glob(f"*/{files.PARAMS}")) and studyfile.read(results_dir) is None:
        print(
            f"error: {results_dir}: no study here (no study.json, no trial dirs); give STORAGE/NAME of a study",
            file=sys.stderr,
        )
        return 2
    print(write_report(summary.read(results_dir)))
    return 0
