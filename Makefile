# `make run` and `make test` are all a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The MariaDB/MySQL server the MySQL test run creates its throw-away databases on.
TEST_MYSQL_URL ?= mysql+pymysql://root@127.0.0.1:3306

.PHONY: run test test-sqlite test-mysql lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python main.py

test: test-sqlite

test-sqlite: $(VENV)/.dev
	$(BIN)/python -m pytest

test-mysql: $(VENV)/.dev
	IMGAPI_TEST_MYSQL_URL=$(TEST_MYSQL_URL) $(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The load generator is Debian's wrk: installed here if missing (needs root, as on our machines).
bench: $(VENV)/.dev
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
