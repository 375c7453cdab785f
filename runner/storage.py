"""Where results live: a directory (local or shared) or a pyarrow filesystem URI (``s3://``, ``gs://``).

Ray Tune writes its own files (experiment state, params.json, result.json, checkpoints) straight to
the URI. The files runner writes itself (TensorBoard runs, confusion matrices, study tables, report)
are written to a local staging directory and uploaded: a trial uploads its own while it runs
(``TrialFiles``), the driver downloads the study's small files to summarize them and uploads the
tables (``pull`` / ``push``). With a plain directory every one of these is a no-op on the directory
itself, so the rest of runner reads and writes files with pathlib either way.

A URI keeps its query string on every path built from it (``join``), so options such as
``s3://bucket/runs?endpoint_override=host:9000&scheme=http`` (MinIO, a mock S3) reach each filesystem
Ray and runner open.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path

from runner.errors import ConfigError, first_line

PROBE_TIMEOUT_S = 30.0  # an unreachable endpoint or a missing credential must not hang the CLI


def is_uri(location: str) -> bool:
    """True for a remote filesystem URI; a plain path or ``file://`` URI is a directory."""
    return "://" in str(location) and not str(location).startswith("file://")


def local_path(location: str) -> Path:
    """A directory given as a path or ``file://`` URI, absolute."""
    s = str(location)
    return Path(os.path.expanduser(s[len("file://") :] if s.startswith("file://") else s)).resolve()


def join(location: str, *parts: str) -> str:
    """``location/parts...``; a URI's query string stays at the end."""
    s = str(location)
    if not is_uri(s):
        return str(local_path(s).joinpath(*parts))
    base, _, query = s.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + (f"?{query}" if query else "")


def name(location: str) -> str:
    """The last path component of a directory or URI."""
    return str(location).partition("?")[0].rstrip("/").rsplit("/", 1)[-1]


def parent(location: str) -> str:
    """The directory or URI that holds ``location``; a URI keeps its query string."""
    s = str(location)
    if not is_uri(s):
        return str(local_path(s).parent)
    base, _, query = s.partition("?")
    return base.rstrip("/").rsplit("/", 1)[0] + (f"?{query}" if query else "")


def tensorboard_command(location: str) -> str:
    """The shell command that opens TensorBoard on a results dir or URI. TensorBoard reads s3:// with
    boto3 installed (a custom endpoint via S3_ENDPOINT) and gs:// with gcsfs; it takes no URI query."""
    if not is_uri(location):
        return f"tensorboard --logdir {shlex.quote(str(location))}"
    base, _, query = str(location).partition("?")
    options = dict(urllib.parse.parse_qsl(query))
    env = ""
    if base.startswith("s3://") and "endpoint_override" in options:
        host = options["endpoint_override"]
        env = (
            "S3_ENDPOINT=" + shlex.quote(host if "://" in host else f"{options.get('scheme', 'https')}://{host}") + " "
        )
    return f"{env}tensorboard --logdir {shlex.quote(base)}"


def filesystem(location: str):
    """(pyarrow filesystem, path in it); a URI pyarrow does not understand is a ConfigError."""
    import pyarrow.fs

    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), str(local_path(location))
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(str(location))
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid / OSError / ValueError
        raise ConfigError(
            f"{location}: not a storage URI pyarrow can open ({first_line(e)}); "
            "use a directory, s3://BUCKET/PATH or gs://BUCKET/PATH"
        ) from None
    if not path.strip("/"):
        raise ConfigError(f"{location}: no bucket in the URI; use s3://BUCKET/PATH or gs://BUCKET/PATH")
    return fs, path.rstrip("/")


