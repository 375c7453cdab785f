"""Deciding with seeds: effect sizes and power (closed forms and published tables), the sequential looks and
their error control (by simulation), and what a grown study adds."""

import json
import math

import numpy as np
import pytest

from runner.config import ConfigError, DataConfig, Study, TrialConfig
from runner.results import sequential, stats
from runner.results.verdict import Verdict
from runner.study.plan import grow, make_plan
from runner.study.resources import Cluster

# --------------------------------------------------------------------------- effect sizes and power


def test_power_and_detectable_difference_match_published_values():
    # two-sided paired t at alpha 0.05, power 0.8: n = 10 detects d = 0.9958 (Cohen's tables, G*Power)
    assert stats.detectable(1.0, 10) == pytest.approx(0.9958, abs=2e-3)
    assert stats.power(0.9958, 1.0, 10) == pytest.approx(0.80, abs=1e-3)
    assert stats.seeds_needed(0.667, 1.0) == 20  # d = 2/3 needs 20 pairs
    assert stats.seeds_needed(0.0, 1.0) is None and stats.power(0.5, 1.0, 1) == 0.0
    assert stats.power(0.2, 0.1, 50) > 0.999 and stats.power(0.0, 0.1, 10) == pytest.approx(0.05, abs=1e-9)


def test_effect_of_a_variant_over_shared_seeds():
    ref = {0: 0.50, 1: 0.55, 2: 0.52, 9: 0.1}
    var = {0: 0.55, 1: 0.56, 2: 0.60, 7: 0.9}  # seeds 7 and 9 are not shared
    e = stats.effect(ref, var)
    d = np.array([0.05, 0.01, 0.08])
    sd = d.std(ddof=1)
    assert e["n"] == 3 and e["delta"] == pytest.approx(d.mean()) and e["sd"] == pytest.approx(sd)
    assert e["ci"] == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-6)  # t(0.975, 2)
    # one more seed's difference: mean + sd * sqrt(1 + 1/n) * t(2)
    from scipy import stats as st

    assert e["p_better"] == pytest.approx(st.t.cdf(d.mean() / (sd * math.sqrt(1 + 1 / 3)), 2))
    assert stats.power(e["detectable"], sd, 3) == pytest.approx(0.8, abs=1e-6)
    assert stats.power(d.mean(), sd, e["seeds_needed"]) >= 0.8 > stats.power(d.mean(), sd, e["seeds_needed"] - 1)


def test_effect_without_spread_or_seeds():
    assert stats.effect({0: 0.5, 1: 0.5}, {0: 0.6, 1: 0.6})["p_better"] == 1.0
    assert stats.effect({0: 0.5}, {0: 0.6}) == {"n": 1, "delta": pytest.approx(0.1), "ci": None, "sd": None,
                                                "p_better": None, "detectable": None, "seeds_needed": None}  # fmt: skip


# --------------------------------------------------------------------------- the sequential looks


def test_spending_adds_up_to_alpha_over_the_looks():
    levels = [sequential.level(n, 3, 10) for n in range(3, 11)]
    assert sum(levels) == pytest.approx(stats.ALPHA)
    assert all(a > 0 for a in levels) and sequential.spent(1.0) == pytest.approx(stats.ALPHA)


def _study(rng, deltas, first=3, max_seeds=10, seed_sd=0.03, noise_sd=0.025):
    """Per-seed values like ours: a seed effect every variant shares, plus each trial's own noise."""
    base = rng.normal(0.5, seed_sd, max_seeds)
    by = {"ref": {s: base[s] + rng.normal(0, noise_sd) for s in range(max_seeds)}}
    for i, delta in enumerate(deltas):
        by[f"v{i}"] = {s: base[s] + delta + rng.normal(0, noise_sd) for s in range(max_seeds)}
    return sequential.decide(by, "ref", list(range(max_seeds)), first, max_seeds)


