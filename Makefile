# Two commands on a fresh machine: `make demo` (set up + run the whole pipeline) and `make test`.
# Both are idempotent: the virtual environment is rebuilt only when the dependency files change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-cpu.txt
	touch $(STAMP)

demo: setup
	$(BIN)/kalm run --profile demo --run-id demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

clean-runs:
	rm -rf runs
