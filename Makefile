# Two entry points (see README): `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run call test check lint types unit setup test-deps services bench clean

run: setup  ## install, then serve browser calls and the REST API on the embedded defaults
	$(BIN)/voiceagent models
	@echo "open http://127.0.0.1:8080/call and press Call (Ctrl-C stops the server)"
	$(BIN)/voiceagent serve

call: setup  ## answer the shipped example question from a file, no browser needed
	$(BIN)/voiceagent call examples/audio/opening-hours.wav --out reply.wav

test: setup test-deps services check  ## install what the tests need, start services, lint, type-check, test

check: lint types unit

setup: $(STAMP)

$(STAMP): pyproject.toml
	scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev,e2e,sip]'
	touch $@

test-deps:
	scripts/system-deps.sh --test

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
