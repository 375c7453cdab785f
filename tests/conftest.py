import contextlib
import multiprocessing.process
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    """Every test decodes into its own cache, never the user's ~/.cache/runner."""
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


UNIT_TIER = "unit tests start no process and no Ray: mark this test e2e"


@contextlib.contextmanager
def _no_process_no_ray(item: pytest.Item):
    """In a test not marked e2e, starting a process or Ray raises, and fails the test even where the code under test
    swallows the error. ray.init starts its GCS and raylet through subprocess.Popen, so refusing Popen refuses Ray
    too (and Ray Data, which calls ray.init); ray.init itself is refused where ray is already imported (ray is not
    imported here: that alone takes seconds)."""
    if item.get_closest_marker("e2e"):
        yield
        return
    refused: list[str] = []

    def refuse(what: str):
        def refused_call(*args, **kwargs):
            refused.append(what)
            raise RuntimeError(f"{UNIT_TIER} ({what})")

        return refused_call

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", refuse("subprocess.Popen"))
        for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
            if hasattr(os, name):
                mp.setattr(os, name, refuse(f"os.{name}"))
        mp.setattr(multiprocessing.process.BaseProcess, "start", refuse("multiprocessing start"))
        if (ray := sys.modules.get("ray")) is not None:
            mp.setattr(ray, "init", refuse("ray.init"))
        yield
    if refused:
        pytest.fail(f"{UNIT_TIER}: it called {', '.join(dict.fromkeys(refused))}", pytrace=False)


# Hooks rather than an autouse fixture: they also cover module-scoped fixtures, which pytest sets up before any
# function-scoped fixture, and the setup and teardown as well as the test itself.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _no_process_no_ray(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _no_process_no_ray(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    with _no_process_no_ray(item):
        return (yield)


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m runner.tune ARGS` in a subprocess, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "runner.tune", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_main(*args: str, timeout: float | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m runner.tune ARGS` in this process, for inputs refused before Ray starts and dry runs: its exit code
    and what it printed (an exception escaping it fails the test, as a traceback would). ``timeout`` is run_cli's."""
    import io
    import logging
    from unittest import mock

    from runner.driver import cli

    out, err, log = io.StringIO(), io.StringIO(), logging.getLogger("runner")
    handlers = list(log.handlers)
    with contextlib.chdir(ROOT), mock.patch.dict(os.environ, env or {}):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as e:  # argparse's own exit, for a bad flag
                code = e.code
            finally:
                log.handlers[:] = handlers
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


# Tune copies each trial's result.json into the results dir when it saves its state, on a clock (every 10 s or more):
# a test that watches a trial's rows mid-run, to strike at the right epoch, has it saved every second.
WATCHED = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m runner.tune ARGS` started in the background (to be signalled or killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner.tune", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def write_study(path: Path, body: str) -> Path:
    """A study file at ``path``: every name of runner.config imported, then ``body`` (dedented)."""
    path.write_text("from runner.config import *\n" + textwrap.dedent(body))
    return path


def random_image(seed: int, size: int = 20):
    """A distinct random RGB PIL image per seed."""
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def save_image(path: Path, img, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def train_val_folder(root: Path, classes=("cat", "dog"), n_train: int = 4, n_val: int = 2) -> Path:
    """ROOT/train/CLASS + ROOT/val/CLASS with distinct random PNGs."""
    for ci, c in enumerate(classes):
        for i in range(n_train):
            save_image(root / "train" / c / f"{i}.png", random_image(1000 * ci + i))
        for i in range(n_val):
            save_image(root / "val" / c / f"{i}.png", random_image(1000 * ci + 500 + i))
    return root
