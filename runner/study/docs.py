"""docs/configuration.md and the ``--set`` help, generated from the config dataclasses' field docstrings.

Each field of runner/study/config.py has its meaning written in place, as a docstring under it; this module
reads them from the source with ``ast`` (a docstring under a field is not kept at run time), so the docs,
the CLI's ``--set`` help and the code cannot drift apart. A field without one is a problem (``problems``),
and generating refuses to run until it has one.

    python -m runner.study.docs            # print the markdown
    python -m runner.study.docs --write    # rewrite docs/configuration.md
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from runner.study import config, space
from runner.study.config import section_types
from runner.study.registry import AUGMENTATIONS, CHANNELS, INITS, LEAKAGE, METRICS, OPTIMIZERS

COMMAND = "python -m runner.study.docs --write"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SOURCE_PATH = Path(config.__file__).resolve()

# Fields whose allowed names live in a registry: the meaning must name every one of them.
ALLOWED = {
    "data.channels": CHANNELS,
    "data.leakage": LEAKAGE,
    "model.init": INITS,
    "optim.name": OPTIMIZERS,
    "metric": METRICS,
}
# Search and ASHA live in runner.study.space, whose fields carry no docstrings: their meanings are here.
SEARCH_FIELDS = {
    "space": 'Dotted key -> distribution (below), e.g. ``{"optim.lr": loguniform(1e-5, 1e-1)}``.',
    "samples": "How many configs to draw (>= 1); each is a variant (s000, s001, ...) run over the study's seeds.",
    "algorithm": "random (Tune's seeded sampling) | sobol (Optuna's QMC sampler) | optuna (Optuna's TPE, learns).",
    "seed": "Seeds the sampler: the same study file draws the same samples.",
    "confirm": "After the search, the k best samples by score run every epoch over every seed (pruned trials carry "
    "on from their checkpoints) and get verdicts vs the reference, Holm over the fixed variants and them (0: none; "
    "at most samples; also ``--confirm K``, with ``--resume`` for a finished search).",
}
ASHA_FIELDS = {
    "grace_epochs": "Epochs (>= 1) before the first rung: trials are compared at grace_epochs, x reduction_factor, ...",
    "reduction_factor": "At each rung, trials outside the best 1/reduction_factor are stopped (> 1).",
}
DISTRIBUTIONS = {
    "uniform": "a float in [low, high]",
    "quniform": "a float in [low, high], rounded to a multiple of q",
    "loguniform": "a float in [low, high], uniform on a log scale (low > 0)",
    "qloguniform": "a float in [low, high] on a log scale, rounded to a multiple of q",
    "randint": "an integer in [low, high): high excluded, as in Tune",
    "qrandint": "an integer in [low, high), a multiple of q",
    "choice": "one of the options: numbers, strings, bools, or tuples such as model.hidden",
}


class DocError(Exception):
    """The docs cannot be generated: a field lacks its docstring, or a meaning leaves out an allowed name."""


class Field(NamedTuple):
    """One documented setting: its key (dotted for a trial config), type and default as text, its meaning."""

    key: str
    type: str
    default: str
    meaning: str


def field_docstrings(source: str) -> dict[str, dict[str, tuple[str, str | None]]]:
    """Class name -> field name -> (its annotation as text, the docstring written under it or None)."""
    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = out.setdefault(node.name, {})
        for stmt, after in zip(node.body, [*node.body[1:], None]):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                doc = after.value.value if _is_docstring(after) else None
                fields[stmt.target.id] = (ast.unparse(stmt.annotation), doc)
    return out


def _is_docstring(stmt: ast.stmt | None) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def documented_classes() -> list[type]:
    """The dataclasses whose every field needs a docstring: TrialConfig, its sections, Study."""
    return [config.TrialConfig, *section_types().values(), config.Study]


def problems(source: str | None = None) -> list[str]:
    """Every field of the documented classes without a docstring in ``source`` (default: runner/study/config.py),
    and every allowed name a field's meaning leaves out; [] when the docs can be generated."""
    docs = field_docstrings(SOURCE_PATH.read_text() if source is None else source)
    out = []
    for cls in documented_classes():
        for f in dataclasses.fields(cls):
            _, doc = docs.get(cls.__name__, {}).get(f.name, ("", None))
            if not (doc and doc.strip()):
                out.append(f"{cls.__name__}.{f.name} has no docstring: write one under it in runner/study/config.py")
    if not out:
        meanings = {f.key: f.meaning for f in [*_all_section_fields(docs), *_fields(config.Study, "", docs)]}
        for key, names in ALLOWED.items():
            missing = [str(n) for n in names if not re.search(rf"\b{re.escape(str(n))}\b", meanings[key])]
            if missing:
                out.append(f"{key}: its docstring does not name {', '.join(missing)}; list every allowed value")
    return out


def section_fields() -> dict[str, list[Field]]:
    """Section (``data``, ``augment``, ...) -> its settings, keys dotted (``optim.lr``), in the source's order."""
    docs = _checked_docs()
    return {s: _fields(cls, f"{s}.", docs) for s, cls in section_types().items()}


def study_fields() -> list[Field]:
    """The Study's own fields (name, base, variants, seeds, ...)."""
    return _fields(config.Study, "", _checked_docs())


def _checked_docs() -> dict[str, dict[str, tuple[str, str | None]]]:
    found = problems()
    if found:
        raise DocError("; ".join(found))
    return field_docstrings(SOURCE_PATH.read_text())


def _all_section_fields(docs: Mapping[str, Any]) -> list[Field]:
    return [f for s, cls in section_types().items() for f in _fields(cls, f"{s}.", docs)]


