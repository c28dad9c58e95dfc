# Two entry points on a fresh machine (see README):
#   make serve   set up the serving environment and start the REST service on the shipped model
#   make test    set up the full development environment and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint setup-serve setup-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Serving needs no torch: numpy, OpenCV, FastAPI, uvicorn.
$(VENV)/.serve-installed: pyproject.toml setup.py $(wildcard csrc/*/*.c csrc/*/*.h) | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[serve]'
	touch $@

# torch==2.13.0 is pinned in the [train] extra (a CPU wheel here; a looser pin pulls CUDA builds).
$(VENV)/.dev-installed: pyproject.toml setup.py $(wildcard csrc/*/*.c csrc/*/*.h) | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.serve-installed

setup-serve: $(VENV)/.serve-installed
setup-dev: $(VENV)/.dev-installed

serve: setup-serve
	$(BIN)/facedet serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

# CI runs this target (.ci/run): the type check (seconds, cached in .mypy_cache) before the suite.
test: setup-dev
	bash scripts/ci_system_deps.sh
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -m "not needs_data" $(PYTEST_ARGS)

# mypy's files and strictness are in pyproject.toml ([tool.mypy]).
lint: setup-dev
	$(BIN)/ruff check facedet service tests scripts
	$(BIN)/ruff format --check facedet service tests scripts
	$(BIN)/python -m mypy
