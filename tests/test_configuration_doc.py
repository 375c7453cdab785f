"""docs/configuration.md and the --set help, generated from the config dataclasses' field docstrings."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from runner.config import known_keys
from runner.study import docs
from runner.study.config import Study


def test_every_config_field_has_a_docstring():
    assert docs.problems() == [], "\n".join(docs.problems())


def test_configuration_doc_is_up_to_date():
    stale = f"docs/configuration.md is stale: regenerate it with `{docs.COMMAND}`"
    assert docs.DOC_PATH.is_file(), f"docs/configuration.md is missing: generate it with `{docs.COMMAND}`"
    assert docs.DOC_PATH.read_text() == docs.markdown(), stale


def test_doc_says_it_is_generated_and_how():
    first = docs.markdown().splitlines()[0]
    assert "Generated" in first and docs.COMMAND in first


def test_a_field_without_a_docstring_is_a_problem():
    source = textwrap.dedent(
        '''
        class ModelConfig:
            hidden: tuple[int, ...] = (512, 128)
            """Widths."""
            dropout: float = 0.0
            batchnorm: bool = False
            """BatchNorm."""
        '''
    )
    found = docs.problems(source)
    assert any(p.startswith("ModelConfig.dropout has no docstring") for p in found)
    assert not any(p.startswith(("ModelConfig.hidden ", "ModelConfig.batchnorm ")) for p in found)


def test_field_docstrings_reads_the_string_under_each_field():
    source = 'class A:\n    """Class doc."""\n\n    x: int = 1\n    """The x."""\n    y: str | None = None\n'
    assert docs.field_docstrings(source) == {"A": {"x": ("int", "The x."), "y": ("str | None", None)}}


def test_generating_refuses_an_undocumented_field(monkeypatch):
    monkeypatch.setattr(docs, "problems", lambda source=None: ["OptimConfig.lr has no docstring"])
    with pytest.raises(docs.DocError, match="OptimConfig.lr has no docstring"):
        docs.markdown()
    with pytest.raises(docs.DocError):
        docs.set_help()


def test_a_meaning_must_name_every_allowed_value(monkeypatch):
    monkeypatch.setitem(docs.ALLOWED, "optim.name", ("adam", "adamw", "sgd", "lion"))
    assert docs.problems() == ["optim.name: its docstring does not name lion; list every allowed value"]


def test_set_help_names_every_known_key_once_with_type_default_and_meaning():
    lines = docs.set_help().splitlines()
    keyed = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert set(keyed) == set(known_keys())
    assert len(keyed) == len(lines) - 1  # one header line, then one line per key
    assert "  optim.lr  (float, default 0.001)  Learning rate per optimizer step" in keyed["optim.lr"]
    for key, line in keyed.items():
        assert "(" in line and ", default " in line and line.rstrip()[-1] in ".)", key


def test_markdown_has_a_table_row_per_key_and_study_field():
    text = docs.markdown()
    for key in known_keys():
        assert f"| `{key}` |" in text, key
    for f in dataclasses.fields(Study):
        assert f"| `{f.name}` |" in text, f.name
    for section in ("data", "augment", "model", "optim", "train", "resources"):
        assert f"\n### {section}\n" in text
    for name in ("uniform", "loguniform", "quniform", "qloguniform", "randint", "qrandint", "choice"):
        assert f"| `{name}(" in text, name


def test_table_cells_escape_pipes():
    rows = [line for line in docs.markdown().splitlines() if line.startswith("| `reference` |")]
    assert rows == [
        "| `reference` | `str \\| None` | `None` | The variant the others are compared against; None: the first. |"
    ]


def test_main_prints_the_markdown(capsys):
    assert docs.main([]) == 0
    assert capsys.readouterr().out == docs.markdown()
