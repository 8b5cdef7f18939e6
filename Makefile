# Lotsen: `make run` starts the demo, `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.PHONY: run test lint unit e2e bench translations clean-instance vendor

# Exactly the versions in requirements.lock (the ranges stay in pyproject.toml; `make lock`).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

translations: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d webapp/translations -D messages >/dev/null

node_modules/.installed: package.json
	npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
	touch node_modules/.installed

chromium:
	bash scripts/ensure-chromium.sh

# bpmn-js (modeler and viewer) served from our own static files, never from a CDN
VENDOR := webapp/static/vendor/bpmn-js
$(VENDOR)/.copied: node_modules/.installed
	mkdir -p $(VENDOR)/assets
	cp node_modules/bpmn-js/dist/bpmn-modeler.production.min.js node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js $(VENDOR)/
	cp -r node_modules/bpmn-js/dist/assets/. $(VENDOR)/assets/
	touch $@
vendor: $(VENDOR)/.copied

## Install, migrate, publish the models, load demo users, serve http://127.0.0.1:5000
## with the timer worker beside the web server (Ctrl-C stops both)
run: $(STAMP) translations node_modules/.installed vendor
	LOTSEN_DEMO=1 $(BIN)/flask --app wsgi lotsen init
	LOTSEN_DEMO=1 BIN=$(BIN) bash scripts/run-demo.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy engine reports forms webapp
	$(BIN)/lint-imports

## Every check: lint, types, import contracts, the whole pytest suite (PostgreSQL too when
## LOTSEN_TEST_DATABASE_URL is set), the browser test in Debian's chromium.
test: $(STAMP) translations node_modules/.installed vendor chromium lint
	$(BIN)/pytest -n 2 -p no:cacheprovider

e2e: $(STAMP) translations node_modules/.installed vendor chromium
	$(BIN)/pytest -m e2e tests/e2e

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_identification.py

clean-instance:
	rm -rf instance

.PHONY: lock audit
## Re-pin requirements.lock from the installed .venv (after changing pyproject.toml and installing)
lock:
	$(BIN)/python scripts/lock_requirements.py

## Known vulnerabilities in the pinned dependencies (pip-audit). Not part of `make test`: it needs
## an outside vulnerability service; exit 2 and a clear message when that cannot be reached.
audit: $(STAMP)
	$(BIN)/python scripts/audit_dependencies.py
