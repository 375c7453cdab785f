"""A study as a plan: one typed ``TrialSpec`` per (variant, seed), fitted to the cluster.

The spec is the only thing that goes from the plan to a Tune trial and into the training loop: Tune
carries it in its param dict as ``to_param()`` and the trial rebuilds it with ``from_param``, here
and nowhere else. study.json records every spec too, so a resumed study is compared with the plan
it ran. Pure logic: no Ray, no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from runner.config import ConfigError, Study, TrialConfig, apply_overrides, flatten, is_learned
from runner.study.resources import Cluster, Fit, fit_trial, max_concurrent

# in the param of a trial of a phase rebuilt from its trial dirs (runner.driver.recover), beside the spec's own keys:
# {"dir": its trial dir, "checkpoint": the checkpoint it carries on from or "", "epoch": that checkpoint's epoch}
CARRY_ON = "carry_on"
# in the param Tune gives a trial of a study with ASHA: ASHA's rungs, the epochs it may stop the trial at; the trial
# checkpoints at each rung after the first, and not before the first (runner.trial.loop._checkpoint_due)
CHECKPOINT_AT = "checkpoint_at"


@dataclass(frozen=True)
class TrialSpec:
    variant: str
    seed: int
    order: int  # the variant's position in the study, for tables
    data_key: str  # which of the study's datasets this trial reads
    classes: tuple[str, ...]  # that dataset's class names, in label order
    config: TrialConfig  # the variant's config with this seed and the fitted cpus_per_worker
    fit: Fit  # what the trial reserves on the cluster

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.seed}"

    @property
    def in_process(self) -> bool:
        """The loop runs in the Tune trial's own process (Ray Train local mode), not in a worker group."""
        return self.config.resources.workers_per_trial == 0

    def to_param(self) -> dict:
        """Plain JSON values for Tune's param_space and study.json."""
        return {
            "variant": self.variant,
            "seed": self.seed,
            "order": self.order,
            "data": self.data_key,
            "classes": list(self.classes),
            "trial": self.config.to_dict(),
            "fit": dataclasses.asdict(self.fit),
        }

    @classmethod
    def from_param(cls, d: dict) -> TrialSpec:
        return cls(
            d["variant"],
            d["seed"],
            d["order"],
            d["data"],
            tuple(d["classes"]),
            TrialConfig.from_dict(d["trial"]),
            Fit(**d["fit"]),
        )


@dataclass(frozen=True)
class Plan:
    study: str
    variants: tuple[str, ...]  # in the study's order: tables list them so
    reference: str  # the variant the others are compared with
    seeds: tuple[int, ...]
    specs: tuple[TrialSpec, ...]
    concurrent: int  # trials at once
    cluster: Cluster
    notes: tuple[str, ...] = ()  # for the console, e.g. a request lowered to fit
    metric: str = "best_val_accuracy"  # what ranks variants and decides verdicts


def make_plan(
    study: Study,
    trials: list[tuple[str, int, TrialConfig]],
    data: list[tuple[str, list[str]]],
    cluster: Cluster,
    user_limit: int | None = None,
) -> Plan:
    """Fit every trial to ``cluster``. ``data[i]`` is trial i's (dataset key, class names)."""
    order = {v: i for i, v in enumerate(study.variants)}
    specs, notes = [], []
    for (variant, seed, cfg), (key, classes) in zip(trials, data):
        fit = fit_trial(cfg.resources, cluster)
        if fit.note:
            notes.append(fit.note)
            cfg = apply_overrides(cfg, {"resources.cpus_per_worker": fit.cpus_per_worker})
        specs.append(TrialSpec(variant, seed, order[variant], key, tuple(classes), cfg, fit))
    concurrent = max_concurrent([s.fit for s in specs], cluster, len(specs), user_limit)
    return Plan(
        study.name,
        tuple(study.variants),
        study.reference_variant,
        tuple(study.seeds),
        tuple(specs),
        concurrent,
        cluster,
        tuple(dict.fromkeys(notes)),
        study.metric,
    )


@dataclass(frozen=True)
class Growth:
    """What a resumed study adds to its results dir, and what it leaves out."""

    new: tuple[TrialSpec, ...]  # planned now, never planned before: run them
    removed: tuple[tuple[str, int], ...]  # (variant, seed) planned before, no longer: kept on disk, out of the tables


def grow(plan: Plan, planned_before: list[dict], where: str) -> Growth:
    """Compare ``plan`` with the trials the results dir planned (study.json): the trials to add, and those
    left out. A variant whose config changed, or changed data, is refused: its old trials ran something
    else. Compared through TrialConfig, so a setting added since compares as its default; settings that do not
    change what a trial learns (config.NOT_LEARNED: the seed, checkpoint frequency, resources) do not count."""
    before = {(p["variant"], p["seed"]): p for p in planned_before}
    old = {p["variant"]: _comparable(TrialConfig.from_dict(p["trial"])) for p in planned_before}
    changes = {}
    for s in plan.specs:
        if s.variant in old:
            diff = _diff(old[s.variant], _comparable(s.config))
            if diff:
                changes[s.variant] = diff
    if changes:
        raise ConfigError(_changed_message(changes, where))
    now = {(s.variant, s.seed) for s in plan.specs}
    return Growth(
        tuple(s for s in plan.specs if (s.variant, s.seed) not in before),
        tuple(k for k in before if k not in now),
    )


def _comparable(cfg: TrialConfig) -> dict:
    flat = flatten(cfg.to_dict())
    return {k: v for k, v in flat.items() if is_learned(k)}


def _diff(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _changed_message(changes: dict[str, list[str]], where: str) -> str:
    data = sorted({d for diff in changes.values() for d in diff if d.startswith("data.")})
    if data and all(d.startswith("data.") for diff in changes.values() for d in diff):
        return (f"{where}: the data changed since the study ran ({'; '.join(data)}), so its trials saw other data; "
                "start a new study without --resume (or restore the data settings)")  # fmt: skip
    listed = "; ".join(f"variant {v!r} ({', '.join(d)})" for v, d in changes.items())
    return (f"{where}: changed since its trials ran: {listed}; its finished trials ran the old config: give a changed "
            "variant a new name, or start a new study without --resume")  # fmt: skip


EVENTS_PER_EPOCH = (
    128 * 1024
)  # bytes of events and results a trial writes per epoch, with room to spare (docs/performance.md)
STATE_COPIES = {"adam": 3, "adamw": 3, "sgd": 2}  # weights + optimizer state a checkpoint holds, in weight copies


def checkpoint_bytes(cfg: TrialConfig, n_classes: int) -> int:
    """About how large one checkpoint of ``cfg``'s model is: its weights and optimizer state in float32."""
    width, n = cfg.data.image_size**2 * cfg.data.channels, 0
    for h in (*cfg.model.hidden, n_classes):
        n += width * h + h + (4 * h if cfg.model.batchnorm and h != n_classes else 0)
        width = h
    return 4 * n * STATE_COPIES.get(cfg.optim.name, 3)


def storage_needed(trials: list[tuple[TrialConfig, int]], memory: int | None = None) -> int:
    """Bytes trials ((config, classes) each) write: Ray keeps two checkpoints per trial (the best and the
    latest), plus each epoch's events and results. A trial whose checkpoint would not fit in ``memory``
    fails allocating its model before it writes anything (an error of that trial), so it counts for nothing."""
    sizes = [(cfg, checkpoint_bytes(cfg, n)) for cfg, n in trials]
    return sum(2 * b + cfg.train.epochs * EVENTS_PER_EPOCH for cfg, b in sizes if memory is None or b <= memory)
