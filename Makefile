# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint unit scenarios demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check harness servers scenarios tests
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests

scenarios: $(STAMP)
	$(BIN)/pytest -q scenarios

test: lint unit scenarios

demo: $(STAMP)
	$(BIN)/harness explore --server uvicorn==0.11.3 --http h11 --budget 120 --seed 0

bench: $(STAMP)
	$(BIN)/python -m harness.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