def test_false_positive_rate_over_every_look_and_variant_stays_below_alpha():
    """2,000 simulated studies with no true difference (2 variants vs the reference, 3 to 10 seeds): the
    chance of any "better" / "worse" stays at most alpha, within the simulation's error."""
    rng = np.random.default_rng(2026)
    runs = 2000
    false = sum(any(d["verdict"] in ("better", "worse") for d in _study(rng, [0.0, 0.0]).values()) for _ in range(runs))
    rate, se = false / runs, math.sqrt(stats.ALPHA * (1 - stats.ALPHA) / runs)
    assert rate <= stats.ALPHA + 3 * se, f"family-wise false positive rate {rate:.3f}"


def test_a_real_difference_is_found_with_the_power_the_readme_reports():
    """README: with one variant, a difference of 0.05 (differences' sd ~0.035) is found in ~76 % of studies by
    10 seeds, one of 0.10 in all of them, after ~4.5 seeds on average."""
    rng = np.random.default_rng(7)
    found = {0.05: [], 0.10: []}
    for delta in found:
        for _ in range(400):
            d = _study(rng, [delta])["v0"]
            found[delta].append(d["n"] if d["verdict"] == "better" else None)
    power_05 = np.mean([n is not None for n in found[0.05]])
    assert 0.65 <= power_05 <= 0.87
    assert all(n is not None for n in found[0.10])
    assert np.mean(found[0.10]) < 5.5


def test_looks_stop_at_a_missing_seed_and_name_the_next_one():
    by = {"ref": {0: 0.5, 1: 0.52, 2: 0.51}, "a": {0: 0.2, 1: 0.21, 2: 0.22}, "b": {0: 0.5, 1: 0.53, 2: 0.5}}
    d = sequential.decide(by, "ref", [0, 1, 2, 3, 4], 3, 5)
    assert d["a"]["verdict"] == "worse" and d["a"]["n"] == 3  # decided at the first look
    assert d["b"]["verdict"] == Verdict.UNDECIDED and d["b"]["n"] == 3
    assert sequential.next_seed(d, [0, 1, 2], 3, 5) == 3
    by = {k: {**v, 3: v[2], 4: v[2]} for k, v in by.items()}
    d = sequential.decide(by, "ref", [0, 1, 2, 3, 4], 3, 5)
    assert d["b"]["verdict"] == "no detectable difference" and d["b"]["n"] == 5
    assert sequential.next_seed(d, [0, 1, 2], 3, 5) is None


def test_extend_numbers_the_added_seeds_after_the_largest():
    assert sequential.extend([5, 2], 5) == [5, 2, 6, 7, 8]


# --------------------------------------------------------------------------- growing a study


def _plan(study: Study):
    cluster = Cluster(cpus=2, gpus=0, node_cpus=2, node_gpus=0)
    return make_plan(study, study.trials(), [("d0", ["a", "b"])] * len(study.trials()), cluster)


def test_grow_adds_seeds_and_variants_and_leaves_out_removed_ones():
    before = _plan(Study(name="s", variants={"a": {}, "b": {"model.dropout": 0.1}}, seeds=(0, 1)))
    params = json.loads(json.dumps([s.to_param() for s in before.specs]))
    now = _plan(Study(name="s", variants={"a": {}, "c": {"optim.lr": 0.01}}, seeds=(0, 1, 2)))
    g = grow(now, params, "here")
    assert sorted((s.variant, s.seed) for s in g.new) == [("a", 2), ("c", 0), ("c", 1), ("c", 2)]
    assert sorted(g.removed) == [("b", 0), ("b", 1)]


def test_grow_refuses_a_changed_variant_naming_it_and_its_keys():
    params = [s.to_param() for s in _plan(Study(name="s", variants={"a": {}, "b": {"model.dropout": 0.1}})).specs]
    changed = _plan(Study(name="s", variants={"a": {}, "b": {"model.dropout": 0.2}}, seeds=(0, 1)))
    with pytest.raises(ConfigError, match=r"variant 'b' \(model.dropout: 0.1 -> 0.2\); .*new name"):
        grow(changed, params, "here")


def test_grow_refuses_changed_data():
    params = [s.to_param() for s in _plan(Study(name="s")).specs]
    with pytest.raises(ConfigError, match=r"the data changed since the study ran \(data.image_size: 64 -> 32\)"):
        grow(_plan(Study(name="s", base=TrialConfig(data=DataConfig(image_size=32)))), params, "here")
