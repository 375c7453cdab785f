"""Checked by mypy in `make test` (tests/mypy.ini), never run: the type checker holds both Session implementations,
Ray's and the in-memory one, to the loop's protocol, and rejects one without the collectives."""

import numpy as np
from fakes import MemorySession

from runner.trial.loop import Session
from runner.trial.session import RaySession


def use(s: Session) -> None: ...


def check(memory: MemorySession, ray: RaySession) -> None:
    use(memory)
    use(ray)


class NoCollectives:
    rank: int = 0
    world: int = 1

    def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


# rejected: were it accepted, mypy would call this ignore unused (warn_unused_ignores) and fail
use(NoCollectives())  # type: ignore[arg-type]
