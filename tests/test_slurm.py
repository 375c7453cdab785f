"""cluster/slurm.sbatch on a real Slurm: Debian's slurmctld, one slurmd per node and munged, all on this machine and
configured in a tmp dir. Nodes n1 and n2 are two slurmd on this host (`slurmd -N n1`, `slurmd -N n2`); n3 has the
address 127.0.0.2, so to Ray it is a second machine. A job on n1+n2 runs the study on a two-node Ray cluster; one on
n1+n3 spans two machines, where a node-local --storage is refused.

The daemons need root and Slurm's binaries (.ci/run installs `slurm-wlm munge`); without them those tests are
skipped. The script's own refusals need neither."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cluster_procs import free_port, marked, new_marker, stop_marked
from conftest import WATCHED

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "cluster/slurm.sbatch"
PYTHON = sys.executable
STUDY = ("configs/smoke.py", "--seeds", "0-5")  # 2 variants x 6 seeds = 12 trials
TRIALS = 12
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


# --- The script's refusals: one line each, exit 2, before anything starts (no Slurm needed). ---


def _script(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`bash cluster/slurm.sbatch ARGS` with ``env`` and none of the caller's SLURM_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    "args, env, line",
    [
        (
            ["configs/smoke.py"],
            {},
            "error: cluster/slurm.sbatch: not inside a Slurm allocation (SLURM_JOB_ID unset); "
            "submit it with sbatch --nodes=N cluster/slurm.sbatch STUDY",
        ),
        (
            ["configs/smoke.py"],
            {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "0"},
            "error: cluster/slurm.sbatch: the allocation has no nodes (SLURM_JOB_NUM_NODES=0); submit it with sbatch --nodes=N",
        ),
        (
            ["configs/smoke.py"],
            {"SLURM_JOB_ID": "7", "SLURM_NNODES": "0"},
            "error: cluster/slurm.sbatch: the allocation has no nodes (SLURM_NNODES=0); submit it with sbatch --nodes=N",
        ),
        (
            [],
            {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2"},
            "error: cluster/slurm.sbatch: no study file given; submit it with sbatch --nodes=N cluster/slurm.sbatch STUDY",
        ),
        (
            ["configs/nope.py"],
            {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2"},
            "error: cluster/slurm.sbatch: configs/nope.py: no such study file in",
        ),
        (
            ["configs/smoke.py"],
            {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "RUNNER_STORAGE": "/nonexistent/runs"},
            "error: cluster/slurm.sbatch: RUNNER_STORAGE=/nonexistent/runs: no such directory; create it on a filesystem "
            "every node mounts",
        ),
        (
            ["configs/smoke.py"],
            {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "PYTHON": "no-such-python"},
            "error: cluster/slurm.sbatch: PYTHON=no-such-python: not found on",
        ),
    ],
    ids=[
        "outside-allocation",
        "zero-nodes",
        "zero-nnodes",
        "no-study",
        "missing-study",
        "missing-storage",
        "no-python",
    ],
)
def test_bad_input_is_one_line(args, env, line):
    proc = _script(*args, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith(line) and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


# --- A real Slurm on this machine. ---


class Slurm:
    """Slurm's daemons in ``tmp``, started with ``marker`` in their environment (every job they run inherits it)."""

    def __init__(self, tmp: Path, marker: tuple[str, str]):
        self.tmp, self.marker = tmp, marker
        self.conf = tmp / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SBIN, marker[0]: marker[1]}

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        assert not check or proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
        return proc

    def start(self) -> None:
        self._munged()
        self.conf.write_text(self._conf())
        self.run("slurmctld", "-f", str(self.conf))
        for node in ("n1", "n2", "n3"):
            self.run("slurmd", "-f", str(self.conf), "-N", node)
        deadline = time.time() + 60
        while (states := self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout.split()) != [
            "n1", "idle", "n2", "idle", "n3", "idle"
        ]:  # fmt: skip
            assert time.time() < deadline, f"nodes not idle after 60 s: {states}; logs in {self.tmp}"
            time.sleep(0.5)

    def _munged(self) -> None:
        """munged with a key of its own, on a socket of its own (a system munged, if any, is left alone)."""
        keys, sock = self.tmp / "munge-key", self.tmp / "munge"
        keys.mkdir(mode=0o700)
        sock.mkdir(mode=0o755)
        key = keys / "munge.key"
        if shutil.which("mungekey", path=SBIN):
            self.run("mungekey", "--create", f"--keyfile={key}")
        else:  # munge before 0.5.14 has no mungekey
            key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.run("munged", "--force", f"--socket={sock}/munge.socket", f"--key-file={key}",
                 f"--pid-file={sock}/munged.pid", f"--seed-file={keys}/seed", f"--log-file={self.tmp}/munged.log")  # fmt: skip

    def _conf(self) -> str:
        t = self.tmp
        for d in ("state", "spool"):
            (t / d).mkdir()
        nodes = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr={addr} Port={free_port()} CPUs=1 State=UNKNOWN"
            for n, addr in (("n1", "127.0.0.1"), ("n2", "127.0.0.1"), ("n3", "127.0.0.2"))
        )
        return f"""\
ClusterName=runnertest
SlurmctldHost={os.uname().nodename}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={t}/munge/munge.socket
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool/%n
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd.%n.pid
SlurmctldLogFile={t}/slurmctld.log
SlurmdLogFile={t}/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
FirstJobId={int(time.time()) % 100000 * 10}
# After SIGTERM, a job's processes get SIGKILL 5 s later (Slurm's default is 30 s)
KillWait=5
{nodes}
PartitionName=all Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP
"""

    def submit(self, nodes: str, *args: str, **env: str) -> str:
        """``sbatch --nodes=2 -w NODES cluster/slurm.sbatch ARGS``; the job's id. Its output goes to TMP/job-ID.out."""
        proc = subprocess.run(
            ["sbatch", "--parsable", "--nodes=2", f"--nodelist={nodes}", f"--output={self.tmp}/job-%j.out", SCRIPT,
             *args],
            env={**self.env, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split(";")[0]

    def job_env(self, storage: Path, head_args: str = "") -> dict[str, str]:
        """The script's settings for a job: results in ``storage``, this venv's python, ports nobody uses, and Ray's
        temp dir and runner's temp files in this Slurm's tmp dir (removed with it)."""
        head_args = head_args or f"--include-dashboard=false --ray-client-server-port={free_port()}"
        return {"RUNNER_STORAGE": str(storage), "PYTHON": PYTHON, "RAY_TMPDIR": str(self.tmp / "ray"),
                "TMPDIR": str(self.tmp), "RAY_PORT": str(free_port()), "RAY_HEAD_ARGS": head_args,
                **WATCHED}  # fmt: skip

    def output(self, job: str) -> str:
        path = self.tmp / f"job-{job}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def job(self, job: str) -> dict[str, str]:
        """The job's fields from `scontrol show job` (it keeps an ended job for MinJobAge, 300 s)."""
        out = self.run("scontrol", "show", "job", "-o", job, check=False).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def wait(self, job: str, until=None, timeout: float = 240) -> dict[str, str]:
        """Poll until the job has ended, or ``until(output)`` holds while it runs; the job's fields then."""
        deadline = time.time() + timeout
        while True:
            fields = self.job(job)
            if fields.get("JobState") in ENDED or (until is not None and until(self.output(job))):
                return fields
            assert time.time() < deadline, (
                f"job {job} still {fields.get('JobState')} after {timeout} s:\n" + self.output(job)[-3000:]
            )
            time.sleep(0.5)

    def ray_left(self, grace: float = 15) -> dict[int, str]:
        """The Ray processes of this Slurm's jobs still alive ``grace`` seconds after the job ended (the script must
        leave none behind; Ray's own processes take a moment to exit after their node's `ray start` has)."""
        deadline = time.time() + grace
        while True:
            left = {
                pid: cmd for pid, cmd in marked(self.marker).items() if re.search(r"\bray\b|raylet|gcs_server", cmd)
            }
            if not left or time.time() > deadline:
                return left
            time.sleep(0.5)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "Slurm's daemons run as root here: run the tests as root"
    for binary in ("slurmctld", "slurmd", "munged", "sbatch"):
        if not shutil.which(binary, path=SBIN):
            return f"no {binary}: install Debian's slurm-wlm and munge (.ci/run does)"
    return None


@pytest.fixture(scope="module")
def slurm():
    if reason := _missing():
        pytest.skip(reason)
    tmp = Path(tempfile.mkdtemp(prefix="rsl", dir="/tmp"))  # short: Ray's socket paths must stay under 108 bytes
    cluster = Slurm(tmp, new_marker())
    try:
        cluster.start()
        yield cluster
    finally:
        left = stop_marked(cluster.marker)  # the daemons, and whatever a job left
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"processes outlived the test: {left}"


def _trials_done(output: str) -> int:
    """How many `[ k/N] ...` lines (a trial ended) the study printed; N counts only the trials a resume runs."""
    return len(re.findall(r"^\[\s*\d+/\d+\]", output, re.M))


def _rows(results: Path) -> list[dict]:
    return list(csv.DictReader(open(results / "summary.csv")))


def test_study_on_two_nodes_stops_and_resumes(slurm, tmp_path):
    """On n1+n2: SIGTERM to the batch script (as `--signal=B:TERM@...` before a time limit sends it) stops the study
    with a partial summary; a plain scancel ends everything at once; `--resume` then finishes all 12 trials. Ray is
    stopped on both nodes after each."""
    storage = tmp_path / "runs"
    storage.mkdir()
    # the head with its dashboard, as users have it
    env = slurm.job_env(storage, f"--dashboard-port={free_port()} --ray-client-server-port={free_port()}")
    results = storage / "smoke"

    # 1. Stopped gracefully: the script passes SIGTERM on to the study, which writes its partial summary.
    t0 = time.time()
    job = slurm.submit("n1,n2", *STUDY, **env)
    slurm.wait(job, until=lambda out: "ray    2 node(s) joined" in out)
    ray_up = time.time() - t0
    slurm.wait(job, until=lambda out: bool(list(results.glob("*/params.json"))))
    first_trial = time.time() - t0
    slurm.wait(job, until=lambda out: _trials_done(out) >= 1)
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    ended = slurm.wait(job)
    out = slurm.output(job)
    assert ended["JobState"] == "FAILED" and ended["ExitCode"] == "130:0", out[-3000:]
    assert "study  smoke: 2 variants x 6 seeds = 12 trials, 2 at a time on 2 CPUs (2 nodes)" in out
    assert "interrupted:" in out and "(summary marked partial)" in out, out[-3000:]
    assert "**Partial results" in (results / "summary.md").read_text()
    statuses = [r["status"] for r in _rows(results)]
    assert len(statuses) == TRIALS and 0 < statuses.count("completed") < TRIALS, statuses
    assert "ray    stopped on 2 node(s)" in out
    assert not (left := slurm.ray_left()), left
    print(f"\nsbatch to Ray up on both nodes: {ray_up:.1f} s, to the study's first trial: {first_trial:.1f} s")

    # 2. A plain scancel mid-study: Slurm signals every process of the job, on every node, at once.
    job = slurm.submit("n1,n2", *STUDY, "--resume", str(results), **env)
    slurm.wait(job, until=lambda out: _trials_done(out) >= 1)
    slurm.run("scancel", job)
    ended = slurm.wait(job)
    assert ended["JobState"] == "CANCELLED", slurm.output(job)[-3000:]
    assert not (left := slurm.ray_left()), left

    # 3. --resume finishes the study: 12 trials, each with its TensorBoard run, and the summary.
    job = slurm.submit("n1,n2", *STUDY, "--resume", str(results), **env)
    ended = slurm.wait(job)
    out = slurm.output(job)
    assert ended["JobState"] == "COMPLETED" and ended["ExitCode"] == "0:0", out[-3000:]
    rows = _rows(results)
    assert len(rows) == TRIALS and {r["status"] for r in rows} == {"completed"}, rows
    assert sorted((r["variant"], int(r["seed"])) for r in rows) == [
        (v, s) for v in ("base", "dropout_0.2") for s in range(6)
    ]  # fmt: skip
    for r in rows:
        assert list((results / r["trial_dir"]).glob("events.out.tfevents.*")), f"no TensorBoard run in {r['trial_dir']}"
    assert "**Partial results" not in (results / "summary.md").read_text()
    assert "ray    stopped on 2 node(s)" in out
    assert not (left := slurm.ray_left()), left


def test_node_local_storage_refused_across_two_machines(slurm, tmp_path):
    """On n1+n3 the Ray cluster spans two machines (127.0.0.1 and 127.0.0.2): a --storage dir on this machine's own
    disk is refused by runner in one line (exit 2) before any trial starts; the script does not get around it."""
    storage = tmp_path / "runs"
    storage.mkdir()
    env = slurm.job_env(storage)
    job = slurm.submit("n1,n3", *STUDY, **env)
    ended = slurm.wait(job)
    out = slurm.output(job)
    assert ended["JobState"] == "FAILED" and ended["ExitCode"] == "2:0", out[-3000:]
    assert "ray    2 node(s) joined" in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: --storage {storage}: a node-local "), out[-3000:]
    assert "the cluster spans 2 machines" in errors[0] and "pass a path every node mounts" in errors[0]
    assert not list(storage.glob("*/*/params.json"))  # no trial started
    assert "ray    stopped on 2 node(s)" in out
    assert not (left := slurm.ray_left()), left


def test_ray_that_does_not_start_ends_the_job_in_one_line(slurm, tmp_path):
    """A `ray start` that fails (here an option the head does not know) ends the job at once with one line, exit 1,
    instead of waiting RAY_NODES_TIMEOUT for nodes that never join; the other node's Ray is stopped."""
    env = slurm.job_env(tmp_path, "--no-such-option")
    job = slurm.submit("n1,n2", *STUDY, **env)
    ended = slurm.wait(job, timeout=120)
    out = slurm.output(job)
    assert ended["JobState"] == "FAILED" and ended["ExitCode"] == "1:0", out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error: cluster/slurm.sbatch:")]
    assert errors == [
        f"error: cluster/slurm.sbatch: `ray start` failed while waiting for the Ray head at 127.0.0.1:{env['RAY_PORT']}; "
        "see the errors of `ray start` above"
    ], out[-3000:]  # fmt: skip
    assert re.search(r"No such option:? '?--no-such-option", out), out  # click's words, in the job's output
    assert not list(tmp_path.iterdir())  # the study never started
    assert not (left := slurm.ray_left()), left
