"""Sequential seeds' looks inside one Tune run: the queue that asks for a look's trials as the last ones end
(runner.driver.tuner.Queue), Tune keeping the ended trials' processes for them (runner.driver.callbacks
.processes_kept), and a study whose looks run so, killed mid-look and resumed."""

import json
import pickle
import time

import pytest
from conftest import WATCHED, run_cli, start_cli, write_study
from ray.tune.search import Searcher

from runner.driver import callbacks
from runner.driver.tuner import Queue
from runner.results.files import read_results


def _params(*seeds: int, variant: str = "a") -> list[dict]:
    return [{"variant": variant, "seed": s} for s in seeds]


class Looks:
    """``more`` of a queue: each call returns the next look's trials, recording what Tune had saved then."""

    def __init__(self, *looks: list[dict]):
        self.looks, self.calls, self.saved = list(looks), 0, []

    def __call__(self) -> list[dict]:
        self.calls += 1
        return self.looks.pop(0) if self.looks else []


def _take(q: Queue, n: int) -> list:
    return [q.suggest(f"t{i}") for i in range(n)]


def test_the_queue_asks_for_a_look_only_once_every_trial_handed_out_has_ended():
    looks, grown = Looks(_params(2, 3)), []
    q = Queue(_params(0, 1), more=looks, grow=grown.append)
    q.save_state = lambda: looks.saved.append(q.ended)
    assert [s["spec"]["seed"] for s in _take(q, 2)] == [0, 1]
    assert q.suggest("t") is None and looks.calls == 0  # both still running: wait, do not finish
    q.on_trial_complete("t0")
    assert q.suggest("t") is None and looks.calls == 0  # one still running
    q.on_trial_complete("t1")
    assert q.between_looks
    assert q.suggest("t")["spec"]["seed"] == 2  # the look, after Tune saved the two ended trials' rows
    assert looks.calls == 1 and looks.saved == [2] and grown == [2]
    assert q.suggest("t")["spec"]["seed"] == 3
    q.on_trial_complete("t2")
    q.on_trial_complete("t3")
    assert q.suggest("t") == Searcher.FINISHED and looks.calls == 2  # no next look: the run ends
    assert q.suggest("t") == Searcher.FINISHED and looks.calls == 2


def test_a_queue_without_looks_finishes_when_its_trials_are_handed_out():
    q = Queue(_params(0, 1))
    assert len(_take(q, 2)) == 2
    assert q.suggest("t") == Searcher.FINISHED and not q.between_looks


def test_a_failed_trial_counts_as_ended_and_the_look_decides_what_then():
    looks = Looks()  # the look reads the failed trial's record and plans nothing: the run ends
    q = Queue(_params(0), more=looks)
    _take(q, 1)
    q.on_trial_complete("t0", error=True)
    assert q.suggest("t") == Searcher.FINISHED and looks.calls == 1


def test_the_saved_queue_keeps_the_looks_trials_and_not_the_study(tmp_path):
    """Tune pickles the queue once (tuner.pkl) and saves how far it is often: a restored run hands out the look's
    trials it had not started; ``more`` (the study, its data) is never pickled."""
    q = Queue(_params(0, 1), more=Looks(_params(2, 3)), grow=lambda n: None)
    q.save_state = lambda: None
    pickled = pickle.dumps(q)  # as in tuner.pkl, before the run
    _take(q, 2)
    q.on_trial_complete("t0")
    q.on_trial_complete("t1")
    assert q.suggest("t")["spec"]["seed"] == 2
    q.save(str(tmp_path / "q.pkl"))
    restored = pickle.loads(pickled)
    assert restored.more is None and restored.grow is None and restored.save_state is None
    restored.restore(str(tmp_path / "q.pkl"))
    assert restored.suggest("t")["spec"]["seed"] == 3
    assert restored.suggest("t") == Searcher.FINISHED  # restored without looks: the study looks after the run


def test_a_queue_pickled_before_it_could_grow_restores():
    old = Queue.__new__(Queue)
    old.__dict__.update({"params": _params(0, 1, 2), "taken": 0})  # what a queue of an earlier runner pickled
    restored = pickle.loads(pickle.dumps(old))
    restored.taken = 2
    assert restored.suggest("t")["spec"]["seed"] == 2 and restored.suggest("t") == Searcher.FINISHED


class Actor:  # what Tune's controller calls on a cached actor it flushes
    def set_on_stop(self, fn):
        pass

    def set_on_error(self, fn):
        pass


def test_between_looks_tune_keeps_every_ended_trials_process():
    """Tune's actor cache keeps one ended trial's process when no trial is pending; between looks it keeps each,
    and flushes them only when forced (the run's end). Tune's own behaviour is back after the run."""
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.utils.object_cache import _ObjectCache

    q = Queue(_params(0, 1), more=Looks(_params(2, 3)))
    _take(q, 2)
    cache, removed = _ObjectCache(may_keep_one=True), []
    controller = TuneController.__new__(TuneController)
    controller._actor_cache, controller._pending_trials, controller._staged_trials = cache, set(), set()
    controller._search_alg = type("Searching", (), {"is_finished": lambda self: False})()
    controller._remove_actor = lambda tracked_actor: removed.append(tracked_actor)
    with callbacks.processes_kept(q):
        q.on_trial_complete("t0")
        assert cache.cache_object("cpu", Actor()) and cache.cache_object("cpu", Actor())
        q.on_trial_complete("t1")
        controller._cleanup_cached_actors()
        assert cache.num_cached_objects == 2 and not removed  # kept for the look's trials
        controller._cleanup_cached_actors(force_all=True)
        assert cache.num_cached_objects == 0 and len(removed) == 2
    plain = _ObjectCache(may_keep_one=True)
    assert plain.cache_object("cpu", Actor()) and not plain.cache_object("cpu", Actor())  # Tune's own, restored


