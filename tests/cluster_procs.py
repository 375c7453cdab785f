"""Processes that a cluster test started (a Ray head, Slurm's daemons and jobs), found by a marker in their
environment and stopped one by one: `ray stop`, `pkill -f` or killall would also stop another test's or a
user's processes on this machine."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_marker() -> tuple[str, str]:
    """A NAME, VALUE pair to put in the environment of every process a test starts."""
    return "RUNNER_TEST_PROCS", uuid.uuid4().hex


def marked(marker: tuple[str, str]) -> dict[int, str]:
    """{pid: command line} of every live process whose environment holds ``marker``, and of every process under
    one (a daemon's children do not always inherit its environment). Zombies are left out: they hold nothing."""
    needle = f"{marker[0]}={marker[1]}".encode()
    parents: dict[int, int] = {}
    found: dict[int, str] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            pid = int(proc.name)
            parents[pid] = int(stat[1])
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found[pid] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    while more := {pid for pid, parent in parents.items() if parent in found and pid not in found}:
        for pid in more:
            try:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                found[pid] = ""
    found.pop(os.getpid(), None)
    return found


def stop_marked(marker: tuple[str, str], grace: float = 5.0) -> dict[int, str]:
    """SIGTERM every marked process, then SIGKILL what is left after ``grace`` seconds; returns what is still alive
    after that (nothing, unless a process is stuck in the kernel)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for pid in marked(marker):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + wait
        while marked(marker) and time.time() < deadline:
            time.sleep(0.2)
    return marked(marker)
