# The two commands of README.md. Each installs what it needs into .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"

## demo: verify the real Intel quotes in tests/vectors with readable reports
demo: install
	$(BIN)/python scripts/demo.py

## test: lint, type-check and run the whole test suite
test: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest
