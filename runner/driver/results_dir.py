"""A study's results dir on the driver: made new or found to resume, locked while a study writes it, watched for
faults (the ballast that leaves Tune room to save its state on a full disk, the dir's identity that tells when it
vanished)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from runner.errors import ConfigError
from runner.results import files
from runner.storage import check_writable, children, filesystem, is_uri, join, local_path


def check_storage(location: str, create: bool = True) -> str:
    """The storage dir or URI, checked writable; ``create=False`` (a dry run) checks without creating
    anything or contacting a remote store (it only checks that pyarrow understands the URI)."""
    if is_uri(location):
        filesystem(location)
        if create:
            check_writable(location)
        return location
    path = local_path(location)
    if not create:
        existing = next(p for p in [path, *path.parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            why = "Not a directory" if not existing.is_dir() else "Permission denied"
            raise ConfigError(
                f"--storage {location}: cannot write there ({why}); pass --storage with a writable directory"
            )
        return str(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".runner-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"--storage {location}: cannot write there ({e.strerror}); pass --storage with a writable directory"
        ) from None
    return str(path)


def new_results_dir(location: str, name: str, explicit: bool) -> str:
    """STORAGE/NAME; a study run again without --name gets NAME-2, NAME-3, ... so no result is overwritten.
    A local dir is claimed by creating it (atomic): two studies started at once never share one (an explicit
    --name may be an empty dir that is there; storage.Lock then keeps a second writer out)."""
    taken = set(children(location))
    d = join(location, name)
    if explicit:
        if name in taken and children(d):
            raise ConfigError(f"--name {name}: {d} already holds results; pick another --name or remove that directory")
        return d
    for n in [name] + [f"{name}-{i}" for i in range(2, len(taken) + 1000)]:
        d = join(location, n)
        if n not in taken and (is_uri(location) or _claim(Path(d))):
            return d
    raise ConfigError(f"--storage {location}: no free name for {name}-N; remove old results")


def _claim(d: Path) -> bool:
    """Create ``d``; False when another process created it first."""
    try:
        d.mkdir()
        return True
    except FileExistsError:
        return False


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a killed process its parent has not reaped yet, a zombie, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class Lock:
    """One writer per results dir: a lock file naming this process, refused while a live process holds it
    (a dir on this machine; a URI cannot be locked this way and is not)."""

    NAME = ".runner.lock"

    def __init__(self, location: str):
        self.path = None if is_uri(location) else local_path(location) / self.NAME

    def __enter__(self) -> Lock:
        if self.path is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                return self
            except FileExistsError:
                holder = self._holder()
                if holder and holder != os.getpid():
                    raise ConfigError(f"{self.path.parent}: another runner (pid {holder}) is writing there; wait for it "
                                      "to finish, or give this study another --name") from None  # fmt: skip
                self.path.unlink(missing_ok=True)  # left by a process that is gone
        raise ConfigError(f"{self.path.parent}: cannot take its lock file {self.NAME}")

    def _holder(self) -> int | None:
        try:
            pid = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid and _alive(pid) else None

    def __exit__(self, *exc) -> None:
        if self.path is not None and self._holder() == os.getpid():
            try:
                self.path.unlink(missing_ok=True)
            except OSError:  # a dir turned read-only: the next runner takes over the lock of a process that is gone
                pass


def resume_dir(location: str, name: str, given: str) -> str:
    """The results dir to resume: the one given, else the study's latest (NAME, NAME-2, ...)."""
    if given:
        d = given if is_uri(given) else str(local_path(given))
    else:

        def number(n: str) -> int:
            tail = n[len(name) + 1 :]
            return int(tail) if tail.isdigit() else 0

        taken = [n for n in children(location) if n == name or (n.startswith(f"{name}-") and number(n))]
        if not taken:
            raise ConfigError(f"--resume: no results of study {name!r} under {location}; start it without --resume")
        d = join(location, max(taken, key=number))  # NAME itself counts as 0
    if not is_uri(d) and not Path(d).is_dir():
        raise ConfigError(f"--resume {d}: no such directory (deleted or moved?); put it back (from a backup) to finish "
                          "the study, or start it again without --resume")  # fmt: skip
    if not any(n.startswith("experiment_state-") and n.endswith(".json") for n in children(d)):
        raise ConfigError(
            f"--resume {d}: not a study results dir (no experiment_state-*.json); give the dir the study printed as 'output'"
        )
    return d


BALLAST = ".runner-ballast"
BALLAST_BYTES = 8 << 20  # room freed when the storage fails, so Tune can still save its state (several times its size)


def reserve_ballast(location: str, size: int = BALLAST_BYTES) -> None:
    """Hold ``size`` bytes of a local results dir in a file, written out (not sparse), to be freed by
    ``release_ballast`` when the disk fills up; nothing when there is no room for it (or for a URI)."""
    if is_uri(location):
        return
    path = local_path(location) / BALLAST
    try:
        with open(path, "wb") as f:
            for _ in range(size >> 20):
                f.write(bytes(1 << 20))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        path.unlink(missing_ok=True)


def release_ballast(location: str) -> None:
    if not is_uri(location):
        try:
            (local_path(location) / BALLAST).unlink(missing_ok=True)
        except OSError:  # a read-only or vanished dir: nothing to free
            pass


def identity(location: str) -> tuple[int, int] | None:
    """(device, inode) of a local dir; None when it is not there (or for a URI, which has none)."""
    if is_uri(location):
        return None
    try:
        st = os.stat(local_path(location))
    except OSError:
        return None
    return st.st_dev, st.st_ino


def remove_remake(results: str) -> None:
    """After the results dir vanished mid-study, Ray's syncs make a new one (its state, trial dirs, whatever a last
    sync carried); remove it when it is not a study's (no study.json or audit.json: the study wrote those first), so
    the path says what happened: the dir is gone. A dir moved back or restored has them and is left alone."""

    path = local_path(results)
    quiet = 0
    for _ in range(20):  # Tune's last sync of the trial dirs runs on a thread of its own: until it stays gone
        now = identity(results)  # the same (device, inode) can be a new dir: the inode number is reused
        if now is not None and any((path / n).exists() for n in (files.STUDY, files.AUDIT)):
            return  # the dir came back (moved back, restored), or a study's dir is there again
        if now is None:
            quiet += 1
            if quiet >= 3:
                return
        else:
            quiet = 0
            shutil.rmtree(path, ignore_errors=True)
        time.sleep(0.2)
