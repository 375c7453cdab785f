"""TensorBoard's HParams tab for a study: one experiment config at the results root, one session per trial run.

The experiment config names every hyper-parameter with its domain, and the metrics; each trial's run holds its
session (its values, in its variant's group, so TensorBoard averages a variant's seeds). Both name a
hyper-parameter by its dotted config key and render its value with ``render``, so they always match. Written with
tensorboard's own protos and event writer: the driver, which writes the experiment config and the sessions of
pruned trials, loads no torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.config import flatten, is_learned
from runner.results import files

# result field -> TensorBoard tag, written every epoch
EPOCH_TAGS = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "epoch_seconds": "time/epoch_seconds",
    "images_per_second": "time/images_per_second",
}
# TensorBoard's HParams tab reads one experiment config (every hyper-parameter with its domain, and the
# metrics) from the results root, and one session per trial run, grouped by variant. Both name a
# hyper-parameter by its dotted config key and render its value with ``render``, so they always match.

BEST_TAGS = ("best/val_accuracy", "best/epoch")  # written by TrialBoard.finish, step 0
EXPERIMENT_FILE = ".hparams"  # suffix of the results root's events file that holds the experiment config


is_hparam = is_learned  # TensorBoard's hparams: the settings that change what a trial learns


def render(key: str, value):
    """A config value as an HParams value (a number, string or bool): augment.train as its transforms' names
    ("none" without), other lists as their items joined by "-" (model.hidden (512, 128) -> "512-128").
    Idempotent: a rendered value renders to itself."""
    if key == "augment.train" and isinstance(value, list | tuple):
        return ",".join(str(a.get("name")) if isinstance(a, dict) else str(a) for a in value) or "none"
    if isinstance(value, list | tuple):
        return "-".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "none" if value is None else value


def hparams(variant: str, cfg) -> dict:
    """A trial's hyper-parameters (a TrialConfig) as HParams values, by dotted key, with its variant; not its
    seed (a variant's seeds are one session group)."""
    flat = flatten(cfg.to_dict())
    return {"variant": variant, **{k: render(k, v) for k, v in flat.items() if is_hparam(k)}}


def experiment_metrics(test: bool) -> list[str]:
    """The HParams metrics: the best epoch's numbers (and test accuracy with a test split), then the last
    epoch's course scalars."""
    course = [tag for tag in EPOCH_TAGS.values() if not tag.startswith("time/")]
    return [*BEST_TAGS, *(["best/test_accuracy"] if test else []), *course]


def experiment_domains(
    variants: Mapping[str, Mapping[str, Any]], space: Mapping[str, Any], base=None
) -> dict[str, list | tuple[float, float]]:
    """Each hyper-parameter's domain for write_experiment: "variant" -> the variant names; a key the variants
    set -> its distinct values (``variants``: name -> dotted overrides, with the ``base`` TrialConfig's value for
    variants that keep it; or name -> hparams() values); a searched key of ``space`` -> (low, high) of a numeric
    distribution, or its options, widened by any value a variant sets. With ``base``, every hyper-parameter."""
    base_values = hparams("", base) if base is not None else {}
    base_values.pop("variant", None)
    seen: dict[str, list] = {k: [] for k in base_values}
    for overrides in variants.values():
        rendered = {k: render(k, v) for k, v in overrides.items() if is_hparam(k) and k != "variant"}
        for k, v in {**base_values, **rendered}.items():
            seen.setdefault(k, []).append(v)
    domains: dict[str, list | tuple[float, float]] = {"variant": list(variants)}
    for k in sorted(set(seen) | {k for k in space if is_hparam(k)}):
        domains[k] = _domain(k, seen.get(k, []), space.get(k))
    return domains


def _domain(key: str, values: list, dist) -> list | tuple[float, float]:
    if dist is not None and hasattr(dist, "options"):
        return _distinct([*(render(key, o) for o in dist.options), *values])
    if dist is not None:
        numbers = [v for v in values if _is_number(v)]
        return (float(min([dist.low, *numbers])), float(max([dist.high, *numbers])))
    return _distinct(values)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _distinct(values: list) -> list:
    """Sorted distinct values of one type, as TensorBoard's Discrete domain needs: numbers as floats; a mix
    of kinds as strings."""
    if all(isinstance(v, bool) for v in values):
        return sorted(set(values))
    if all(_is_number(v) for v in values):
        return sorted({float(v) for v in values})
    return sorted({str(v) for v in values})


def write_experiment(logdir: str | Path, domains: Mapping[str, list | tuple[float, float]], metrics: list[str]) -> Path:
    """The study's one HParams experiment config, in an events file of its own at ``logdir`` (the results
    root), replacing an earlier one (TensorBoard would keep the first it reads). ``domains``: name -> a list
    of values (discrete) or a (low, high) tuple (an interval); ``metrics``: scalar tags of each trial run."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # not torch's: the driver loads no torch

    logdir = Path(logdir)
    for old in logdir.glob(f"events.out.tfevents.*{EXPERIMENT_FILE}"):
        old.unlink()
    writer = EventFileWriter(str(logdir), filename_suffix=EXPERIMENT_FILE)
    writer.add_event(Event(summary=_experiment(domains, metrics), wall_time=time.time()))
    writer.close()
    return next(logdir.glob(f"events.out.tfevents.*{EXPERIMENT_FILE}"))


def _experiment(domains: Mapping[str, list | tuple[float, float]], metrics: list[str]):
    """The Summary holding the experiment config (hparams_config_pb's, with ``differs`` set, so the HParams
    table shows the hyper-parameters that vary first)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    infos = []
    for name, domain in domains.items():
        info = api_pb2.HParamInfo(name=name, differs=len(domain) > 1 if isinstance(domain, list) else True)
        if isinstance(domain, list):
            hp.Discrete(domain).update_hparam_info(info)
        else:
            hp.RealInterval(*map(float, domain)).update_hparam_info(info)
        infos.append(info)
    exp = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=[hp.Metric(tag).as_proto() for tag in metrics], time_created_secs=time.time()
    )
    summary = Summary()
    data = plugin_data_pb2.HParamsPluginData(experiment=exp)
    summary.value.add(
        tag=metadata.EXPERIMENT_TAG, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return summary


def pruned_session(trial_dir: str | Path, variant: str, cfg, best: float, best_epoch: int) -> None:
    """The HParams session of a trial the scheduler stopped (it never reached TrialBoard.finish), written by the
    driver into the trial's run in an events file of its own. TensorBoard has no status for "stopped early": it
    says UNKNOWN, so the dashboard's status filter tells pruned trials from those that ran to the end."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # not torch's: the driver loads no torch

    writer = EventFileWriter(str(trial_dir), filename_suffix=files.PRUNED_EVENTS)
    now = time.time()
    scalars = {"best/val_accuracy": best, "best/epoch": best_epoch}
    values = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()]
    writer.add_event(Event(summary=Summary(value=values), wall_time=now, step=0))
    for s in session(hparams(variant, cfg), variant, api_pb2.STATUS_UNKNOWN):
        writer.add_event(Event(summary=s, wall_time=now))
    writer.close()


def session(values: dict, group: str, status=None) -> list:
    """A trial's HParams session start (its values, in ``group``) and end (success, or ``status``) summaries."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    end = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(
            status=api_pb2.STATUS_SUCCESS if status is None else status, end_time_secs=time.time()
        )
    )
    end_summary = Summary()
    end_summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(end), tensor=metadata.NULL_TENSOR
    )
    return [hp.hparams_pb(values, trial_id=group), end_summary]
