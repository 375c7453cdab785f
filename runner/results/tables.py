"""A study's tables, from its one summary (runner.results.summary): ``python -m runner.summary RESULTS_DIR|URI``.

- ``summary.csv`` / ``summary.parquet``: a row per trial (records.COLUMNS, and a column per searched key), pending
  and failed ones too.
- ``summary.md``: a row per variant (runner.results.render), with its statistics, effect sizes, test split and
  convergence, and a search's samples.
- ``confusion_by_variant.json``: {variant: {"classes", "matrix", "trials"}}, the confusion matrices (at each trial's
  best epoch, rows true, columns predicted) summed over the variant's trials.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from runner.errors import no_results_dir
from runner.results import answer, files, render, studyfile, summary
from runner.results.records import COLUMNS, TrialRecord, cell
from runner.results.summary import StudySummary
from runner.storage import write_atomic


def write(s: StudySummary, partial: bool = False) -> None:
    """Write summary.csv, summary.parquet, summary.md and confusion_by_variant.json into the results dir;
    ``partial`` marks them as the tables of an interrupted study."""
    study, out = s.study, s.results_dir
    keys = list(study.search.get("space", {})) if study and study.search else []
    rows = [_with_sampled(r.row(), r, study, keys) for r in s.planned]
    columns = [*COLUMNS[:2], *keys, *COLUMNS[2:]]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / files.SUMMARY_CSV, text.getvalue())
    _write_parquet(out / files.SUMMARY_PARQUET, rows, columns)
    md = render.markdown(out.name, s.variants, s.records, partial, s.search, answer.markdown(answer.of(s)))
    write_atomic(out / files.SUMMARY_MD, md)
    confusion = summary.confusion_by_variant(out, s.planned)
    write_atomic(out / files.CONFUSION_BY_VARIANT, json.dumps(confusion))


def _with_sampled(row: dict, record: TrialRecord, study: studyfile.StudyFile | None, keys: list[str]) -> dict:
    """A trial's row with the values of the searched keys (dotted columns), from its planned config."""
    if not keys:
        return row
    values = study.values(record.variant, record.seed)
    return {**row, **{k: cell(values.get(k)) for k in keys}}


def _write_parquet(path: Path, rows: list[dict], columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "variant": pa.string(),
        "seed": pa.int64(),
        "status": pa.string(),
        "best_epoch": pa.int64(),
        "epochs_run": pa.int64(),
        "epochs_to_95": pa.int64(),
        "checkpoint": pa.string(),
        "trial_dir": pa.string(),
        "error": pa.string(),
    }
    for c in columns[2:]:  # sampled columns: numbers stay numbers
        if c not in COLUMNS and c not in types:
            seen = [r[c] for r in rows if r[c] is not None]
            types[c] = pa.string() if any(isinstance(x, str | bool) for x in seen) else pa.float64()
    schema = pa.schema([(c, types.get(c, pa.float64())) for c in columns])
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    write_atomic(path, buf.getvalue().to_pybytes())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="the study's results dir (STORAGE/NAME, a directory or s3:// / gs:// URI)")


def run(args: argparse.Namespace) -> int:
    """Rewrite the tables of a results dir (also on a URI) and print the variant table."""
    from runner.storage import Results, is_uri

    if not (is_uri(args.results_dir) or Path(args.results_dir).is_dir()):
        print(f"error: {no_results_dir(args.results_dir)}", file=sys.stderr)
        return 2
    results = Results(args.results_dir)
    try:
        results.pull()
        s = summary.read(results.local)
        write(s)
        results.push()
        print(render.console_table(s.variants))
    except OSError as e:
        from runner.errors import first_line

        print(f"error: {args.results_dir}: {first_line(e)}", file=sys.stderr)
        return 2
    finally:
        results.close()
    return 0
