"""What the driver records in a results dir besides the trials' own files: audit.json and study.json before any
trial starts (a URI holds both first, so --resume works from any machine), and TensorBoard's one HParams
experiment config, again once a search or sequential seeds added variants."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from runner import storage
from runner.driver import search
from runner.driver.prepare import Prepared
from runner.results import files, hparams, studyfile
from runner.storage import Results
from runner.study.plan import Plan


def write_start(results: Results, prepared: Prepared, plan: Plan, config: str, resuming: bool) -> None:
    """audit.json, and study.json for a new study; a URI holds both before any trial starts, so --resume
    works from any machine."""
    results.local.mkdir(parents=True, exist_ok=True)
    images = prepared.data.images
    audit = json.dumps({k: im.audit for k, im in images.items()}, indent=2) + "\n"
    storage.write_atomic(results.local / files.AUDIT, audit)
    if not resuming:
        studyfile.write(
            results.local,
            study=plan.study,
            reference=plan.reference,
            metric=plan.metric,
            seeds=list(plan.seeds),
            variants={v: dict(prepared.study.variants[v]) for v in plan.variants},
            max_seeds=prepared.study.max_seeds,
            search=search.record(prepared.study),
            trials=[s.to_param() for s in plan.specs],
            phases=[[s.to_param() for s in plan.specs]],
            data={k: im.summary() for k, im in images.items()},
            cluster=dataclasses.asdict(plan.cluster),
            max_concurrent=plan.concurrent,
            config_file=str(Path(config).resolve()),
        )
    write_hparams(results, prepared)


def write_hparams(results: Results, prepared: Prepared) -> None:
    """TensorBoard's one HParams experiment config at the results root: every hyper-parameter with its domain
    (the variants, the values the variants set, the sampled ranges) and the metrics."""
    study = prepared.study
    test = any("test_images" in im.summary() for im in prepared.data.images.values())
    space = study.search.space if study.search is not None else {}
    domains = hparams.experiment_domains(study.variants, space, study.base)
    hparams.write_experiment(results.local, domains, hparams.experiment_metrics(test))
    results.push()
