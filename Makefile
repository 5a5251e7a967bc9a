# Two commands set up a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench ui validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m chatpulse.reports.fonts
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chatpulse demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The pure and asset layers only: no pipeline runs, processes, daemon, webserver, browser or PostgreSQL.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not (pipeline or subprocess or daemon or webserver or browser or postgres)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

ui: $(STAMP)
	$(BIN)/chatpulse ui

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf .chatpulse
