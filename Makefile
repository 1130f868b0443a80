# Thin wrappers over the real commands. `make run` and `make test` are all a new user needs.
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install run up down test test-unit test-integration lint format typecheck compose-config bench clean

install:
	@VENV=$(VENV) ./scripts/bootstrap.sh

run: install  ## the embedded stack on http://127.0.0.1:8000/
	$(BIN)/lookalike run

test: install  ## the whole suite (needs Postgres and Redis on 127.0.0.1, Chromium for browser tests)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-integration: install
	$(BIN)/pytest -m "integration or e2e" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services lab
	$(BIN)/lint-imports  # the plan of the house: docs/architecture.md

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compose-config:
	docker compose -f docker-compose.yml config -q

up:  ## production shape (needs a Docker engine)
	docker compose up -d --build

down:
	docker compose down

bench: install
	$(BIN)/lookalike bench --json BENCHMARKS.json

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
