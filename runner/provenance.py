"""Where a results dir came from: resolved config, git commit, package versions, machine (study.json)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("runner", "ray", "torch", "albumentations", "tensorboard", "scikit-learn", "pyarrow", "numpy", "scipy", "matplotlib")


def git_commit() -> str | None:
    """The commit of the runner checkout this code runs from (with '-dirty' for uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def machine() -> dict:
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(), "memory_gib": mem,
            "hostname": platform.node()}


def write_study_json(path: Path, **fields) -> None:
    doc = {"command": sys.argv, "git_commit": git_commit(), "versions": versions(), "machine": machine(), **fields}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
