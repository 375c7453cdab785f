"""A real two-node Ray cluster on this machine (two raylets on loopback, started with `ray start`):
the CLI joins it with --address (or RAY_ADDRESS, as `ray job submit` sets it), and one trial's two DDP
workers run one on each node."""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, write_study

pytestmark = pytest.mark.e2e

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_cluster(marker: str) -> None:
    """Stop only this test's Ray processes (they carry the marker in their environment); `ray stop`
    would stop every Ray on the machine."""
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        time.sleep(2)


@pytest.fixture
def two_nodes():
    import tempfile
    import uuid

    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="rmn", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    marker = f"RUNNER_TEST_CLUSTER={uuid.uuid4().hex}"
    # Token auth on for the nodes and the client alike (Ray 2.60 rejects a client whose mode differs).
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "token", marker.split("=")[0]: marker.split("=")[1]}

    def ray(*args):
        return subprocess.run([RAY, *args], env=env, capture_output=True, text=True, timeout=180)

    try:
        assert ray("get-auth-token", "--generate").returncode == 0
        head = ray(
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        )
        assert head.returncode == 0, head.stderr[-2000:]
        worker = ray(
            "start",
            f"--address=127.0.0.1:{port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--disable-usage-stats",
        )
        assert worker.returncode == 0, worker.stderr[-2000:]
        yield f"127.0.0.1:{port}", env
    finally:
        _stop_cluster(marker)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("join", ["--address", "RAY_ADDRESS"])
def test_trial_workers_run_on_both_nodes(tmp_path, two_nodes, join):
    address, env = two_nodes
    cfg = write_study(
        tmp_path / "mn.py",
        """
        study = Study(
            name="multinode",
            base=TrialConfig(data=DataConfig(path="builtin:digits", image_size=12), model=ModelConfig(hidden=(16,)),
                             train=TrainConfig(epochs=2, batch_size=64), resources=ResourcesConfig(workers_per_trial=2)),
        )
    """,
    )
    out = tmp_path / "out"
    joining = ["--address", address] if join == "--address" else []
    client_env = {k: env[k] for k in ("RAY_TMPDIR", "RAY_AUTH_MODE")}
    if join == "RAY_ADDRESS":
        client_env["RAY_ADDRESS"] = address
    proc = run_cli(str(cfg), *joining, "--storage", str(out), "--name", "mn", env=client_env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "(2 nodes)" in proc.stdout
    rows = list(csv.DictReader(open(out / "mn" / "summary.csv")))
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    trial_dir = out / "mn" / rows[0]["trial_dir"]
    last = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()][-1]
    nodes = {w.split("@")[0] for w in last["workers"].split(",")}
    assert len(nodes) == 2, f"both ranks ran on one node: {last['workers']}"
    assert (trial_dir / "events.out.tfevents").parent.exists() and list(trial_dir.glob("events.out.tfevents*"))
