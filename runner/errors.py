"""Errors the user can fix, and the one line that names any error."""

from __future__ import annotations

import os
import re

_NAMED = re.compile(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b")


class ConfigError(ValueError):
    """A problem the user can fix: the CLI prints it as one line and exits with code 2."""


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The line that names an error, at most ``limit`` characters.

    A traceback (or a Ray error wrapping a worker's traceback) ends with the line naming the real
    exception, so the last line that starts with an exception class wins; otherwise the first
    non-empty line; an empty message gives the exception's type name ("error" for empty text).
    """
    text = error if isinstance(error, str) else str(error)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [ln for ln in lines if _NAMED.match(ln)]
    if named:
        return named[-1][:limit]
    if lines:
        return lines[0][:limit]
    return "error" if isinstance(error, str) else type(error).__name__


def no_results_dir(where: str) -> ConfigError:
    """The one wording of a results dir that is not there, for every command that reads one."""
    return ConfigError(f"{where}: no such results dir; give STORAGE/NAME of a study run with python -m runner.tune")


# A results disk that fills up, turns read-only, refuses writes or is deleted: not the trial's fault, and
# it would fail again for every trial, so the study stops (like Ctrl-C) and says what to fix.
_STORAGE = re.compile(
    r"No space left on device|Read-only file system|Permission denied|Disk quota exceeded|\[Errno (28|30|13|122)\]"
)
STORAGE_EXIT = 74  # sysexits' EX_IOERR: the study stopped on a storage fault; fix it and --resume


class StorageFault(Exception):
    """The study stopped because its storage failed; ``line`` says where, what, and how to go on."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def storage_fault(error: BaseException | str, results_dir: str | None = None) -> str | None:
    """The line naming a storage fault (full disk, read-only, permission denied) in ``error`` and the errors it
    wraps (Ray wraps a trial's in its own), or None when it is something else. With ``results_dir`` (a local dir)
    a missing file or dir counts too when that dir is gone: it was deleted (or moved) while the study ran."""
    seen, e, missing = set(), error, None
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = e if isinstance(e, str) else str(e)
        for line in text.splitlines():
            if _STORAGE.search(line):
                return line.strip()[:300]
            if missing is None and _MISSING.search(line):
                missing = line.strip()
        e = None if isinstance(e, str) else (e.__cause__ or e.__context__)
    if missing is not None and results_dir and "://" not in results_dir and not os.path.isdir(results_dir):
        return gone_line(results_dir)
    return None


_MISSING = re.compile(r"No such file or directory|\[Errno 2\]")
GONE = "the results dir is gone"  # the start of the line that says so


def gone_line(results_dir: str) -> str:
    return f"{GONE} ({results_dir}: deleted or moved while the study ran)"


def storage_fix(line: str) -> str:
    """What to do about the storage fault ``line`` names, before resuming."""
    if line.startswith(GONE):
        return "put the dir back (from a backup)"
    if re.search(r"No space left|Disk quota|\[Errno (28|122)\]", line):
        return "free space"
    return "make it writable again"