def check_writable(location: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Write and delete a probe file under ``location`` (creating it), or raise a one-line ConfigError."""
    fs, path = filesystem(location)
    probe = f"{path}/.runner-write-test-{os.getpid()}"

    def attempt():
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(probe) as f:
            f.write(b"")
        fs.delete_file(probe)

    error = _with_timeout(attempt, timeout_s)
    if error == "timeout":
        raise ConfigError(
            f"--storage {location}: no answer in {timeout_s:.0f} s; check the endpoint, network and credentials"
        )
    if error:
        raise ConfigError(f"--storage {location}: cannot write there ({error}); check the path and credentials")


def exists(location: str) -> bool:
    import pyarrow.fs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def children(location: str) -> list[str]:
    """Names directly under ``location`` ([] if it does not exist)."""
    import pyarrow.fs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return []
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path))
    return sorted(i.base_name for i in infos)


def read_text(location: str) -> str:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def write_text(location: str, text: str) -> None:
    fs, path = filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(text.encode())


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a file whole or not at all: a temp file beside it, then a rename, so a crash or a full disk
    never leaves a file cut short (the temp file is removed when the write fails)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def upload(local_dir: Path, location: str, seen: dict | None = None, recursive: bool = True) -> dict:
    """Copy the files of ``local_dir`` that changed since ``seen`` (``{relpath: (size, mtime)}``) to
    ``location``; returns the new ``seen``."""
    fs, path = filesystem(location)
    seen = dict(seen or {})
    files = sorted(Path(local_dir).rglob("*") if recursive else Path(local_dir).iterdir())
    made = set()
    for f in files:
        if not f.is_file():
            continue
        rel = f.relative_to(local_dir).as_posix()
        st = f.stat()
        if seen.get(rel) == (st.st_size, st.st_mtime_ns):
            continue
        parent = f"{path}/{rel}".rsplit("/", 1)[0]
        if parent not in made:
            fs.create_dir(parent, recursive=True)
            made.add(parent)
        with open(f, "rb") as src, fs.open_output_stream(f"{path}/{rel}") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        seen[rel] = (st.st_size, st.st_mtime_ns)
    return seen


def download(location: str, local_dir: Path, skip=lambda rel: False) -> None:
    """Copy every file under ``location`` into ``local_dir``, except those ``skip(relpath)`` names."""
    import pyarrow.fs

    fs, path = filesystem(location)
    for info in fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True, allow_not_found=True)):
        if info.type != pyarrow.fs.FileType.File:
            continue
        rel = info.path[len(path) :].lstrip("/")
        if skip(rel):
            continue
        dst = Path(local_dir) / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(dst, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)


def skip_weights(rel: str) -> bool:
    """Checkpoint weights: the summary needs each checkpoint's meta.json, not its model.pt."""
    return rel.endswith(".pt")


class Results:
    """A study's results dir as the driver sees it: ``uri`` where it lives, ``local`` where to read
    and write files (the dir itself, or a staging copy of a URI's small files)."""

    def __init__(self, location: str):
        self.remote = is_uri(location)
        self.uri = str(location) if self.remote else str(local_path(location))
        self.local = Path(tempfile.mkdtemp(prefix="runner-results-")) if self.remote else Path(self.uri)

    def __str__(self) -> str:
        return self.uri

    def join(self, *parts: str) -> str:
        return join(self.uri, *parts)

    def pull(self) -> None:
        """Bring what Ray and the trials wrote (except weights) into ``local``."""
        if self.remote:
            download(self.uri, self.local, skip_weights)

    def push(self) -> None:
        """Upload the files the driver wrote at the top of ``local``."""
        if self.remote:
            upload(self.local, self.uri, recursive=False)

    def close(self) -> None:
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)


class TrialFiles:
    """Rank 0's directory for the trial's own files: the trial dir itself, or for a URI a staging dir
    on this node whose changed files ``sync`` uploads. The loop syncs before each checkpoint, so a trial
    resumed from a checkpoint finds its TensorBoard events up to that epoch (an epoch's events are
    tens of KiB; its checkpoint, which Ray uploads anyway, is up to ~75 MiB)."""

    def __init__(self, location: str):
        self.location = str(location)
        self.remote = is_uri(self.location)
        self.dir = (
            Path(tempfile.mkdtemp(prefix=f"runner-trial-{name(self.location)[:60]}-"))
            if self.remote
            else local_path(self.location)
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self._seen: dict = {}

    def sync(self) -> None:
        if self.remote:
            self._seen = upload(self.dir, self.location, self._seen)

    def close(self) -> None:
        """Final upload, then the staging dir goes."""
        if self.remote:
            try:
                self.sync()
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)


def _with_timeout(fn, timeout_s: float) -> str | None:
    """Run ``fn`` in a daemon thread: None when it returned, its error's first line, or "timeout"."""
    out: list[str | None] = ["timeout"]

    def target():
        try:
            fn()
            out[0] = None
        except Exception as e:  # noqa: BLE001
            out[0] = first_line(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    return out[0]


# --------------------------------------------------------------------------- the study's results dir


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


# --------------------------------------------------------------------------- faults mid-study

BALLAST = ".runner-ballast"
BALLAST_BYTES = 8 << 20  # room freed when the storage fails, so Tune can still save its state (~0.1-1 MiB)


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
