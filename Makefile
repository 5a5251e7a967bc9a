# Two commands set up a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint lock bench bench-small bench-scale bench-postgres bench-folder ui validate clean

LOCK := constraints.txt

# Installs are reproducible: every package at the version pinned in $(LOCK) (`make lock` refreshes it).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test,postgres]'
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

# A run's fixed cost: a 100-row day end to end, repeated, beside bare Python and the imports.
bench-small: $(STAMP)
	$(BIN)/python benchmarks/small_day.py

# One day of 10M requests against one of 1M (generating them takes a while; progress is printed).
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py

# The same day on SQLite and on the local PostgreSQL server (a database of its own, dropped after).
bench-postgres: $(STAMP)
	$(BIN)/python benchmarks/bench_postgres.py

# A first run over a folder of 30 days, with the extract cache and without it (files parsed, time, memory).
bench-folder: $(STAMP)
	$(BIN)/python benchmarks/bench_folder.py

ui: $(STAMP)
	$(BIN)/chatpulse ui

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

# Resolve pyproject's ranges afresh in a throwaway environment and pin the result.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[test,postgres]'
	{ echo '# Pinned by `make lock` from pyproject.toml; `make` installs with these as constraints.'; \
	  .lock-venv/bin/pip freeze --all --exclude-editable | grep -v "^pip==" | LC_ALL=C sort; } > $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf .chatpulse
