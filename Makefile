# SH-GOV — two commands: `make demo` (set up and run the demo city) and `make test` (set up and test).
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_PY := $(BIN)/python
# Use uv from PATH; otherwise bootstrap it into the virtual environment with pip.
UV := $(or $(shell command -v uv 2>/dev/null),$(BIN)/uv)
UV_VERSION := 0.13.9
LOCALE_DIR := src/shgov/locale
CATALOGS := $(wildcard $(LOCALE_DIR)/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)
VENDOR := src/shgov/web/static/vendor
DEMO_ENV := SHGOV_ENV=dev SHGOV_LOG_JSON=false SHGOV_SENSING__SIMULATE=true

.PHONY: help demo test test-fast setup setup-dev assets catalogs chromium lint typecheck importlint pytest docs-reference bench i18n clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: setup assets catalogs ## set up, migrate, seed the demo city (once) and serve on http://127.0.0.1:8000
	$(DEMO_ENV) $(BIN)/shgov db upgrade
	$(DEMO_ENV) $(BIN)/shgov demo seed
	$(DEMO_ENV) $(BIN)/shgov demo info
	$(DEMO_ENV) $(BIN)/shgov serve

test: setup-dev assets catalogs chromium ## set up and run every check: ruff, mypy, import contracts, pytest
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -n auto --dist loadfile --durations=25

# The quick lane while working: no browser, no PostgreSQL, no NATS, none of the whole-system `slow` tests
# (`make test` stays the gate that runs everything). See docs/testing.md.
test-fast: setup-dev assets catalogs ## ruff, then pytest on SQLite only, without browser, NATS and slow tests
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	SHGOV_TEST_BACKENDS=sqlite $(BIN)/pytest -n auto --dist loadfile -m "not browser and not nats and not slow"

docs-reference: setup-dev ## write the reference sections of docs/<context>.md (events, actions) from the code
	SHGOV_WRITE_DOCS=1 $(BIN)/pytest -q -p no:randomly tests/test_docs.py -k reference

bench: setup-dev assets catalogs .venv-bench/bin/datasette .venv-bench/.openfisca ## run the benchmarks under bench/ and print their figures
	$(BIN)/python -m bench

# Datasette and OpenFisca are only yardsticks (bench_gateway, bench_benefits): they live in their own
# environment, never in SH-GOV's.
.venv-bench/bin/python: | $(UV)
	$(UV) venv -q .venv-bench

.venv-bench/bin/datasette: | .venv-bench/bin/python
	$(UV) pip install -q --python .venv-bench/bin/python datasette

.venv-bench/.openfisca: | .venv-bench/bin/python
	$(UV) pip install -q --python .venv-bench/bin/python "openfisca-core==46.0.1" "pyarrow>=18"
	touch $@

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(VENV_PY)
	$(VENV_PY) -m pip install --quiet "uv==$(UV_VERSION)"

setup: $(VENV)/.runtime ## install the locked runtime dependencies
setup-dev: $(VENV)/.dev ## install the locked runtime and development dependencies

# Stamps make a second run with unchanged locks install nothing.
$(VENV)/.runtime: requirements/main.txt pyproject.toml | $(VENV_PY) $(UV)
	$(UV) pip install --python $(VENV_PY) --require-hashes -r requirements/main.txt
	$(UV) pip install --python $(VENV_PY) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements/dev.txt
	$(UV) pip install --python $(VENV_PY) --require-hashes -r requirements/main.txt -r requirements/dev.txt
	touch $@

# Front-end libraries from npm, copied into the package (served locally; no CDN).
assets: $(VENDOR)/.built
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
$(VENDOR)/.built: node_modules/.package-lock.json
	mkdir -p $(VENDOR)
	cp node_modules/echarts/dist/echarts.min.js node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/
	cp node_modules/swagger-ui-dist/LICENSE $(VENDOR)/LICENSE-swagger-ui
	cp node_modules/echarts/LICENSE $(VENDOR)/LICENSE-echarts
	cp node_modules/htmx.org/LICENSE $(VENDOR)/LICENSE-htmx
	cp node_modules/jsqr/dist/jsQR.js $(VENDOR)/jsqr.min.js
	cp node_modules/jsqr/LICENSE $(VENDOR)/LICENSE-jsqr
	touch $@

catalogs: $(COMPILED)
$(LOCALE_DIR)/%/LC_MESSAGES/messages.mo: $(LOCALE_DIR)/%/LC_MESSAGES/messages.po | $(VENV)/.runtime
	$(BIN)/pybabel compile --statistics -D messages -i $< -o $@

i18n: setup ## re-extract messages and update the catalogues (then translate the new entries)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output --project SH-GOV -o $(LOCALE_DIR)/messages.pot src
	$(BIN)/pybabel update -i $(LOCALE_DIR)/messages.pot -d $(LOCALE_DIR) -D messages --no-fuzzy-matching --width 120

# Debian's chromium (for Playwright) and a CJK font, installed when missing.
chromium:
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk'; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-zenhei; \
	fi

clean: ## remove the virtual environment, node_modules and built assets (keeps var/)
	rm -rf $(VENV) .venv-bench node_modules $(VENDOR) $(COMPILED) .mypy_cache .ruff_cache .pytest_cache
