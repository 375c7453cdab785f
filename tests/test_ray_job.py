"""A study submitted as a Ray job, for real: `ray start --head` on this machine (with its dashboard, which serves
the job API), then `ray job submit -- python -m runner.tune ...` as docs/cluster.md shows it. Ray sets RAY_ADDRESS
for the entrypoint, so the CLI joins that cluster. `ray job stop` sends the study SIGTERM, which stops it like
Ctrl-C with a partial summary, and `--resume` finishes it."""

from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cluster_procs import free_port, new_marker, stop_marked

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STUDY_LINE = "study  smoke: 2 variants x 2 seeds = 4 trials"


@pytest.fixture(scope="module")
def head():
    """A one-node Ray cluster with the job server; ``(dashboard URL, client env)``. Token authentication is on,
    with a token of this test's own. A job gets 30 s between `ray job stop`'s SIGTERM and its SIGKILL (Ray's
    default is 3 s; docs/cluster.md says to raise it)."""
    tmp = tempfile.mkdtemp(prefix="rjb", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    marker = new_marker()
    client = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the entrypoint's `python` is this venv's
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    client.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    env = {**client, "RAY_TMPDIR": tmp, "RAY_JOB_STOP_WAIT_TIME_S": "30", marker[0]: marker[1]}
    try:
        start = subprocess.run(
            [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
             "--num-cpus=2", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
             f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
             "--disable-usage-stats"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        _wait_for_job_agent(f"http://127.0.0.1:{dashboard}", client, Path(tmp))
        yield f"http://127.0.0.1:{dashboard}", client
    finally:
        left = stop_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"processes outlived the test: {left}"


def _wait_for_job_agent(address: str, client: dict, ray_tmp: Path, timeout_s: float = 180) -> None:
    """`ray start` returns before the node's job agent serves (on a loaded 2-core machine, for tens of seconds):
    submit a no-op job until one is accepted, as a user would retry "No available agent to submit job". The agent's
    HTTP port is a free one: on Ray's default, 52365, any other Ray on this machine (another test's, a user's) would
    leave the agent without its HTTP server, and the job API would answer "No available agent" for ever."""
    deadline = time.time() + timeout_s
    while True:
        r = _ray(client, "job", "submit", "--address", address, "--", "true", timeout=120)
        if r.returncode == 0:
            return
        assert "No available agent" in r.stdout + r.stderr and time.time() < deadline, (
            r.stdout[-2000:] + r.stderr[-2000:] + _agent_log(ray_tmp)
        )
        time.sleep(2)


def _agent_log(ray_tmp: Path) -> str:
    logs = sorted(ray_tmp.glob("**/logs/dashboard_agent*.log"))
    return "".join(f"\n--- {p}\n" + p.read_text(errors="replace")[-3000:] for p in logs)


def _ray(client: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], cwd=ROOT, env=client, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _rows(results: Path) -> list[dict]:
    return list(csv.DictReader(open(results / "summary.csv")))


def test_study_as_a_ray_job(head, tmp_path):
    """`ray job submit` streams the study's console; the job succeeds and its results land in --storage."""
    address, client = head
    t0 = time.time()
    proc = subprocess.Popen(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--",
         "python", "-m", "runner.tune", "configs/smoke.py", "--storage", str(tmp_path)],
        cwd=ROOT, env=client, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines, study_at = [], None
    for line in proc.stdout:
        lines.append(line)
        if study_at is None and line.startswith(STUDY_LINE):
            study_at = time.time() - t0
    assert proc.wait(timeout=300) == 0, "".join(lines)[-4000:]
    out = "".join(lines)
    assert study_at is not None, out[-4000:]
    assert re.search(r"Job 'raysubmit_\w+' succeeded", out), out[-2000:]
    assert f"output {tmp_path}/smoke" in out and re.search(r"^done after \d+ s", out, re.M), out[-4000:]
    rows = _rows(tmp_path / "smoke")
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        (v, s, "completed") for v in ("base", "dropout_0.2") for s in ("0", "1")
    ]  # fmt: skip
    print(f"\nray job submit to the study's first line: {study_at:.1f} s")


def test_ray_job_stop_leaves_a_partial_summary_and_resume_finishes(head, tmp_path):
    """`ray job stop` mid-study: the study stops as on Ctrl-C (summary marked partial, the resume command printed,
    all in `ray job logs`); a second job with --resume runs the rest."""
    address, client = head
    study = ["python", "-m", "runner.tune", "configs/smoke.py", "--seeds", "0-5", "--storage", str(tmp_path)]
    results = tmp_path / "smoke"
    job = f"runner-stop-{secrets.token_hex(4)}"
    submit = _ray(client, "job", "submit", "--address", address, "--no-wait", "--submission-id", job, "--", *study)
    assert submit.returncode == 0, submit.stderr[-2000:]
    deadline = time.time() + 240
    while not re.search(r"^\[\s*1/12\]", logs := _ray(client, "job", "logs", "--address", address, job).stdout, re.M):
        assert time.time() < deadline, f"no trial finished in 240 s:\n{logs[-3000:]}"
        time.sleep(0.5)

    stop = _ray(client, "job", "stop", "--address", address, job)
    assert stop.returncode == 0, stop.stdout[-2000:] + stop.stderr[-2000:]
    status = _ray(client, "job", "status", "--address", address, job)
    assert f"Job '{job}' was stopped" in status.stdout, status.stdout
    logs = _ray(client, "job", "logs", "--address", address, job).stdout
    assert "interrupted:" in logs and "(summary marked partial)" in logs, logs[-3000:]
    assert f"--resume {results}" in logs
    assert "**Partial results" in (results / "summary.md").read_text()
    statuses = [r["status"] for r in _rows(results)]
    assert len(statuses) == 12 and 0 < statuses.count("completed") < 12, statuses

    resume = _ray(client, "job", "submit", "--address", address, "--", *study, "--resume", str(results))
    assert resume.returncode == 0, resume.stdout[-4000:]
    rows = _rows(results)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"completed"}, rows
    assert "**Partial results" not in (results / "summary.md").read_text()
