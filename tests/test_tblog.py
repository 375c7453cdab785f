"""TensorBoard HParams as TensorBoard means it: one experiment config at the results root, one session per
trial run, a variant's seeds one session group. Checked through a real `tensorboard` server's HTTP API,
with the requests its HParams dashboard sends (tensorboard/plugins/hparams, webfiles tf-hparams-dashboard)."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from runner.config import ModelConfig, Study, TrialConfig
from runner.results import hparams
from runner.results.files import trial_dir_name
from runner.trial import board
from runner.trial.engine import EarlyStopping

TENSORBOARD = Path(sys.executable).parent / "tensorboard"
STATUSES = ["STATUS_FAILURE", "STATUS_RUNNING", "STATUS_SUCCESS", "STATUS_UNKNOWN"]


@dataclass(frozen=True)
class Uniform:  # duck-types runner.config's numeric distributions
    low: float
    high: float
    q: float | None = None


@dataclass(frozen=True)
class Choice:  # duck-types runner.config.Choice
    options: tuple


STUDY = Study(
    name="tb",
    base=TrialConfig(model=ModelConfig(hidden=(512, 128), dropout=0.1)),
    variants={"default": {}, "xavier": {"model.init": "xavier_uniform", "resources.workers_per_trial": 2}},
    seeds=(0, 1),
)


def test_hparams_are_dotted_config_keys_without_the_seed():
    values = hparams.hparams("xavier", STUDY.trial_config("xavier", 1))
    assert values["variant"] == "xavier" and values["model.init"] == "xavier_uniform"
    assert values["model.hidden"] == "512-128" and values["model.dropout"] == 0.1
    assert values["augment.train"] == "HorizontalFlip,RandomBrightnessContrast"
    assert values["optim.lr"] == 1e-3 and values["train.batch_size"] == 32 and values["model.batchnorm"] is False
    assert not any(k == "train.seed" or k.startswith("resources.") for k in values)
    assert hparams.hparams("xavier", STUDY.trial_config("xavier", 0)) == values  # a variant's seeds: one session group


def test_domains_of_fixed_variants_and_a_search_space():
    variants = {
        **STUDY.variants,
        "s000": {"optim.lr": 0.003, "model.hidden": (256,)},
        "s001": {"optim.lr": 0.02, "model.hidden": (64, 32)},
    }
    space = {"optim.lr": Uniform(1e-4, 0.1), "model.hidden": Choice(((256,), (64, 32), (512, 128)))}
    domains = hparams.experiment_domains(variants, space, base=STUDY.base)
    assert domains["variant"] == ["default", "xavier", "s000", "s001"]
    assert domains["model.init"] == ["default", "xavier_uniform"]  # the base's value with the variant's
    assert domains["optim.lr"] == (1e-4, 0.1)
    assert domains["model.hidden"] == ["256", "512-128", "64-32"]  # rendered as the sessions render them
    assert domains["model.dropout"] == [0.1] and domains["model.batchnorm"] == [False]
    assert "train.seed" not in domains and "resources.workers_per_trial" not in domains
    # every session value lies in its domain, under the same key
    for name in variants:
        for key, value in hparams.hparams(name, STUDY.base).items():
            domain = domains[key]
            assert value in domain if isinstance(domain, list) else domain[0] <= value <= domain[1], key


def test_domains_from_hparams_values_need_no_base():
    configs = {v: hparams.hparams(v, STUDY.trial_config(v, 0)) for v in STUDY.variants}
    assert hparams.experiment_domains(configs, {}) == hparams.experiment_domains(STUDY.variants, {}, base=STUDY.base)


def test_rewriting_the_experiment_replaces_it(tmp_path):
    first = hparams.write_experiment(tmp_path, {"variant": ["a"]}, ["best/val_accuracy"])
    second = hparams.write_experiment(tmp_path, {"variant": ["a", "b"]}, ["best/val_accuracy"])
    assert not first.exists() or first == second
    assert list(tmp_path.glob("events.out.tfevents.*")) == [second]


def _write_trial(root: Path, variant: str, seed: int, accs: list[float]) -> None:
    spec = SimpleNamespace(variant=variant, config=STUDY.trial_config(variant, seed))
    tb = board.TrialBoard(str(root / trial_dir_name(variant, seed, f"t{variant[:3]}{seed}")))
    stopper, model = EarlyStopping(patience=0), torch.nn.Linear(4, 2)
    for epoch, acc in enumerate(accs, 1):
        metrics = {"epoch": epoch, "val_accuracy": acc, "val_loss": 1 - acc, "train_accuracy": acc, "train_loss": 1}
        tb.epoch({**metrics, "epoch_seconds": 0.1, "images_per_second": 100.0}, model)
        stopper.update(acc, epoch)
    tb.finish(spec, stopper, {"accuracy": accs[-1] - 0.05})


@pytest.fixture(scope="module")
def board_server(tmp_path_factory):
    """2 variants x 2 seeds of trial runs and the study's experiment config, served by a real tensorboard."""
    if not TENSORBOARD.exists():
        pytest.skip(f"no tensorboard executable beside {sys.executable}")
    root = tmp_path_factory.mktemp("results")
    for (variant, seed), accs in {
        ("default", 0): [0.4, 0.5],
        ("default", 1): [0.3, 0.6],
        ("xavier", 0): [0.5, 0.4],
        ("xavier", 1): [0.2, 0.3],
    }.items():
        _write_trial(root, variant, seed, accs)
    domains = hparams.experiment_domains(STUDY.variants, {}, base=STUDY.base)
    hparams.write_experiment(root, domains, hparams.experiment_metrics(test=True))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(TENSORBOARD), "--logdir", str(root), "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}/data/plugin/hparams", domains, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _poll(proc, url: str, body: dict, ready) -> dict:
    """The server's answer once ``ready(answer)``: it loads the runs in the background after it starts."""
    last: object = None
    for _ in range(240):
        if proc.poll() is not None:
            pytest.fail(f"tensorboard exited: {proc.stderr.read()[-2000:]}")
        try:
            last = _post(url, body)
            if ready(last):
                return last
        except (urllib.error.URLError, ConnectionError) as e:
            last = e
        time.sleep(0.5)
    pytest.fail(f"tensorboard never answered {url} as expected; last: {last}")


