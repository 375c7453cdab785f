"""A trial in the test's own process, behind the loop's Session protocol (runner.trial.loop.Session)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from runner import checkpoints
from runner.data.split import NO_IMAGES


class MemorySession:  # implements runner.trial.loop.Session
    """One worker in this process: the data given, reports kept in ``reports``, each checkpoint copied to
    ``keep/checkpoint_EPOCH`` (as Ray copies it into the trial dir), resumed from ``resume_from``."""

    rank, world, device = 0, 1, torch.device("cpu")

    def __init__(self, data: dict, keep: Path, resume_from: str | None = None):
        Path(keep).mkdir(parents=True, exist_ok=True)
        self.data, self.keep, self.resume_from = data, Path(keep), resume_from
        self.reports: list[dict] = []
        self.checkpoints: list[str] = []

    def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.data.get(name, NO_IMAGES)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.reports.append(metrics)
        if checkpoint_dir:
            kept = self.keep / f"checkpoint_{metrics['epoch']}"
            shutil.copytree(checkpoint_dir, kept)
            self.checkpoints.append(str(kept))

    def restored_state(self) -> dict | None:
        return checkpoints.read_dir(self.resume_from) if self.resume_from else None

    def workers(self) -> str:
        return f"local:{os.getpid()}"
