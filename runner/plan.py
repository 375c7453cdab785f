"""A study as a plan: one typed ``TrialSpec`` per (variant, seed), fitted to the cluster.

The spec is the only thing that goes from the plan to a Tune trial and into the training loop: Tune
carries it in its param dict as ``to_param()`` and the trial rebuilds it with ``from_param``, here
and nowhere else. study.json records every spec too, so a resumed study is compared with the plan
it ran. Pure logic: no Ray, no torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from runner.config import ConfigError, Study, TrialConfig, apply_overrides
from runner.resources import Cluster, Fit, fit_trial, max_concurrent


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


def check_same_study(plan: Plan, planned_before: list[dict], where: str) -> None:
    """Refuse to resume a results dir whose study.json planned other trials than ``plan``.

    Compared through TrialConfig, so a setting added since the study ran compares as its default;
    resources are left out, as they are fitted to the cluster of the day.
    """

    def comparable(params: list[dict]) -> list[dict]:
        return [
            {
                "variant": p["variant"],
                "seed": p["seed"],
                "order": p.get("order", 0),
                "data": p.get("data"),
                "trial": {k: v for k, v in TrialConfig.from_dict(p["trial"]).to_dict().items() if k != "resources"},
            }
            for p in params
        ]

    now = json.loads(json.dumps([s.to_param() for s in plan.specs]))
    if comparable(now) != comparable(planned_before):
        raise ConfigError(
            f"{where} no longer describes that study; resume with the original config and --set values, "
            "or start a new study without --resume"
        )
