"""Search spaces and schedulers as plain data: what a study file writes, checked before Ray starts.

Standard library only (runner.config re-exports these, and a study file loads in milliseconds). Ray Tune
does the sampling and the scheduling (runner.driver.search); this module only names what to ask it for.

    Search(space={"optim.lr": loguniform(1e-5, 1e-1), "model.dropout": uniform(0.0, 0.5)}, samples=16)
    ASHA(grace_epochs=2, reduction_factor=3)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALGORITHMS = ("random", "sobol", "optuna")  # Tune's seeded random sampling; Optuna's Sobol (QMC) and TPE samplers
SAMPLE_PREFIX = "s"  # sampled configs are variants s000, s001, ... in sample order
NOT_SEARCHABLE = ("data.", "resources.", "train.seed")  # they change what is compared, or how it runs: use variants


@dataclass(frozen=True)
class Uniform:
    """A float in [low, high]; with ``q``, rounded to a multiple of q."""

    low: float
    high: float
    q: float | None = None
    log: bool = False


@dataclass(frozen=True)
class RandInt:
    """An integer in [low, high) (Tune's convention); with ``q``, a multiple of q."""

    low: int
    high: int
    q: int | None = None


@dataclass(frozen=True)
class Choice:
    """One of ``options`` (numbers, strings, bools or tuples such as model.hidden)."""

    options: tuple


Distribution = Uniform | RandInt | Choice


def uniform(low: float, high: float) -> Uniform:
    return Uniform(low, high)


def quniform(low: float, high: float, q: float) -> Uniform:
    return Uniform(low, high, q)


def loguniform(low: float, high: float) -> Uniform:
    return Uniform(low, high, log=True)


def qloguniform(low: float, high: float, q: float) -> Uniform:
    return Uniform(low, high, q, log=True)


def randint(low: int, high: int) -> RandInt:
    return RandInt(low, high)


def qrandint(low: int, high: int, q: int) -> RandInt:
    return RandInt(low, high, q)


def choice(options) -> Choice:
    return Choice(tuple(options))


@dataclass(frozen=True)
class Search:
    """``samples`` configs drawn from ``space`` (dotted key -> distribution) by ``algorithm``, reproducibly
    from ``seed``. Each is a variant (s000, s001, ...) run over the study's seeds, beside its fixed variants.
    ``confirm=k``: after the search, the k best samples by the searcher's score run every epoch over every seed
    (pruned trials carry on from their checkpoints) and get verdicts against the reference like fixed variants."""

    space: Mapping[str, Distribution] = field(default_factory=dict)
    samples: int = 8
    algorithm: str = "random"
    seed: int = 0
    confirm: int = 0


@dataclass(frozen=True)
class ASHA:
    """Tune's asynchronous successive halving on each epoch's val accuracy: at epochs grace_epochs,
    grace_epochs * reduction_factor, ... a trial behind the best 1/reduction_factor of those that reached
    that epoch is stopped (status ``pruned``)."""

    grace_epochs: int = 1
    reduction_factor: float = 3


def sample_names(samples: int) -> list[str]:
    width = max(3, len(str(samples - 1)))
    return [f"{SAMPLE_PREFIX}{k:0{width}d}" for k in range(samples)]


def check_search(search: Any, keys: Mapping[str, Any], where: str) -> list[str]:
    """Every problem of a Study's ``search`` (None is fine), each a line naming the key and how to fix it."""
    if search is None:
        return []
    if not isinstance(search, Search):
        return [f"{where}: search must be a runner.config.Search(space=..., samples=...), got {type(search).__name__}"]
    problems = []
    if not isinstance(search.samples, int) or isinstance(search.samples, bool) or search.samples < 1:
        problems.append(f"{where}: search.samples={search.samples!r} must be a whole number >= 1")
    if search.algorithm not in ALGORITHMS:
        problems.append(f"{where}: search.algorithm={search.algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
    if not isinstance(search.seed, int) or isinstance(search.seed, bool):
        problems.append(f"{where}: search.seed={search.seed!r} must be a whole number")
    problems += check_confirm(search, where)
    if not isinstance(search.space, Mapping) or not search.space:
        return [*problems, f"{where}: search.space must be a non-empty dict of dotted key -> distribution"]
    for key, dist in search.space.items():
        problems += [f"{where}: search.space[{key!r}]: {p}" for p in _check_key(key, keys) + _check_dist(dist)]
    return problems


def check_confirm(search: Search, where: str) -> list[str]:
    """``confirm``: a whole number from 0 (no confirmation) to the number of samples."""
    k, n = search.confirm, search.samples
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        return [f"{where}: search.confirm={k!r} must be a whole number >= 0 (0: no confirmation)"]
    if isinstance(n, int) and k > n:
        return [f"{where}: search.confirm={k} is more than search.samples={n}; confirm at most {n} samples, "
                "or raise samples"]  # fmt: skip
    return []


def _check_key(key: Any, keys: Mapping[str, Any]) -> list[str]:
    if not isinstance(key, str) or key not in keys:
        close = difflib.get_close_matches(str(key), list(keys), n=1, cutoff=0.6)
        return [f"unknown key ({f'did you mean {close[0]!r}?' if close else 'keys are dotted, e.g. optim.lr'})"]
    if key.startswith(NOT_SEARCHABLE):
        return [f"{', '.join(NOT_SEARCHABLE)} cannot be searched (they change the data or the resources); use variants"]
    return []


def _check_dist(dist: Any) -> list[str]:
    if isinstance(dist, Choice):
        return [] if len(dist.options) else ["choice() has no options; give at least one"]
    if not isinstance(dist, Uniform | RandInt):
        return [f"{dist!r} is not a distribution; use uniform, loguniform, quniform, randint, qrandint or choice"]
    if not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (dist.low, dist.high)
    ):
        return [f"low={dist.low!r}, high={dist.high!r} must be finite numbers"]
    if dist.low >= dist.high:
        return [f"low={dist.low!r} must be below high={dist.high!r}"]
    if getattr(dist, "log", False) and dist.low <= 0:
        return [f"a log scale needs low > 0, got low={dist.low!r}"]
    if dist.q is not None and not (isinstance(dist.q, int | float) and dist.q > 0):
        return [f"q={dist.q!r} must be a number > 0"]
    if isinstance(dist, RandInt) and not all(isinstance(x, int) for x in (dist.low, dist.high, dist.q or 1)):
        return [f"randint needs whole numbers, got low={dist.low!r}, high={dist.high!r}"]
    return []


def check_scheduler(scheduler: Any, where: str) -> list[str]:
    if scheduler is None:
        return []
    if not isinstance(scheduler, ASHA):
        return [f"{where}: scheduler={scheduler!r}: the scheduler is runner.config.ASHA(...) or None"]
    problems = []
    g, r = scheduler.grace_epochs, scheduler.reduction_factor
    if not isinstance(g, int) or isinstance(g, bool) or g < 1:
        problems.append(f"{where}: ASHA(grace_epochs={g!r}) must be a whole number >= 1")
    if not isinstance(r, int | float) or isinstance(r, bool) or r <= 1:
        problems.append(f"{where}: ASHA(reduction_factor={r!r}) must be a number > 1")
    return problems


def domain(dist: Distribution) -> list | tuple[float, float]:
    """Where a distribution's values lie: its options, or the interval (low, high)."""
    return list(dist.options) if isinstance(dist, Choice) else (dist.low, dist.high)


def describe(dist: Distribution) -> str:
    """A short human form, e.g. loguniform(1e-05, 0.1)."""
    if isinstance(dist, Choice):
        return f"choice({list(dist.options)})"
    name = ("q" if dist.q else "") + (
        "randint" if isinstance(dist, RandInt) else "loguniform" if dist.log else "uniform"
    )
    return f"{name}({dist.low:g}, {dist.high:g}{f', {dist.q:g}' if dist.q else ''})"
