"""Loading a study file (plain Python defining ``study = Study(...)``) and applying ``--set`` to a study.

Standard library only: importing a study file runs no more than the study file itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import re
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.study.config import Study, apply_overrides


def load_study(path: str | Path) -> Study:
    """Import a study file and return its ``study``; every failure is a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a study file inside it, e.g. configs/init_study.py")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file (try configs/init_study.py)")
    if path.suffix != ".py":
        raise ConfigError(f"{path}: a study config is a Python file that defines `study = Study(...)`")
    spec = importlib.util.spec_from_file_location(f"runner_study_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{e.filename}:{e.lineno}: syntax error: {e.msg}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - user code; report where it failed
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        line = f":{frames[-1].lineno}" if frames else ""
        raise ConfigError(f"{path}{line}: {_unknown_field(e) or f'{type(e).__name__}: {e}'}") from None
    if not hasattr(module, "study"):
        raise ConfigError(
            f"{path}: defines no `study`; add `study = Study(name=..., base=TrialConfig(...), variants={{...}})`"
        )
    return module.study


def with_overrides(study: Study, overrides: Mapping[str, Any]) -> Study:
    """The study with ``overrides`` (from --set) applied to its base and on top of every variant."""
    if not overrides:
        return study
    try:
        base = apply_overrides(study.base, overrides)
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None
    variants = {name: {**changes, **overrides} for name, changes in study.variants.items()}
    return dataclasses.replace(study, base=base, variants=variants)


def _unknown_field(e: Exception) -> str | None:
    """``Study(confirm=2)``: which fields the class has, the closest one, or the class that has that field."""
    found = re.fullmatch(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(e))
    from runner.study import config, space

    classes = {c.__name__: c for m in (config, space) for c in vars(m).values() if dataclasses.is_dataclass(c)}
    if not isinstance(e, TypeError) or not found or found[1] not in classes:
        return None
    name, key = found[1], found[2]
    fields = [f.name for f in dataclasses.fields(classes[name])]
    close = difflib.get_close_matches(key, fields, n=1)
    owners = [c for c, cls in classes.items() if key in {f.name for f in dataclasses.fields(cls)}]
    hint = (f"did you mean {close[0]}=?" if close else f"{key} belongs to {owners[0]}(...)" if owners
            else f"{name} takes {', '.join(fields)}")  # fmt: skip
    return f"{name}() has no field {key!r}; {hint} (docs/configuration.md lists every field)"
