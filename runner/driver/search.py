"""Sampled variants from a study's Search: Ray Tune's own sampling, or Optuna's samplers.

- ``random``: Tune's distributions (ray.tune.uniform, loguniform, choice, ...) drawn with a numpy
  generator seeded from ``Search.seed``.
- ``sobol``: Optuna's QMCSampler (a scrambled Sobol sequence seeded from ``Search.seed``).
- ``optuna``: Ray Tune's OptunaSearch with Optuna's TPE sampler. It learns, so samples come in batches:
  each batch runs over the study's seeds as a phase (runner.driver.phases), and the searcher is told each
  sample's mean over its seeds (Ray's Repeater semantics) before it suggests the next batch.

Every algorithm is a function of (Search, the results told so far): the same study file gives the same
samples, and a resumed study replays the recorded batches to put the searcher back where it was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from runner.errors import ConfigError
from runner.study.space import Choice, Distribution, RandInt, Search, Uniform, sample_names

OPTUNA_PIP = "pip install 'optuna>=4' (or pip install -e '.[search]')"
FIRST_BATCH = 8  # TPE's random start-up samples (Optuna's default is 10); later batches are BATCH samples
BATCH = 4


def batches(search: Search) -> list[int]:
    """How many samples each phase of the search asks for: one batch unless the algorithm learns."""
    if search.algorithm != "optuna" or search.samples <= FIRST_BATCH:
        return [search.samples]
    rest = search.samples - FIRST_BATCH
    return [FIRST_BATCH] + [BATCH] * (rest // BATCH) + ([rest % BATCH] if rest % BATCH else [])


class Sampler:
    """Asks an algorithm for samples (dotted key -> value) and tells it their results, in order."""

    def __init__(self, search: Search):
        self.search = search
        self.asked = 0
        self._optuna = _tpe(search) if search.algorithm == "optuna" else None
        self._pending: list[str] = []  # trial ids the TPE searcher awaits a value for

    def ask(self, n: int) -> dict[str, dict[str, Any]]:
        """The next ``n`` samples, named s000, s001, ... in sample order."""
        names = sample_names(self.search.samples)[self.asked : self.asked + n]
        if self.search.algorithm == "random":
            values = _random(self.search)[self.asked : self.asked + n]
        elif self.search.algorithm == "sobol":
            values = _sobol(self.search)[self.asked : self.asked + n]
        else:
            values = [self._suggest(name) for name in names]
        self.asked += n
        return {name: _quantized(self.search, v) for name, v in zip(names, values)}

    def _suggest(self, name: str) -> dict:
        suggested = self._optuna.suggest(name)
        self._pending.append(name)
        return {k: _from_optuna(self.search.space[k], v) for k, v in suggested.items()}

    def tell(self, results: dict[str, float | None]) -> None:
        """Each asked sample's mean over its seeds (None or NaN: it has none, e.g. every seed was pruned early
        or failed; the searcher is told it failed)."""
        if self._optuna is None:
            return
        for name in list(self._pending):
            value = results.get(name)
            if value is None or math.isnan(value):
                self._optuna.on_trial_complete(name, None, error=True)
            else:
                self._optuna.on_trial_complete(name, {"score": value})
            self._pending.remove(name)


def _random(search: Search) -> list[dict]:
    """``search.samples`` samples, each drawing every key in turn with Tune's own distributions from one seeded
    generator: sample k is the same whatever the number of samples, so raising ``samples`` only adds samples."""
    from ray import tune

    rng = np.random.default_rng(search.seed)
    domains = {k: _tune_domain(tune, d) for k, d in search.space.items()}
    return [{k: _plain(dom.sample(random_state=rng)) for k, dom in domains.items()} for _ in range(search.samples)]


def _tune_domain(tune, d: Distribution):
    if isinstance(d, Choice):
        return tune.choice(list(d.options))
    if isinstance(d, RandInt):
        return tune.qrandint(d.low, d.high, d.q) if d.q else tune.randint(d.low, d.high)
    return tune.loguniform(d.low, d.high) if d.log else tune.uniform(d.low, d.high)  # q: _quantized


def _sobol(search: Search) -> list[dict]:
    import warnings

    optuna = _import_optuna(search)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=search.seed, warn_independent_sampling=False
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = {k: _optuna_dist(optuna, d) for k, d in search.space.items()}
    out = []
    for _ in range(search.samples):
        trial = study.ask(dists)
        out.append({k: _from_optuna(search.space[k], trial.params[k]) for k in search.space})
        study.tell(trial, 0.0)  # QMC ignores values; the next point follows in the sequence
    return out


def _tpe(search: Search):
    """Ray Tune's OptunaSearch with a seeded TPE sampler, maximizing the sample's mean over seeds."""
    optuna = _import_optuna(search)
    from ray.tune.search.optuna import OptunaSearch

    space = {k: _optuna_dist(optuna, d) for k, d in search.space.items()}
    sampler = optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=min(FIRST_BATCH, search.samples))
    return OptunaSearch(space=space, metric="score", mode="max", sampler=sampler)


def _import_optuna(search: Search):
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            f"search.algorithm={search.algorithm!r} needs optuna, which is not installed: {OPTUNA_PIP}"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _optuna_dist(optuna, d: Distribution):
    """Optuna's form of a distribution; a choice samples the index of its option (options may be tuples)."""
    if isinstance(d, Choice):
        return optuna.distributions.CategoricalDistribution(list(range(len(d.options))))
    if isinstance(d, RandInt):
        return optuna.distributions.IntDistribution(d.low, d.high - 1, step=d.q or 1)
    return optuna.distributions.FloatDistribution(d.low, d.high, log=d.log)  # q: _quantized


