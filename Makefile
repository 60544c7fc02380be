# The two commands of README.md (demo, test) and the lock's upkeep. Every install comes from uv.lock (hashes
# checked); the only tool installed outside it is uv itself, pinned with hashes in requirements/uv.txt.
PYTHON ?= python3
UV_HOME := .uv
UV      := $(UV_HOME)/bin/uv
BIN     := .venv/bin
# This machine's Python, never one uv would download; tests/integration/test_wheel.py runs the same uv.
export UV_PYTHON_DOWNLOADS := never
export UV := $(abspath $(UV))

.PHONY: demo test install lock upgrade wheel

$(UV): requirements/uv.txt
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--require-hashes -r requirements/uv.txt
	touch $(UV)

## install: .venv exactly as uv.lock says (runtime and dev); fails if the lock no longer matches pyproject.toml
install: $(UV)
	$(UV) sync --locked --python $(PYTHON)

## demo: the whole service on the embedded default, a simulated enclave attesting
demo: install
	$(BIN)/python scripts/demo.py

## test: lint, type-check and run the whole test suite (the wheel's own install and start-up included)
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

## lock: re-resolve after an edit to pyproject.toml, keeping every other pin
lock: $(UV)
	$(UV) lock

## upgrade: re-resolve everything to the newest versions allowed (uv itself included); then run make test
upgrade: $(UV)
	$(UV) lock --upgrade
	echo uv | $(UV) pip compile --universal --generate-hashes --no-header --quiet - -o requirements/uv.txt.new
	(sed -n '1,2p' requirements/uv.txt; cat requirements/uv.txt.new) > requirements/uv.txt && rm requirements/uv.txt.new

## wheel: dist/keyward-*.whl, built with the locked setuptools
wheel: install
	$(UV) build --wheel --no-build-isolation --out-dir dist
