# The two commands of the README: `make demo` (the main job) and `make test`.
# Each bootstraps .venv from scratch on a fresh machine; re-installs when pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CODE   := $(wildcard connector adapters mappings tests benchmarks)
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit chromium clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loyalty-connector demo

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy connector adapters

unit: $(STAMP)
	$(BIN)/pytest

# The console's browser tests drive Debian's chromium (never a downloaded browser); they skip without it.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "chromium is missing and could not be installed (root is needed): run 'sudo apt-get install chromium'; the browser tests skip"

test: lint typecheck chromium unit

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
