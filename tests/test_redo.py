"""runner.results.files: a trial's files hold each epoch once after it redid some (no Ray)."""

import csv
import io
import json

from runner.results import files
from runner.results.files import read_results


def _files(d, epochs, fault_after=None):
    rows = []
    for e in epochs:
        rows.append({"epoch": e, "val_accuracy": e / 10, "status": "running"})
        if e == fault_after:
            rows.append({"status": "storage_fault", "error": "No space left on device"})
    (d / files.RESULT).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, ["epoch", "val_accuracy", "status", "error"])
    w.writeheader()
    for r in rows:  # the error holds a comma and a line break: a quoted field over two lines
        w.writerow({**r, **({"error": "disk full,\nsee runner.log"} if "error" in r else {})})
    (d / files.PROGRESS).write_text(out.getvalue())


def _csv_epochs(d):
    return [row["epoch"] for row in csv.DictReader(io.StringIO((d / files.PROGRESS).read_text()))]


def test_a_redone_epoch_cuts_both_files_back_to_the_rows_before_it(tmp_path):
    _files(tmp_path, range(1, 6), fault_after=5)
    assert files.last_epoch(tmp_path) == 5
    with open(tmp_path / files.RESULT, "a") as appender:  # Tune's logger holds the file open in append mode
        files.drop_from(tmp_path, 4)
        appender.write(json.dumps({"epoch": 4, "val_accuracy": 0.4}) + "\n")
    rows = [json.loads(line) for line in (tmp_path / files.RESULT).read_text().splitlines()]
    assert [r.get("epoch") for r in rows] == [1, 2, 3, 4]
    assert _csv_epochs(tmp_path) == ["1", "2", "3"]
    assert [r["epoch"] for r in read_results(tmp_path / files.RESULT)] == [1, 2, 3, 4]


def test_the_fault_report_before_a_redone_epoch_goes_with_it(tmp_path):
    _files(tmp_path, range(1, 4), fault_after=3)
    files.drop_from(tmp_path, 3)
    assert [json.loads(line).get("epoch") for line in (tmp_path / files.RESULT).read_text().splitlines()] == [1, 2]
    assert _csv_epochs(tmp_path) == ["1", "2"]


def test_an_epoch_beyond_the_files_and_missing_files_change_nothing(tmp_path):
    _files(tmp_path, range(1, 4), fault_after=3)
    before = {n: (tmp_path / n).read_bytes() for n in (files.RESULT, files.PROGRESS)}
    files.drop_from(tmp_path, 4)
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    files.drop_from(tmp_path / "none", 1)  # no files: nothing to cut, no error
    assert files.last_epoch(tmp_path / "none") == 0


def test_a_line_cut_short_by_a_crash_is_cut_with_the_rows_after_it(tmp_path):
    (tmp_path / files.RESULT).write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    files.drop_from(tmp_path, 2)
    assert (tmp_path / files.RESULT).read_text() == '{"epoch": 1}\n'
