"""The loop's door to Ray in a trial process: ``worker`` (what each Ray Train worker runs) and ``RaySession``.

Every Ray call the loop (runner.trial.loop) makes goes through ``RaySession``: rank, data shards, DDP collectives,
reporting to Tune (local mode) or Ray Train (worker groups), the checkpoint to resume from.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from runner import checkpoints
from runner.data.ray_data import read_all
from runner.data.split import NO_IMAGES
from runner.trial import loop


def worker(config: dict, datasets: dict | None = None) -> None:
    """Each Train worker: the loop with Ray's session."""
    spec = config["spec"]
    session = RaySession(spec.in_process, datasets, config["splits"], config.get("carry_from", ""))
    loop.train(spec, session, config["trial_dir"], config["entered"], config.get("checkpoint_at", ()))


class RaySession:
    """Every place the loop touches Ray: rank, data shards, DDP, collectives, reporting."""

    def __init__(self, local: bool, datasets: dict | None, splits: tuple[str, ...] = ("train", "val"),
                 carry_from: str = ""):  # fmt: skip
        self.local, self.datasets, self.splits, self.carry_from = local, datasets, splits, carry_from
        if local:
            self.rank, self.world = 0, 1
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            import ray.train
            import ray.train.torch

            ctx = ray.train.get_context()
            self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
            self.device = ray.train.torch.get_device()

    def restored_state(self) -> dict | None:
        """The last reported checkpoint's state when this trial is being retried, else the checkpoint a trial of
        a rebuilt phase carries on from, else None."""
        if self.local:
            import ray.tune

            ckpt = ray.tune.get_checkpoint()
        else:
            import ray.train

            ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return checkpoints.read_dir(self.carry_from) if self.carry_from else None
        with ckpt.as_directory() as d:  # the dir itself for local storage; a download, deleted on exit, for a URI
            return checkpoints.read_dir(d)

    def workers(self) -> str:
        """'NODE@ip:pid' of every rank, in rank order (NODE: the Ray node id's first 8 hex digits; two
        raylets on one host share an ip), so results say where a trial ran."""
        import ray

        me = f"{ray.get_runtime_context().get_node_id()[:8]}@{ray.util.get_node_ip_address()}:{os.getpid()}"
        if self.world == 1:
            return me
        everyone = [None] * self.world
        torch.distributed.all_gather_object(everyone, me)
        return ",".join(everyone)

    def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.splits:  # a split the study does not have (test)
            return NO_IMAGES
        if self.local:
            return read_all(self.datasets[name])
        import ray.train

        x, y = read_all(ray.train.get_dataset_shard(name))
        if name != "train" or self.world == 1:
            return x, y
        n = torch.tensor([len(y)], dtype=torch.int64)  # every rank runs as many steps: the smallest shard's
        torch.distributed.all_reduce(n, op=torch.distributed.ReduceOp.MIN)
        return x[: n.item()], y[: n.item()]

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return model
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.broadcast(t, src=0)
        return t

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        from ray.train import Checkpoint

        ckpt = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        if self.local:
            import ray.tune

            ray.tune.report(metrics, checkpoint=ckpt)
        else:
            import ray.train

            ray.train.report(metrics, checkpoint=ckpt)
