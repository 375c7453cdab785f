"""The layout's contract, read from the source: no import cycle, imports only in the allowed directions, small
modules and functions. docs/architecture.md states the same rules.

For cycles and directions every ``import`` counts, at the top of a module or inside a function: a function-local
import still ties the two modules together. What a process loads is followed through every module-level import,
and through the function-local imports of the package that runs in it (a shared module such as runner.checkpoints
imports torch inside the functions only trial and inference processes call). A full study's driver is also checked
at run time (tests/test_speed_paths.py).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).parent.parent / "runner"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 50


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(ROOT.rglob("*.py"))}


@cache
def imports(module: str) -> dict[str, bool]:
    """{imported module: imported at the top} of ``module``: runner modules by their module (``from runner.x import
    y`` is runner.x.y when that is a module), other packages by their top-level name."""
    tree = ast.parse(MODULES[module].read_text())
    top = {id(n) for n in tree.body}
    out: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            name = name if name.startswith("runner") else name.split(".")[0]
            while name.startswith("runner") and name not in MODULES:
                name = name.rsplit(".", 1)[0]
            if name != module and name != "__future__":
                out[name] = out.get(name, False) or id(node) in top
    return out


def _runner_imports(module: str) -> set[str]:
    return {m for m in imports(module) if m.startswith("runner.") and m in MODULES}


def _reach(start: str, package: str) -> set[str]:
    """Every module and package ``start`` loads in a process that runs ``package``: module-level imports everywhere,
    function-local ones in ``package``'s own modules."""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m in MODULES:
            todo += [n for n, at_top in imports(m).items() if at_top or m.startswith(package)]
    return seen


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in _runner_imports(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for m in MODULES:
        if m not in index:
            visit(m)
    return out


def _in(package: str) -> list[str]:
    return [m for m in MODULES if m == package or m.startswith(package + ".")]


def test_no_import_cycle():
    assert _cycles() == []


def test_the_trial_process_never_imports_the_driver():
    wrong = {m: sorted(n for n in _runner_imports(m) if n.startswith("runner.driver")) for m in _in("runner.trial")}
    assert {m: n for m, n in wrong.items() if n} == {}


def test_the_driver_never_loads_torch():
    loads = {m: sorted(n for n in _reach(m, "runner.driver") if n in ("torch", "runner.trial.model"))
             for m in [*_in("runner.driver"), "runner.tune"]}  # fmt: skip
    assert {m: n for m, n in loads.items() if n} == {}


def test_results_and_the_study_import_neither_the_driver_nor_the_trial():
    wrong = {}
    for m in [*_in("runner.results"), *_in("runner.study"), "runner.config"]:
        bad = sorted(
            n for n in _runner_imports(m) if n.startswith(("runner.driver", "runner.trial", "runner.inference"))
        )
        if bad:
            wrong[m] = bad
    assert wrong == {}


def test_the_study_definition_loads_only_the_standard_library():
    allowed_runner = ("runner.config", "runner.errors", "runner.study")
    wrong = {}
    for m in [*_in("runner.study"), "runner.config"]:
        bad = sorted(n for n in _reach(m, "runner.study") if not n.startswith(allowed_runner) and not _stdlib(n))
        if bad:
            wrong[m] = bad
    assert wrong == {}


def _stdlib(name: str) -> bool:
    import sys

    return name.split(".")[0] in sys.stdlib_module_names


def test_modules_and_functions_stay_small():
    long = []
    for m, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{m}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name}: {n} lines")
    assert long == []


def test_the_checks_see_a_cycle_and_a_wrong_direction(monkeypatch):
    """The checks above can fail: made-up imports of the driver's flow in the trial's loop (a cycle and a wrong
    direction) and of the trial's engine in the driver's console (torch in the driver)."""
    import sys

    real = imports.__wrapped__

    made_up = {"runner.trial.loop": "runner.driver.flow", "runner.driver.console": "runner.trial.engine"}

    def with_edge(module: str) -> dict[str, bool]:
        return {**real(module), made_up[module]: True} if module in made_up else real(module)

    monkeypatch.setattr(sys.modules[__name__], "imports", with_edge)
    assert any("runner.trial.loop" in group for group in _cycles())
    assert "runner.driver.flow" in _runner_imports("runner.trial.loop")
    assert "torch" in _reach("runner.driver.cli", "runner.driver")