def _from_optuna(d: Distribution, value: Any) -> Any:
    return d.options[value] if isinstance(d, Choice) else _plain(value)


def _quantized(search: Search, values: dict) -> dict:
    """Floats with ``q`` rounded to a multiple of q, kept inside [low, high] (Tune's quantization)."""
    out = {}
    for k, v in values.items():
        d = search.space[k]
        if isinstance(d, Uniform) and d.q:
            v = min(max(round(round(v / d.q) * d.q, 12), d.low), d.high)
        out[k] = v
    return out


def _plain(x: Any) -> Any:
    """numpy scalars as Python numbers, tuples kept (model.hidden)."""
    return x.item() if isinstance(x, np.generic) else x


def record(study) -> dict | None:
    """What study.json says of a study's search: the space as written, samples, algorithm, seed, scheduler, and
    the samples asked in each batch (a learning search adds a batch per phase)."""
    from dataclasses import asdict

    from runner.study.space import describe

    if study.search is None:
        return None
    s = study.search
    return {
        "space": {k: describe(d) for k, d in s.space.items()},
        "log": [k for k, d in s.space.items() if getattr(d, "log", False)],
        "samples": s.samples,
        "algorithm": s.algorithm,
        "seed": s.seed,
        "scheduler": asdict(study.scheduler) if study.scheduler else None,
        "confirm": s.confirm,
        "batches": [[v for v in sample_names(s.samples) if v in study.variants]],
    }


def replay(search: Search, phases: Sequence[dict[str, dict]], results: dict[str, float | None]) -> Sampler:
    """A Sampler put back where a study left it: asks for each recorded batch again (the same samples: every
    algorithm is seeded) and tells it the recorded results. ``phases``: the samples of each batch, in order."""
    sampler = Sampler(search)
    for recorded in phases:
        asked = sampler.ask(len(recorded))
        if json.loads(json.dumps(asked)) != json.loads(json.dumps(recorded)):  # tuples as JSON lists
            raise ConfigError(
                f"search: the {search.algorithm} sampler now gives other samples than the results dir holds "
                f"({next(iter(asked.items()))} vs {next(iter(recorded.items()))}); was Search changed? "
                "Restore the study file's Search, or start a new study"
            )
        sampler.tell(results)
    return sampler