SEQ = """
from runner.config import DataConfig, Study, TrainConfig, TrialConfig
study = Study(
    name="seq",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8{data}), train=TrainConfig(epochs={epochs})),
    variants={{"a": {{}}, "same": {{"model.dropout": 0.0}}}},
    seeds=(0, 1),
    max_seeds=4,
)
"""


def _seeds(results) -> dict[str, list[int]]:
    import csv

    rows = list(csv.DictReader(open(results / "summary.csv")))
    return {v: sorted(int(r["seed"]) for r in rows if r["variant"] == v) for v in ("a", "same")}


@pytest.mark.e2e
def test_looks_run_in_one_tune_run_and_a_look_needing_new_data_in_its_own(tmp_path):
    """Two configs that never differ stay undecided to max_seeds: the two looks' trials join the first run (one
    phase in study.json, one Tune state). With a val split per seed, each look needs data the run was not given: it
    runs as a Tune run of its own, with the same looks."""
    for data, phases in (("", [8]), (", split_per_seed=True", [4, 2, 2])):
        study = write_study(tmp_path / "s.py", SEQ.format(data=data, epochs=1))
        out = tmp_path / f"out{len(phases)}"
        proc = run_cli(str(study), "--storage", str(out), "--max-concurrent", "2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "adding seed 2" in proc.stdout and "adding seed 3" in proc.stdout
        assert "[8/8]" in proc.stdout if len(phases) == 1 else "[2/2]" in proc.stdout
        doc = json.loads((out / "seq" / "study.json").read_text())
        assert [len(p) for p in doc["phases"]] == phases and len(doc["trials"]) == 8
        assert _seeds(out / "seq") == {"a": [0, 1, 2, 3], "same": [0, 1, 2, 3]}
        assert "no diff (at 4 seeds)" in proc.stdout


@pytest.mark.e2e
def test_a_study_killed_in_a_look_resumes_and_finishes_every_look(tmp_path):
    """kill -9 while the first look's trials run (recorded in the run's phase, in Tune's saved state): --resume
    carries them on, then runs the next look, to the same trials a study never killed runs."""
    study = write_study(tmp_path / "s.py", SEQ.format(data="", epochs=20))
    out = tmp_path / "out"
    proc = start_cli(str(study), "--storage", str(out), "--max-concurrent", "2", "--name", "seq", env=WATCHED)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not _look_running(out / "seq"):
            time.sleep(0.2)
        assert _look_running(out / "seq"), "the first look's trials never ran"
        proc.kill()  # SIGKILL: no chance to save anything more
        proc.wait(timeout=30)
    finally:
        proc.kill()
    resumed = run_cli(str(study), "--storage", str(out), "--resume", str(out / "seq"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _seeds(out / "seq") == {"a": [0, 1, 2, 3], "same": [0, 1, 2, 3]}
    assert "adding seed 3" in resumed.stdout and "no diff (at 4 seeds)" in resumed.stdout
    for d in (out / "seq").glob("*_seed*/params.json"):
        rows = read_results(d.parent / "result.json")
        assert [r["epoch"] for r in rows] == list(range(1, 21)) and rows[-1]["status"] == "completed"


def _look_running(results) -> bool:
    """A seed 2 trial has rows in the results dir and has not finished."""
    for d in results.glob("*_seed2_*"):
        rows = read_results(d / "result.json") if (d / "result.json").exists() else []
        if len(rows) >= 2 and rows[-1]["status"] != "completed":
            return True
    return False


TPE = """
study = Study(
    name="tpe",
    base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=8), train=TrainConfig(epochs=2)),
    variants={"base": {}},
    search=Search(space={"optim.lr": loguniform(1e-4, 1e-1)}, samples=10, algorithm="optuna", seed=0),
    scheduler=ASHA(grace_epochs=1, reduction_factor=2),
    seeds=(0, 1),
)
"""


@pytest.mark.e2e
def test_a_learning_searchs_batches_run_in_one_tune_run_and_asha_cuts_each(tmp_path):
    """TPE asks 8 samples, then 2 more from their results: the second batch joins the first Tune run (one phase,
    one Tune state), and ASHA may stop its samples as it does the first batch's."""
    study = write_study(tmp_path / "s.py", TPE)
    proc = run_cli(str(study), "--storage", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "search 2 more samples (s008, s009), suggested from the results of 8" in proc.stdout
    results = tmp_path / "out" / "tpe"
    doc = json.loads((results / "study.json").read_text())
    assert doc["search"]["batches"] == [[f"s00{i}" for i in range(8)], ["s008", "s009"]]
    assert [len(p) for p in doc["phases"]] == [22] and len(list(results.glob("experiment_state-*.json"))) == 1
    import csv

    rows = list(csv.DictReader(open(results / "summary.csv")))
    assert len(rows) == 22 and all(r["status"] in ("completed", "pruned") for r in rows)
    assert {r["status"] for r in rows if r["variant"] == "base"} == {"completed"}
