"""Dotted keys (``optim.lr``): flattening, the known keys, ``--set`` parsing, overrides, what is learned.

Standard library only. Every trial of a study is ``study.base`` with its variant's dotted overrides (and the
CLI's ``--set`` ones) applied by ``apply_overrides``, which coerces each value to its field's type.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import typing
from collections.abc import Mapping
from typing import Any

from runner.errors import ConfigError

# Settings that do not change what a trial learns: left out of TensorBoard's hparams and of --resume's check that
# a variant is unchanged (a resumed study may checkpoint more or less often, or run on other resources).
NOT_LEARNED = (
    "train.seed",  # a study axis: TensorBoard averages a variant's seeds instead of listing them apart
    "train.checkpoint_every",  # when a trial saves (resume is exact), not what it learns
    "resources.",  # where a trial runs, not what it learns
)


def is_learned(key: str) -> bool:
    """Whether the dotted config ``key`` changes what a trial learns (NOT_LEARNED)."""
    return not any(key == n or (n.endswith(".") and key.startswith(n)) for n in NOT_LEARNED)


def unknown_key(key: str, keys: Mapping[str, Any]) -> str:
    """The problem line for an unknown dotted ``key``, suggesting the closest of ``keys`` (or the sections)."""
    leaf = key.rsplit(".", 1)[-1]
    close = [k for k in keys if k.endswith("." + leaf)][:1]  # a right name in the wrong section, e.g. "train.lr"
    if not close:
        close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    sections = dict.fromkeys(k.split(".")[0] for k in keys)
    hint = f"did you mean '{close[0]}'?" if close else f"known sections: {', '.join(sections)}"
    return f"unknown key '{key}' ({hint})"


def parse_value(text: str) -> Any:
    """A --set value: a Python/JSON literal when it parses as one, else the plain string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_set(items: list[str]) -> dict[str, Any]:
    """['model.dropout=0.1', ...] -> {'model.dropout': 0.1}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.dropout=0.1")
        out[key.strip()] = parse_value(value)
    return out


def coerce(value: Any, tp: Any) -> Any:
    """Coerce ``value`` to the annotated type ``tp`` or raise ValueError saying what was expected."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if tp is int:
        if not _is_number(value) or value != int(value):
            raise ValueError("expected a whole number")
        return int(value)
    if tp is float:
        if not _is_number(value):
            raise ValueError("expected a finite number")
        return float(value)
    if tp is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if typing.get_origin(tp) is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError("expected a list, e.g. [512, 128]")
        return tuple(coerce(v, typing.get_args(tp)[0]) for v in value)
    if tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError('expected a dict, e.g. {"name": "VerticalFlip", "p": 0.5}')
        return dict(value)
    raise AssertionError(f"unsupported config type {tp}")


def _is_number(value: Any) -> bool:
    """A finite int or float, bools excluded."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
