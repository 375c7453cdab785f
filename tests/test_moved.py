"""A study interrupted before runner's modules moved into subpackages still resumes after the move.

tests/fixtures/premove is the results dir of `configs/smoke.py --set train.epochs=4` run by runner before the move
(commit 6a423cd) with --storage /tmp/premove/store --max-concurrent 1, and killed with kill -9 once its first trial
had finished and its second had a checkpoint. Its Tune state pickled callbacks, a trial-dir namer and printers by
their old module paths (runner.orchestrate, runner.progress, runner.redo, ...).
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from runner.driver import moved

FIXTURE = Path(__file__).parent / "fixtures" / "premove"
WHERE = Path("/tmp/premove/store/premove")  # the path its Tune state and params name


def _trial_pickles(state: dict):
    """The cloudpickled objects inside experiment_state-*.json (hex strings of each trial's fields)."""
    for trial, _ in state["trial_data"]:
        for value in json.loads(trial).values():
            if isinstance(value, dict) and value.get("_type") == "CLOUDPICKLE_FALLBACK":
                yield bytes.fromhex(value["value"])


def test_the_old_module_paths_a_pre_move_tune_state_pickled_are_served():
    import ray.cloudpickle  # noqa: F401 - Ray's own classes in the pickles

    data = (FIXTURE / "tuner.pkl").read_bytes()
    state = json.loads(next(FIXTURE.glob("experiment_state-*.json")).read_text())
    with pytest.raises(ModuleNotFoundError, match="runner.orchestrate"):
        pickle.loads(data)
    with moved.old_names():
        tuner = pickle.loads(data)
        trials = [pickle.loads(p) for p in _trial_pickles(state)]
    from runner.driver.tuner import trial_name

    assert tuner["_tune_config"].trial_dirname_creator is trial_name  # was runner.orchestrate._trial_name
    assert trials
    assert "runner.orchestrate" not in sys.modules  # served only while restoring


@pytest.mark.e2e
def test_a_study_interrupted_before_the_move_resumes_after_it():
    from runner.driver import cli
    from runner.results import summary

    shutil.rmtree(WHERE, ignore_errors=True)
    shutil.copytree(FIXTURE, WHERE)
    finished_before = (WHERE / "base_seed0_6f10d_00000" / "result.json").read_bytes()
    args = ["configs/smoke.py", "--set", "train.epochs=4", "--storage", str(WHERE.parent), "--resume", str(WHERE)]
    try:
        assert cli.main(args) == 0
        s = summary.read(WHERE)
        assert [(r.variant, r.seed, str(r.status), r.epochs_run) for r in s.planned] == [
            ("base", 0, "completed", 4),
            ("base", 1, "completed", 4),
            ("dropout_0.2", 0, "completed", 4),
            ("dropout_0.2", 1, "completed", 4),
        ]
        assert (WHERE / "base_seed0_6f10d_00000" / "result.json").read_bytes() == finished_before
    finally:
        shutil.rmtree(WHERE.parent.parent, ignore_errors=True)
