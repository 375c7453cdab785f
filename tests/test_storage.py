"""Results on an object store: runner.storage against a real S3 API (moto's server on loopback), and
the whole CLI with --storage s3://... (trials in Ray processes upload to it, summaries read back)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, run_main, start_cli, write_study
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner import storage
from runner.config import ConfigError

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def s3():
    """An S3 endpoint on 127.0.0.1; yields a function bucket -> base URI with the endpoint options."""
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for k, v in CREDENTIALS.items():
        mp.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield lambda bucket: f"s3://{bucket}/runs?endpoint_override={host}:{port}&scheme=http&allow_bucket_creation=true"
    server.stop()
    mp.undo()


def _files(uri: str) -> dict[str, bytes]:
    """Every file under ``uri``: {relative path: bytes}."""
    with tempfile.TemporaryDirectory() as d:
        storage.download(uri, Path(d))
        return {p.relative_to(d).as_posix(): p.read_bytes() for p in Path(d).rglob("*") if p.is_file()}


def _names(uri: str) -> list[str]:
    """The relative paths of every file under ``uri`` ([] while there is none)."""
    import pyarrow.fs

    fs, path = storage.filesystem(uri)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError:
        return []
    return [i.path[len(path) + 1 :] for i in infos if i.type == pyarrow.fs.FileType.File]


# --------------------------------------------------------------------------- paths and URIs (pure)


def test_join_parent_and_name_keep_a_uris_query_at_the_end():
    uri = "s3://b/runs?endpoint_override=h:9000&scheme=http"
    assert (
        storage.join(uri, "study", "summary.md") == "s3://b/runs/study/summary.md?endpoint_override=h:9000&scheme=http"
    )
    assert storage.parent(storage.join(uri, "study")) == uri
    assert storage.name(storage.join(uri, "study")) == "study"
    assert storage.join("gs://b/x/", "y") == "gs://b/x/y"


def test_paths_and_file_uris_are_directories(tmp_path):
    assert not storage.is_uri(str(tmp_path)) and not storage.is_uri(f"file://{tmp_path}")
    assert storage.is_uri("s3://b/x") and storage.is_uri("gs://b/x")
    assert storage.local_path(f"file://{tmp_path}") == tmp_path
    assert storage.join(str(tmp_path), "a") == str(tmp_path / "a")
    assert storage.parent(str(tmp_path / "a")) == str(tmp_path)


def test_tensorboard_command_for_each_kind_of_location():
    assert storage.tensorboard_command("/r/my study") == "tensorboard --logdir '/r/my study'"
    assert (
        storage.tensorboard_command("s3://b/r/s?endpoint_override=h:9000&scheme=http")
        == "S3_ENDPOINT=http://h:9000 tensorboard --logdir s3://b/r/s"
    )
    assert storage.tensorboard_command("s3://b/r/s?region=eu-west-1") == "tensorboard --logdir s3://b/r/s"
    assert storage.tensorboard_command("gs://b/r/s") == "tensorboard --logdir gs://b/r/s"


@pytest.mark.parametrize(
    "uri, message",
    [
        ("foo://bucket/x", "not a storage URI pyarrow can open"),
        ("s3://", "no bucket in the URI"),
        ("s3://b/x?colour=blue", "not a storage URI pyarrow can open"),
    ],
)
def test_a_uri_pyarrow_cannot_use_is_a_config_error(uri, message):
    with pytest.raises(ConfigError, match=message):
        storage.filesystem(uri)


# --------------------------------------------------------------------------- against S3


def test_upload_sends_only_changed_files_and_download_skips_weights(s3, tmp_path):
    uri = storage.join(s3("roundtrip"), "t")
    src = tmp_path / "src"
    (src / "checkpoint_000001").mkdir(parents=True)
    (src / "events").write_bytes(b"1")
    (src / "checkpoint_000001" / "model.pt").write_bytes(b"weights")
    (src / "checkpoint_000001" / "meta.json").write_text("{}")
    storage.check_writable(s3("roundtrip"))  # creates the bucket, as the CLI does before a study
    seen = storage.upload(src, uri)
    assert set(seen) == {"events", "checkpoint_000001/model.pt", "checkpoint_000001/meta.json"}
    assert _files(uri)["checkpoint_000001/model.pt"] == b"weights"

    fs, path = storage.filesystem(uri)
    fs.delete_file(f"{path}/checkpoint_000001/meta.json")  # unchanged locally: not sent again
    time.sleep(0.01)
    (src / "events").write_bytes(b"12")
    seen = storage.upload(src, uri, seen)
    assert _files(uri).keys() == {"events", "checkpoint_000001/model.pt"} and _files(uri)["events"] == b"12"

    dst = tmp_path / "dst"
    storage.download(uri, dst, storage.skip_weights)
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == ["events"]
    assert storage.children(uri) == ["checkpoint_000001", "events"]
    assert storage.children(storage.join(uri, "events")) == [] and storage.children(storage.join(uri, "nope")) == []


def test_trial_files_stage_locally_and_upload_on_sync(s3):
    uri = storage.join(s3("trialfiles"), "study", "trial_0")
    files = storage.TrialFiles(uri)
    assert files.dir.is_dir() and files.dir.name.startswith("runner-trial-trial_0")
    (files.dir / "events.out.tfevents.1").write_bytes(b"epoch 1")
    storage.check_writable(s3("trialfiles"))
    files.sync()
    assert _files(uri) == {"events.out.tfevents.1": b"epoch 1"}
    (files.dir / "confusion_matrix.json").write_text("{}")
    files.close()
    assert set(_files(uri)) == {"events.out.tfevents.1", "confusion_matrix.json"}
    assert not files.dir.exists()


def test_results_stage_a_uri_locally_and_push_only_the_drivers_files(s3):
    uri = storage.join(s3("results"), "study")
    storage.check_writable(uri)
    storage.write_text(storage.join(uri, "trial_0", "result.json"), "{}\n")
    storage.write_text(storage.join(uri, "trial_0", "checkpoint_000001", "model.pt"), "weights")
    results = storage.Results(uri)
    assert results.remote and results.local.is_dir() and str(results) == uri
    results.pull()
    assert (results.local / "trial_0" / "result.json").exists()
    assert not (results.local / "trial_0" / "checkpoint_000001" / "model.pt").exists()
    (results.local / "summary.csv").write_text("variant\n")
    (results.local / "trial_0" / "result.json").write_text("changed locally\n")
    results.push()
    assert _files(uri)["summary.csv"] == b"variant\n" and _files(uri)["trial_0/result.json"] == b"{}\n"
    results.close()
    assert not results.local.exists()


def test_results_of_a_directory_are_the_directory(tmp_path):
    results = storage.Results(str(tmp_path / "study"))
    assert not results.remote and results.local == tmp_path / "study"
    results.pull(), results.push(), results.close()  # no-ops on the directory itself
    assert not (tmp_path / "study").exists()


def test_unreachable_endpoint_is_one_line_in_seconds():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.time()
    with pytest.raises(ConfigError, match="cannot write there"):
        storage.check_writable(f"s3://b/x?endpoint_override=127.0.0.1:{port}&scheme=http")
    assert time.time() - t0 < storage.PROBE_TIMEOUT_S + 5


def test_an_endpoint_that_never_answers_times_out():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts connections, never answers a request
    try:
        with pytest.raises(ConfigError, match="no answer in 2 s"):
            storage.check_writable(
                f"s3://b/x?endpoint_override=127.0.0.1:{server.getsockname()[1]}&scheme=http", timeout_s=2
            )
    finally:
        server.close()


# --------------------------------------------------------------------------- the CLI


def test_cli_bad_storage_uris_are_one_line_errors(tmp_path):
    for uri, words in [("foo://bucket/x", "not a storage URI"), ("s3://", "no bucket")]:
        proc = run_main("configs/smoke.py", "--storage", uri, "--dry-run", timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], proc.stderr


def test_cli_dry_run_names_the_uri_without_contacting_it():
    proc = run_main(
        "configs/smoke.py",
        "--storage",
        "s3://b/runs?endpoint_override=127.0.0.1:1&scheme=http",
        "--dry-run",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "output s3://b/runs/smoke?endpoint_override=127.0.0.1:1&scheme=http" in proc.stdout


@pytest.mark.e2e
def test_study_on_s3_leaves_complete_results_and_evaluate_reads_them(s3, tmp_path):
    base = s3("study")
    proc = run_cli("configs/smoke.py", "--storage", base, "--name", "smoke", env=CREDENTIALS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = storage.join(base, "smoke")
    assert f"results     {results}" in proc.stdout
    assert "tensorboard S3_ENDPOINT=http://127.0.0.1:" in proc.stdout

    files = _files(results)
    assert {
        "summary.csv",
        "summary.md",
        "summary.parquet",
        "report.html",
        "study.json",
        "audit.json",
        "confusion_by_variant.json",
    } <= set(files)
    rows = list(csv.DictReader(io.StringIO(files["summary.csv"].decode())))
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)
    for r in rows:
        assert f"{r['checkpoint']}/model.pt" in files  # the column names a checkpoint that is there
        trial = {k[len(r["trial_dir"]) + 1 :] for k in files if k.startswith(r["trial_dir"] + "/")}
        assert {"params.json", "result.json", "confusion_matrix.json", "classification_report.txt"} <= trial
        events = [k for k in trial if k.startswith("events.out.tfevents")]
        assert len(events) == 1
        local = tmp_path / r["trial_dir"]
        local.mkdir()
        (local / events[0]).write_bytes(files[f"{r['trial_dir']}/{events[0]}"])
        ea = EventAccumulator(str(local), size_guidance={"scalars": 0, "images": 0})
        ea.Reload()
        assert [e.step for e in ea.Scalars("val/accuracy")] == [1, 2]
        assert "val/confusion_matrix" in ea.Tags()["images"]

    # The printed TensorBoard command works: TensorBoard reads the runs from S3 itself (boto3, with S3_ENDPOINT
    # set before it starts, as the command does).
    command = next(ln for ln in proc.stdout.splitlines() if ln.startswith("tensorboard "))
    endpoint, logdir = command.split()[1].split("=", 1)[1], command.split()[-1]
    read = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
        runs = EventMultiplexer()
        runs.AddRunsFromDirectory({logdir!r})
        runs.Reload()
        for run, tags in sorted(runs.Runs().items()):
            if run != ".":  # the results root holds the study's HParams experiment config, not a trial
                print(run, "val/accuracy" in tags["scalars"])
    """),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "S3_ENDPOINT": endpoint},
    )
    assert read.returncode == 0, read.stderr[-2000:]
    assert read.stdout.split() == [x for r in rows for x in (r["trial_dir"], "True")]

    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner.evaluate",
            results,
            "--data",
            str(_digit_folder(tmp_path)),
            "--out",
            str(tmp_path / "eval"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    assert "checkpoint  s3://study/runs/smoke/" in ev.stdout and "/model.pt?endpoint_override=" in ev.stdout
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"] == 20

    storage.filesystem(results)[0].delete_file(storage.filesystem(storage.join(results, "summary.csv"))[1])
    again = subprocess.run(
        [sys.executable, "-m", "runner.summary", results], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[2].startswith("base") and "summary.csv" in storage.children(results)


@pytest.mark.e2e
def test_study_on_s3_stopped_and_resumed_from_the_uri_finishes_every_trial(s3, tmp_path):
    """SIGTERM mid-trial, then --resume URI: the trial carries on from its checkpoint (downloaded from S3)."""
    base = s3("resume")
    cfg = _one_trial_study(tmp_path, "long", epochs=60)
    results = storage.join(base, "long")
    # a checkpoint every epoch (the default spaces them by what they cost): SIGTERM comes after the 6th
    proc = start_cli(str(cfg), "--storage", base, "--set", "train.checkpoint_every=1", env=CREDENTIALS)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and _last_checkpoint(results) < 5:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert f"--resume '{results}'" in stderr  # the hint quotes the URI for the shell

    resumed = run_cli(str(cfg), "--resume", results, env=CREDENTIALS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    files = _files(results)
    rows = list(csv.DictReader(io.StringIO(files["summary.csv"].decode())))
    assert [r["status"] for r in rows] == ["completed"] and rows[0]["epochs_run"] == "60"
    result = [json.loads(x) for x in files[f"{rows[0]['trial_dir']}/result.json"].decode().splitlines()]
    epochs = [r["epoch"] for r in result if "epoch" in r]
    assert epochs[-1] == 60 and result[-1]["resumed_from_epoch"] >= 5  # carried on, did not start over
    assert "error.txt" not in {k.split("/")[-1] for k in files}


@pytest.mark.e2e
def test_worker_group_trial_checkpoints_to_s3(s3, tmp_path):
    """workers_per_trial=1: Ray Train itself writes the checkpoints to the URI."""
    base = s3("group")
    proc = run_cli(
        str(_one_trial_study(tmp_path, "g", epochs=2)),
        "--storage",
        base,
        "--set",
        "resources.workers_per_trial=1",
        env=CREDENTIALS,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = _files(storage.join(base, "g"))
    rows = list(csv.DictReader(io.StringIO(files["summary.csv"].decode())))
    assert [r["status"] for r in rows] == ["completed"]
    assert "/train/checkpoint_" in rows[0]["checkpoint"] and f"{rows[0]['checkpoint']}/model.pt" in files
    assert any(k.startswith(f"{rows[0]['trial_dir']}/events.out.tfevents") for k in files)


def _one_trial_study(tmp_path: Path, name: str, epochs: int) -> Path:
    return write_study(
        tmp_path / f"{name}.py",
        f"""
        study = Study(name="{name}", base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=16),
                      model=ModelConfig(hidden=(32,)), train=TrainConfig(epochs={epochs}, batch_size=64)),
                      variants={{"base": {{}}}}, seeds=(0,))
    """,
    )


def _last_checkpoint(uri: str) -> int:
    """The highest checkpoint_NNNNNN index under ``uri`` (Tune numbers from 0), -1 while there is none."""
    found = [
        int(part[len("checkpoint_") :])
        for name in _names(uri)
        for part in name.split("/")
        if part.startswith("checkpoint_") and part[len("checkpoint_") :].isdigit()
    ]
    return max(found, default=-1)


def _digit_folder(root: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i in range(20):
        p = root / "digits" / str(d.target[i]) / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 15).astype("uint8")).convert("RGB").save(p)
    return root / "digits"
