# Two entry points (see README): `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint types unit setup services bench clean

run: setup  ## install, then answer the shipped example question on the CPU engine
	$(BIN)/voiceagent models
	$(BIN)/voiceagent call examples/audio/opening-hours.wav --out reply.wav

test: setup services check  ## install what the tests need, start services, lint, type-check, test

check: lint types unit

setup: $(STAMP)

$(STAMP): pyproject.toml
	scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev,e2e]'
	touch $@

services:
	scripts/services.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types:
	$(BIN)/mypy

unit:
	$(BIN)/pytest -q

bench: setup
	$(BIN)/voiceagent bench first-audio
	$(BIN)/voiceagent bench bargein
	$(BIN)/voiceagent bench calllog

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
