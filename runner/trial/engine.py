"""One epoch of training, one pass of evaluation, early stopping: plain torch, no Ray.

Sums stay on the device during an epoch (no per-step ``.item()`` sync); the caller reads them once,
after an all-reduce when there are several workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from runner.config import OPTIMIZERS, AugmentConfig, OptimConfig, lookup
from runner.data.augment import normalize
from runner.study import resources

EVAL_BATCH = 256  # images per forward pass when evaluating; memory only, results do not depend on it


# config.OPTIMIZERS name -> builder from the optim section and the kernel choice (``kernel(params)``):
# fused (one kernel over every tensor) where torch has one for the device, else foreach (docs/performance.md).
BUILDERS = {
    "adam": lambda cfg, params, k: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **k),
    "adamw": lambda cfg, params, k: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **k),
    "sgd": lambda cfg, params, k: torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **k
    ),
}
assert tuple(BUILDERS) == OPTIMIZERS, "runner.config.OPTIMIZERS names what this registry builds"
FUSED_DEVICES = ("cpu", "cuda")  # devices torch 2.13's fused Adam / AdamW / SGD kernels run on


def build_optimizer(cfg: OptimConfig, params, fused: bool = True) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names; ``fused=False`` gives torch's default (per-tensor) kernel, for comparison."""
    builder = lookup(BUILDERS, cfg.name, "optim.name")
    params = list(params)
    return builder(cfg, params, kernel(params) if fused else {})


def kernel(params: list) -> dict:
    """{"fused": True} when every parameter sits on a device with a fused kernel, else {"foreach": True}."""
    devices = {p.device.type for p in params}
    return {"fused": True} if devices and devices <= set(FUSED_DEVICES) else {"foreach": True}


def autocast_on(amp: bool, device: torch.device) -> bool:
    """``train.amp`` in effect on ``device``: bf16 autocast on CUDA, and on a CPU with native bf16."""
    return amp and (device.type == "cuda" or (device.type == "cpu" and resources.cpu_bf16()))


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    augment,
    norm: AugmentConfig,
    rng: np.random.Generator,
    device: torch.device,
    amp: bool = False,
    stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Train on (x uint8, y) in shuffled batches; returns [loss sum, correct, images] as a float64 tensor.
    ``stop``: asked before every batch; once true, the epoch ends there (the caller then stops the trial).

    ``amp``: bf16 autocast for the forward pass (no loss scaling needed for bf16) on CUDA and on a CPU with
    native bf16 (``cpu_bf16``); fp32 elsewhere.
    """
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_on(amp, device))
    perm = rng.permutation(len(y))
    if len(perm) % batch_size == 1 and len(perm) > 1:
        perm = perm[:-1]  # a last batch of one image breaks BatchNorm; drop it (reshuffled every epoch)
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for i in range(0, len(perm), batch_size):
        if stop is not None and stop():
            break
        idx = np.sort(perm[i : i + batch_size])  # sorted gather is faster; order within a batch does not matter
        xb = normalize(torch.from_numpy(augment(x[idx])).to(device, non_blocking=True), norm)
        yb = torch.from_numpy(y[idx]).to(device, non_blocking=True)
        with autocast:
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums += torch.stack(
            [
                loss.detach().double() * len(idx),
                (logits.argmax(1) == yb).sum().double(),
                torch.tensor(float(len(idx)), dtype=torch.float64, device=device),
            ]
        )
    return sums


@torch.no_grad()
def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, norm: AugmentConfig, device: torch.device
) -> tuple[torch.Tensor, np.ndarray]:
    """Returns ([loss sum, correct, images] float64 tensor, predicted labels)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    preds = []
    for i in range(0, len(y), EVAL_BATCH):
        xb = normalize(torch.from_numpy(x[i : i + EVAL_BATCH]).to(device), norm)
        yb = torch.from_numpy(y[i : i + EVAL_BATCH]).to(device)
        logits = model(xb)
        pred = logits.argmax(1)
        sums += torch.stack(
            [
                F.cross_entropy(logits, yb, reduction="sum").double(),
                (pred == yb).sum().double(),
                torch.tensor(float(len(yb)), dtype=torch.float64, device=device),
            ]
        )
        preds.append(pred.cpu().numpy())
    return sums, np.concatenate(preds) if preds else np.zeros(0, np.int64)


@dataclass
class EarlyStopping:
    """Tracks the best val accuracy; ``should_stop`` after ``patience`` epochs without a new best (0 = never)."""

    patience: int
    best: float = -1.0
    best_epoch: int = 0
    epochs_since_best: int = 0

    def update(self, accuracy: float, epoch: int) -> bool:
        """Record an epoch's val accuracy (epochs count from 1); True when it is a new best."""
        if accuracy > self.best:
            self.best, self.best_epoch, self.epochs_since_best = accuracy, epoch, 0
            return True
        self.epochs_since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.epochs_since_best >= self.patience
