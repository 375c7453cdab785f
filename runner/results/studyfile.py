"""study.json, the one reader and writer: what a study planned and where its results came from.

It holds the study's name, its variants in order with their overrides, the reference, the seeds,
every planned trial (``TrialSpec.to_param``), the data each dataset key holds, the cluster, and
provenance: the command, the git commit, package versions and the machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

NAME = "study.json"

PACKAGES = (
    "runner",
    "ray",
    "torch",
    "albumentations",
    "tensorboard",
    "scikit-learn",
    "pyarrow",
    "numpy",
    "scipy",
    "matplotlib",
)


def git_commit() -> str | None:
    """The commit of the runner checkout this code runs from (with '-dirty' for uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
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
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "memory_gib": mem,
        "hostname": platform.node(),
    }


@dataclass(frozen=True)
class StudyFile:
    """What study.json says; ``doc`` is the whole document (the report shows its provenance)."""

    name: str
    variants: tuple[str, ...]  # in the study's order
    reference: str | None
    trials: tuple[dict, ...]  # TrialSpec params, as planned now
    metric: str = "best_val_accuracy"  # what ranks variants (runner.config.METRICS)
    doc: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = ()  # the study's own seeds (sequential seeds come after them)
    max_seeds: int | None = None  # sequential seeds: up to this many
    phases: tuple[tuple[dict, ...], ...] = ()  # the trials of each Tune run into the dir, oldest first
    search: dict | None = None  # Study.search as written: space (key -> distribution), samples, algorithm, seed

    @property
    def samples(self) -> list[str]:
        """The search's samples (variants s000, ...), in sample order; [] without a search."""
        return [v for batch in (self.search or {}).get("batches", []) for v in batch]

    @property
    def confirmed(self) -> list[str]:
        """The samples the search confirmed (Search(confirm=k)): run every epoch over every seed."""
        return list((self.search or {}).get("confirmed", []))

    def compared(self) -> list[str] | None:
        """The variants that get verdicts against the reference: with Search(confirm=k), the fixed variants and the
        confirmed samples (the others are a ranking); None otherwise (every variant, as before confirm)."""
        if not (self.search or {}).get("confirm"):
            return None
        samples, confirmed = set(self.samples), set(self.confirmed)
        return [v for v in self.variants if v not in samples or v in confirmed]

    def values(self, variant: str, seed: int) -> dict:
        """The planned trial's config as dotted key -> value ({} when it is not planned)."""
        from runner.config import flatten

        for p in self.trials:
            if p.get("variant") == variant and p.get("seed") == seed:
                return flatten(p.get("trial", {}))
        return {}


def write(results_dir: Path, **fields) -> None:
    """Write study.json (atomically) with ``fields`` and this process's provenance."""
    doc = {"command": sys.argv, "git_commit": git_commit(), "versions": versions(), "machine": machine(), **fields}
    _write(Path(results_dir), doc)


def update(results_dir: Path, **fields) -> None:
    """Change ``fields`` of study.json (atomically), keeping the rest; each change is logged under "updates"."""
    found = read(results_dir)
    doc = dict(found.doc) if found else {}
    updates = [*doc.get("updates", []), {"command": sys.argv, "git_commit": git_commit(), "fields": sorted(fields)}]
    _write(Path(results_dir), {**doc, **fields, "updates": updates})


def _write(results_dir: Path, doc: dict) -> None:
    from runner.storage import write_atomic

    write_atomic(Path(results_dir) / NAME, json.dumps(doc, indent=2, default=str))


def read(results_dir: Path) -> StudyFile | None:
    """The results dir's study.json, or None when it is missing or unreadable."""
    try:
        doc = json.loads((Path(results_dir) / NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    return StudyFile(
        doc.get("study") or Path(results_dir).name,
        tuple(doc.get("variants") or ()),
        doc.get("reference"),
        tuple(doc.get("trials") or ()),
        doc.get("metric") or "best_val_accuracy",
        doc,
        tuple(doc.get("seeds") or ()),
        doc.get("max_seeds"),
        tuple(tuple(p) for p in doc.get("phases") or [doc.get("trials") or []]),
        doc.get("search"),
    )
