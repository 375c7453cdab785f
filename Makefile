# Two commands on a fresh machine:   make run   (the init study on the built-in data)   make test
# Both create .venv and install the project from this checkout first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0: the CPU build on a machine without CUDA wheels cached; see README "GPUs" for a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: run test install clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: install
	$(PY) -m runner.tune configs/init_study.py $(ARGS)

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --config-file tests/mypy.ini --cache-dir $(VENV)/.mypy_cache --no-error-summary tests/typecheck_sessions.py
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
