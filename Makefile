# Lotsen: `make run` starts the demo, `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.PHONY: run test lint unit e2e bench translations clean-instance

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

translations: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d webapp/translations -D messages >/dev/null

node_modules/.installed: package.json
	npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
	touch node_modules/.installed

chromium:
	bash scripts/ensure-chromium.sh

## Install, migrate, publish the models, load demo users, serve http://127.0.0.1:5000
## with the timer worker beside the web server (Ctrl-C stops both)
run: $(STAMP) translations
	LOTSEN_DEMO=1 $(BIN)/flask --app wsgi lotsen init
	LOTSEN_DEMO=1 BIN=$(BIN) bash scripts/run-demo.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy engine reports forms webapp
	$(BIN)/lint-imports

## Every check: lint, types, import contracts, the whole pytest suite (PostgreSQL too when
## LOTSEN_TEST_DATABASE_URL is set), the browser test in Debian's chromium.
test: $(STAMP) translations node_modules/.installed chromium lint
	$(BIN)/pytest -n 2 -p no:cacheprovider

e2e: $(STAMP) translations node_modules/.installed chromium
	$(BIN)/pytest -m e2e tests/e2e

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_identification.py

clean-instance:
	rm -rf instance
