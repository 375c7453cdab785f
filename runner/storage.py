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
    resumed from a checkpoint finds its TensorBoard events up to that epoch (an epoch's events are small
    beside its checkpoint, which Ray uploads anyway)."""

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
