"""Search spaces: validation (one line per problem), sampling (inside the ranges, reproducible, resumable),
the summary's view of a search (ranked samples, importance). No Ray cluster is started here."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from runner.config import (
    ASHA,
    ModelConfig,
    Search,
    Study,
    TrialConfig,
    check_study,
    choice,
    known_keys,
    loguniform,
    qloguniform,
    qrandint,
    quniform,
    randint,
    uniform,
)
from runner.driver import search
from runner.errors import ConfigError
from runner.results import search_summary, studyfile
from runner.results.records import TrialRecord
from runner.results.status import Status
from runner.study.space import check_search, describe, sample_names

SPACE = {
    "optim.lr": loguniform(1e-5, 1e-1),
    "model.dropout": quniform(0.0, 0.5, 0.05),
    "model.hidden": choice([(512, 128), (256,)]),
    "train.batch_size": qrandint(16, 129, 16),
    "optim.weight_decay": qloguniform(1e-6, 1e-2, 1e-6),
    "train.epochs": randint(2, 5),
    "optim.momentum": uniform(0.5, 0.99),
}


def _study(**search) -> Study:
    return Study(name="s", base=TrialConfig(model=ModelConfig(hidden=(32,))), search=Search(**search))


@pytest.mark.parametrize(
    "dist, words",
    [
        (uniform(0.5, 0.5), "low=0.5 must be below high=0.5"),
        (uniform(0.9, 0.1), "must be below"),
        (loguniform(0.0, 0.1), "a log scale needs low > 0"),
        (loguniform(-1.0, 0.1), "a log scale needs low > 0"),
        (choice([]), "choice() has no options"),
        (quniform(0.0, 1.0, 0.0), "q=0.0 must be a number > 0"),
        (randint(0.5, 3), "randint needs whole numbers"),
        (0.1, "is not a distribution"),
        (uniform(float("nan"), 1.0), "must be finite numbers"),
    ],
)
def test_bad_distribution_is_one_line(dist, words):
    with pytest.raises(ConfigError) as e:
        check_study(_study(space={"model.dropout": dist}), "cfg.py")
    assert words in str(e.value) and "search.space['model.dropout']" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"space": {"optim.lrr": uniform(0, 1)}}, "did you mean 'optim.lr'"),
        ({"space": {"data.image_size": randint(16, 64)}}, "cannot be searched"),
        ({"space": {"train.seed": randint(0, 9)}}, "cannot be searched"),
        ({"space": {"optim.lr": uniform(0, 1)}, "samples": 0}, "search.samples=0 must be a whole number >= 1"),
        ({"space": {"optim.lr": uniform(0, 1)}, "algorithm": "grid"}, "choose one of random, sobol, optuna"),
        ({"space": {}}, "search.space must be a non-empty dict"),
    ],
)
def test_bad_search_is_one_line(kw, words):
    with pytest.raises(ConfigError, match=words):
        check_study(_study(**kw), "cfg.py")


def test_bad_scheduler_and_name_clash():
    base = _study(space={"optim.lr": loguniform(1e-4, 1e-2)})
    with pytest.raises(ConfigError, match=r"scheduler='hyperband': the scheduler is runner.config.ASHA"):
        check_study(replace(base, scheduler="hyperband"), "cfg.py")
    with pytest.raises(ConfigError, match=r"ASHA\(reduction_factor=1\) must be a number > 1"):
        check_study(replace(base, scheduler=ASHA(reduction_factor=1)), "cfg.py")
    with pytest.raises(ConfigError, match="names s000, s001, ... are the search's samples"):
        check_study(replace(base, variants={"s001": {}}), "cfg.py")


def test_a_search_alone_is_a_study_and_a_study_needs_variants_or_a_search():
    assert check_search(Search(space=SPACE, samples=3), known_keys(), "x") == []
    check_study(replace(_study(space=SPACE), variants={}), "cfg.py")  # samples only: allowed
    with pytest.raises(ConfigError, match="or give a search"):
        check_study(Study(name="s", variants={}), "cfg.py")


@pytest.mark.parametrize("algorithm", ["random", "sobol", "optuna"])
def test_samples_lie_in_their_ranges_and_repeat_from_the_seed(algorithm):
    s = Search(space=SPACE, samples=10, algorithm=algorithm, seed=3)
    first = search.Sampler(s).ask(10 if algorithm != "optuna" else 8)
    assert first == search.Sampler(s).ask(len(first))  # the same study file, the same samples
    assert list(first) == sample_names(10)[: len(first)]
    for values in first.values():
        assert 1e-5 <= values["optim.lr"] <= 1e-1
        assert values["model.dropout"] in {round(0.05 * k, 12) for k in range(11)}
        assert values["model.hidden"] in [(512, 128), (256,)]
        assert values["train.batch_size"] % 16 == 0 and 16 <= values["train.batch_size"] < 129
        assert 2 <= values["train.epochs"] < 5 and isinstance(values["train.epochs"], int)
        assert 1e-6 <= values["optim.weight_decay"] <= 1e-2
        assert 0.5 <= values["optim.momentum"] <= 0.99
    other = search.Sampler(replace(s, seed=4)).ask(len(first))
    assert other != first
    # the samples spread over the log range, not bunched at its top
    assert min(v["optim.lr"] for v in first.values()) < 1e-3 < max(v["optim.lr"] for v in first.values())


def test_sampled_configs_are_valid_trials():
    study = _study(space=SPACE, samples=5)
    samples = search.Sampler(study.search).ask(5)
    trials = check_study(replace(study, variants={**study.variants, **samples}, search=None), "cfg.py")
    assert len(trials) == 6 and {t[0] for t in trials} == {"base", *samples}


def test_optuna_learns_in_batches_and_replays_its_state():
    s = Search(
        space={"optim.lr": loguniform(1e-5, 1e-1), "model.dropout": uniform(0, 0.5)}, samples=14, algorithm="optuna"
    )
    assert search.batches(s) == [8, 4, 2]
    assert search.batches(replace(s, algorithm="random")) == [14]
    live = search.Sampler(s)
    b1 = live.ask(8)
    results = {name: -abs(math.log10(v["optim.lr"]) + 3) for name, v in b1.items()}  # best near lr 1e-3
    live.tell(results)
    b2 = live.ask(4)
    # a resumed study replays the recorded batch (JSON turns tuples into lists) and asks the same next batch
    replayed = search.replay(s, [json.loads(json.dumps(b1))], results)
    assert replayed.ask(4) == b2
    with pytest.raises(ConfigError, match="other samples than the results dir holds"):
        search.replay(replace(s, seed=1), [b1], results)


def test_missing_optuna_is_one_line_with_the_pip_command(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_optuna(name, *a, **k):
        if name == "optuna":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ConfigError, match=r"needs optuna, which is not installed: pip install 'optuna>=4'"):
        search.Sampler(Search(space=SPACE, samples=2, algorithm="sobol")).ask(2)


def test_describe():
    assert describe(loguniform(1e-5, 0.1)) == "loguniform(1e-05, 0.1)"
    assert describe(qrandint(16, 129, 16)) == "qrandint(16, 129, 16)"
    assert describe(choice([(512, 128), (256,)])) == "choice([(512, 128), (256,)])"


def _search_study(tmp_path, lrs: dict[str, float], metric_of, pruned=()):
    """A study.json and records for samples with the given learning rates, 2 seeds each."""
    trials, records = [], []
    for order, (name, lr) in enumerate(lrs.items()):
        for seed in (0, 1):
            cfg = TrialConfig(model=ModelConfig(dropout=0.1 * order % 0.5))
            cfg = replace(cfg, optim=replace(cfg.optim, lr=lr))
            trials.append({"variant": name, "seed": seed, "trial": cfg.to_dict()})
            status = Status.PRUNED if (name, seed) in pruned else Status.COMPLETED
            acc = metric_of(lr) + 0.001 * seed
            records.append(TrialRecord(name, seed, order, status, ({"epoch": 1, "best_val_accuracy": acc},)))
    doc = {"trials": trials, "search": {"space": {"optim.lr": "loguniform", "model.dropout": "uniform"},
                                        "log": ["optim.lr"], "batches": [list(lrs)]}}  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps(doc))
    return studyfile.read(tmp_path), records


def test_samples_rank_by_full_runs_and_keep_pruned_out_of_the_mean(tmp_path):
    lrs = {f"s{k:03d}": 10 ** (-5 + k / 2) for k in range(8)}
    study, records = _search_study(tmp_path, lrs, lambda lr: 0.9 - abs(math.log10(lr) + 3) / 10, pruned={("s004", 1)})
    ranked = search_summary.samples(records, study)
    assert [s.name for s in ranked][:3] == ["s004", "s003", "s005"]  # lr 1e-3 best, then its neighbours
    s004 = ranked[0]
    assert s004.n == 1 and s004.pruned == 1 and s004.mean == pytest.approx(0.9) and s004.ci is None
    assert s004.score == pytest.approx(0.9005)  # the searcher's view: both seeds
    assert ranked[1].n == 2 and ranked[1].ci is not None


def test_importance_finds_the_hyper_parameter_that_matters(tmp_path):
    lrs = {f"s{k:03d}": 10 ** (-5 + k / 3) for k in range(12)}
    study, records = _search_study(tmp_path, lrs, lambda lr: 0.9 - abs(math.log10(lr) + 3) / 10)
    imp = search_summary.importance(records, study)
    assert list(imp)[0] == "optim.lr" and imp["optim.lr"] > 0.8 and sum(imp.values()) == pytest.approx(1.0)
    assert search_summary.importance(records[:4], study) == {}  # too few trials to say


@pytest.mark.parametrize("seed", [0, 7])
def test_permutation_importance_is_sklearns_in_one_predict_call(seed):
    """The same shuffles and the same numbers as sklearn's permutation_importance (which predicts once per shuffled
    copy), on a forest where one column matters, one a little, one not at all."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    y = 3 * x[:, 0] + x[:, 1] + rng.normal(0, 0.1, 40)
    forest = RandomForestRegressor(n_estimators=30, random_state=seed, min_samples_leaf=2).fit(x, y)
    calls = []
    predict = forest.predict
    forest.predict = lambda a: calls.append(len(a)) or predict(a)
    ours = search_summary.permutation_importance(forest, x, y, repeats=5, seed=seed)
    assert calls == [3 * 5 * 40, 40]  # every shuffled copy at once, then the baseline
    forest.predict = predict
    theirs = permutation_importance(forest, x, y, n_repeats=5, random_state=seed).importances_mean
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert ours[0] > ours[1] > abs(ours[2])


@pytest.mark.parametrize("algorithm", ["random", "sobol"])
def test_more_samples_only_add_samples(algorithm):
    """Raising Search.samples and resuming runs only the new samples: the first ones stay as they were."""
    few = search.Sampler(Search(space=SPACE, samples=4, algorithm=algorithm)).ask(4)
    more = search.Sampler(Search(space=SPACE, samples=8, algorithm=algorithm)).ask(8)
    assert {k: more[k] for k in few} == few and len(more) == 8


@pytest.mark.parametrize(
    "space, words",
    [
        ('{"optim.lr": loguniform(0.0, 0.1)}', "a log scale needs low > 0"),
        ('{"optim.lrate": uniform(0.1, 0.2)}', "did you mean 'optim.lr'?"),
        ('{"model.hidden": choice([])}', "choice() has no options"),
    ],
)
def test_bad_search_on_the_command_line_is_one_line_and_exit_2(tmp_path, space, words):
    from conftest import run_main, write_study

    study = write_study(tmp_path / "s.py", f'study = Study(name="s", search=Search(space={space}, samples=2))\n')
    r = run_main(str(study), "--storage", str(tmp_path / "out"), timeout=120)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
