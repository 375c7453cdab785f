"""The names a phase's Tune state pickled before runner's modules moved into subpackages, served from where they
live now, so that a study interrupted before the move still resumes after it.

Tune pickles a run's callbacks, its scheduler and its trial-dir namer with the experiment, by module path, and
``Tuner.restore`` unpickles them (the restored run then gets this run's own callbacks).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

# old module -> {old name: "new.module:new_name"}; a module with no names is only imported by the pickle
OLD = {
    "runner.orchestrate": {
        "_trial_name": "runner.driver.tuner:trial_name",
        "_mark_pruned": "runner.driver.tuner:mark_pruned",
        "_preload": "runner.driver.callbacks:preload",
        "remove_remake": "runner.driver.results_dir:remove_remake",
    },
    "runner.progress": {
        "LinePrinter": "runner.driver.trial_progress:LinePrinter",
        "Tally": "runner.driver.trial_progress:Tally",
    },
    "runner.redo": {"drop_from": "runner.results.files:drop_from", "last_epoch": "runner.results.files:last_epoch"},
    "runner.rebuild": {},
    "runner.plan": {"TrialSpec": "runner.study.plan:TrialSpec"},
    "runner.resources": {"Fit": "runner.study.resources:Fit", "Cluster": "runner.study.resources:Cluster"},
    "runner.space": {},
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name in OLD else None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__getattr__ = lambda attr: _resolve(spec.name, attr)  # type: ignore[method-assign]
        return module

    def exec_module(self, module):
        pass


def _resolve(module: str, attr: str):
    where = OLD[module].get(attr)
    if where is None:
        raise AttributeError(f"{module}.{attr}: not a name runner kept from before its modules moved")
    new_module, _, new_name = where.partition(":")
    return getattr(importlib.import_module(new_module), new_name)


@contextmanager
def old_names() -> Iterator[None]:
    """While inside, ``import runner.orchestrate`` (and the other old modules) gives their names' new homes."""
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in OLD:
            sys.modules.pop(name, None)
