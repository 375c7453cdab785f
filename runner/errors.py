"""Errors the user can fix, and the one line that names any error."""

from __future__ import annotations

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


# A results disk that fills up, turns read-only, refuses writes or is deleted: not the trial's fault, and
# it would fail again for every trial, so the study stops (like Ctrl-C) and says what to fix.
_STORAGE = re.compile(
    r"No space left on device|Read-only file system|Permission denied|Disk quota exceeded|\[Errno (28|30|13|122)\]"
)
STORAGE_EXIT = 74  # sysexits' EX_IOERR: the study stopped on a storage fault; fix it and --resume
STORAGE_FAULT = "storage_fault"  # the status a trial reports when its storage failed (the driver then stops)


class StorageFault(Exception):
    """The study stopped because its storage failed; ``line`` says where, what, and how to go on."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def storage_fault(error: BaseException | str) -> str | None:
    """The line naming a storage fault (full disk, read-only, permission denied) in ``error`` and the errors it
    wraps (Ray wraps a trial's in its own), or None when it is something else."""
    seen, e = set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = e if isinstance(e, str) else str(e)
        for line in text.splitlines():
            if _STORAGE.search(line):
                return line.strip()[:300]
        e = None if isinstance(e, str) else (e.__cause__ or e.__context__)
    return None
