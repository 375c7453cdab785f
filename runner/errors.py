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