def _fields(cls: type, prefix: str, docs: Mapping[str, Any]) -> list[Field]:
    out = []
    for f in dataclasses.fields(cls):
        annotation, doc = docs[cls.__name__][f.name]
        out.append(Field(prefix + f.name, annotation, _default(f), " ".join((doc or "").split())))
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is dataclasses.MISSING:
        return "required"
    value = f.default_factory()
    return f"{type(value).__name__}()" if dataclasses.is_dataclass(value) else repr(value)


def _plain(text: str) -> str:
    """A meaning as plain text: ``literal`` marks dropped."""
    return text.replace("``", "")


def _cell(text: str) -> str:
    """Text for a markdown table cell: ``literal`` as code, pipes escaped (GFM tables need it even in code)."""
    return text.replace("``", "`").replace("|", "\\|")


def _code(text: str) -> str:
    return _cell(f"``{text}``")


def _table(rows: list[Field], head: str) -> list[str]:
    lines = [f"| {head} | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {_code(r.key)} | {_code(r.type)} | {_code(r.default)} | {_cell(r.meaning)} |" for r in rows]
    return lines


def set_help() -> str:
    """Every dotted key a trial config accepts, one line each: ``  optim.lr  (float, default 0.001)  meaning``.

    Plain text for the epilog of ``python -m runner.tune --help`` (use argparse's RawDescriptionHelpFormatter,
    which keeps the lines as they are)."""
    lines = ["settings (--set KEY=VALUE, variants' overrides and search spaces; see docs/configuration.md):"]
    for rows in section_fields().values():
        lines += [f"  {r.key}  ({r.type}, default {r.default})  {_plain(r.meaning)}" for r in rows]
    return "\n".join(lines)


def markdown() -> str:
    """docs/configuration.md: the Study's fields, a table per trial config section, the search and ASHA."""
    lines = [
        f"<!-- Generated by `{COMMAND}` from the field docstrings in runner/study/config.py; edit those, not this file. -->",
        "",
        "# Configuration",
        "",
        "A study file is plain Python that defines `study = Study(...)` (examples in `configs/`). Every trial of",
        "the study is `study.base` with one variant's dotted overrides applied, then the CLI's `--set KEY=VALUE`",
        "ones, e.g. `python -m runner.tune configs/baseline.py --set optim.lr=0.01 --set model.hidden=[256,64]`.",
        "A `--set` value is a Python/JSON literal when it parses as one (`0.01`, `true`, `[256, 64]`), else a",
        "string. Every name below is importable from `runner.config`.",
        "",
        *_study_section(),
        *_trial_sections(),
        *_search_section(),
        *_asha_section(),
        *_augmentations_section(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _study_section() -> list[str]:
    return ["## Study", "", f"`Study(...)`: {_doc(config.Study)}", "", *_table(study_fields(), "field"), ""]


def _trial_sections() -> list[str]:
    docs = field_docstrings(SOURCE_PATH.read_text())["TrialConfig"]
    lines = [
        "## Trial config",
        "",
        f"`TrialConfig(data=DataConfig(...), ...)`: {_doc(config.TrialConfig)}",
        "",
    ]
    for section, rows in section_fields().items():
        cls = section_types()[section].__name__
        meaning = " ".join((docs[section][1] or "").split())
        lines += [f"### {section}", "", f"`{cls}`: {_cell(meaning)}", "", *_table(rows, "key"), ""]
    return lines


def _search_section() -> list[str]:
    rows = _hand_documented(space.Search, SEARCH_FIELDS)
    searchable = ", ".join(f"`{k}*`" if k.endswith(".") else f"`{k}`" for k in space.NOT_SEARCHABLE)
    lines = ["## Search", "", f"`Search(...)`: {_doc(space.Search)}", "", *_table(rows, "field"), ""]
    lines += ["### Distributions", "", f"Any dotted key can be searched except {searchable}.", ""]
    lines += ["| distribution | values |", "|---|---|"]
    for name, fn in vars(space).items():
        if inspect.isfunction(fn) and inspect.signature(fn).return_annotation in ("Uniform", "RandInt", "Choice"):
            if name not in DISTRIBUTIONS:
                raise DocError(f"runner.study.space.{name}: add its meaning to DISTRIBUTIONS in runner/study/docs.py")
            params = ", ".join(inspect.signature(fn).parameters)
            lines.append(f"| `{name}({params})` | {DISTRIBUTIONS[name]} |")
    return [*lines, ""]


def _asha_section() -> list[str]:
    rows = _hand_documented(space.ASHA, ASHA_FIELDS)
    return ["## Scheduler: ASHA", "", f"`ASHA(...)`: {_doc(space.ASHA)}", "", *_table(rows, "field"), ""]


def _augmentations_section() -> list[str]:
    names = ", ".join(f"`{n}`" for n in AUGMENTATIONS.values())
    return [
        "## Augmentations",
        "",
        "Each entry of `augment.train` names one of these albumentations transforms (any case), with its",
        "arguments, e.g. `{'name': 'VerticalFlip', 'p': 0.5}`. All keep the image size, so the MLP's input",
        f"stays fixed: {names}.",
    ]


def _hand_documented(cls: type, meanings: Mapping[str, str]) -> list[Field]:
    """Fields of a runner.study.space class, their meanings from ``meanings`` (every field needs one)."""
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in meanings]
    if missing:
        raise DocError(f"{cls.__name__}.{missing[0]}: add its meaning in runner/study/docs.py")
    return [Field(f.name, str(f.type), _default(f), meanings[f.name]) for f in dataclasses.fields(cls)]


def _doc(obj: Any) -> str:
    return _cell(" ".join((inspect.getdoc(obj) or "").split()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.study.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {DOC_PATH.name} instead of printing it")
    args = parser.parse_args(argv)
    text = markdown()
    if not args.write:
        print(text, end="")
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