@pytest.mark.e2e
def test_tensorboard_serves_the_experiment_config(board_server):
    url, domains, proc = board_server
    exp = _poll(proc, f"{url}/experiment", {"experimentName": "", "hparamsLimit": 1000}, lambda e: e.get("hparamInfos"))
    infos = {i["name"]: i for i in exp["hparamInfos"]}
    assert infos.keys() == domains.keys()
    assert infos["variant"]["domainDiscrete"] == ["default", "xavier"] and infos["variant"]["differs"]
    assert infos["model.init"]["domainDiscrete"] == ["default", "xavier_uniform"]
    assert infos["model.hidden"]["domainDiscrete"] == ["512-128"] and not infos["model.hidden"].get("differs")
    assert infos["optim.lr"]["type"] == "DATA_TYPE_FLOAT64"
    # the hyper-parameters that differ come first: the dashboard shows the first five
    assert [i["name"] for i in exp["hparamInfos"][:2]] == ["model.init", "variant"]
    metrics = [m["name"]["tag"] for m in exp["metricInfos"]]
    assert metrics == hparams.experiment_metrics(test=True)
    assert {"best/test_accuracy", "val/accuracy", "train/loss"} <= set(metrics)


@pytest.mark.e2e
def test_tensorboard_groups_a_variants_seeds(board_server):
    url, domains, proc = board_server
    cols = [{"hparam": name, "includeInResult": True} for name in domains]
    cols += [{"metric": {"tag": t, "group": ""}, "includeInResult": True} for t in hparams.experiment_metrics(True)]
    body = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": cols, "startIndex": 0, "sliceSize": 100}
    answer = _poll(
        proc, f"{url}/session_groups", body, lambda a: sum(len(g["sessions"]) for g in a.get("sessionGroups", [])) == 4
    )
    groups = {g["name"]: g for g in answer["sessionGroups"]}
    assert answer["totalSize"] == 2 and groups.keys() == {"default", "xavier"}
    xavier = groups["xavier"]
    assert sorted(s["name"] for s in xavier["sessions"]) == sorted(
        trial_dir_name("xavier", seed, f"txav{seed}") for seed in (0, 1)
    )
    assert xavier["hparams"]["model.init"] == "xavier_uniform" and xavier["hparams"]["model.hidden"] == "512-128"
    assert all(s["status"] == "STATUS_SUCCESS" for s in xavier["sessions"])
    # the group's metrics are its seeds' mean: best val accuracy 0.5 and 0.3 -> 0.4; last val accuracy 0.4, 0.3
    values = {m["name"]["tag"]: m["value"] for m in xavier["metricValues"]}
    assert values["best/val_accuracy"] == pytest.approx(0.4)
    assert values["val/accuracy"] == pytest.approx(0.35)
    assert values["best/test_accuracy"] == pytest.approx(0.3)


def test_a_pruned_trials_session_is_written_without_torch(tmp_path):
    """The driver marks a trial ASHA stopped with its HParams session and best scalars, through tensorboard's own
    writer (the driver loads no torch): TensorBoard reads the scalars and a session whose status is UNKNOWN."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    hparams.pruned_session(tmp_path, "xavier", STUDY.trial_config("xavier", 0), 0.61, 3)
    acc = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    assert [(e.step, round(e.value, 4)) for e in acc.Scalars("best/val_accuracy")] == [(0, 0.61)]
    assert [e.value for e in acc.Scalars("best/epoch")] == [3.0]
    content = acc.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content
    end = plugin_data_pb2.HParamsPluginData.FromString(content).session_end_info
    assert end.status == api_pb2.STATUS_UNKNOWN
    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    ).session_start_info
    assert start.group_name == "xavier" and start.hparams["model.init"].string_value == "xavier_uniform"


def test_a_trial_started_over_shows_each_epoch_once(tmp_path):
    """A trial stopped before its first checkpoint starts over in its dir (purge_step 1), after epochs it had
    logged; one resumed from epoch 3's checkpoint restarts at 4. TensorBoard shows every epoch once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = torch.nn.Linear(2, 2)

    def log(first: int, last: int) -> None:
        tb = board.TrialBoard(str(tmp_path), purge_step=first)
        for epoch in range(first, last + 1):
            tb.epoch({**dict.fromkeys(hparams.EPOCH_TAGS, 0.5), "epoch": epoch}, model)
        tb.writer.close()
        time.sleep(1.1)  # event files are named by the second they were opened in

    log(1, 2)  # stopped after epoch 2, no checkpoint yet
    log(1, 5)  # started over, checkpoint at epoch 3, then killed after epoch 5
    log(4, 6)
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("val/accuracy")] == [1, 2, 3, 4, 5, 6]
