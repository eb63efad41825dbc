# Advisor: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.base-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test install install-dev lint lock serve demo-data clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Advisor needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

$(BASE_STAMP): requirements/base.lock | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements/base.lock
	touch $@

$(DEV_STAMP): requirements/dev.lock | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements/dev.lock
	touch $@ $(BASE_STAMP)

install: $(BASE_STAMP)
install-dev: $(DEV_STAMP)

# Migrate, import the shipped prices, create the demo users and run one pipeline pass (all idempotent).
demo-data: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py import_prices portfolios/data/etf_prices.csv.gz portfolios/data/etf_prices_extra.csv.gz
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py segment_investors --if-missing
	$(BIN)/python manage.py run_pipeline

run: demo-data
	$(BIN)/python scripts/serve.py

test: install-dev
	./scripts/test.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Re-resolve the pinned versions after changing pyproject.toml.
lock: install-dev
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements/base.lock pyproject.toml
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --extra dev -o requirements/dev.lock pyproject.toml

clean:
	rm -rf var/ staticfiles/ test-artifacts/ .pytest_cache .mypy_cache .ruff_cache
