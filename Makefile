# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint unit scenarios demo bench clean fixtures
SDISTS := .harness-cache/sdists/.fetched

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Source distributions the working-copy and bisect tests build git histories from.
$(SDISTS): tests/sdists.py | $(STAMP)
	$(BIN)/python -m tests.sdists
	touch $(SDISTS)

fixtures: $(SDISTS)

lint: $(STAMP)
	$(BIN)/ruff check harness servers scenarios tests
	$(BIN)/mypy

unit: $(STAMP) $(SDISTS)
	$(BIN)/pytest -q tests

scenarios: $(STAMP)
	$(BIN)/pytest -q scenarios

test: lint unit scenarios

# Explores uvicorn 0.11.3 (uvicorn #748) and 0.3.26 (#241); reports go to reports/.
# Exit status 1 from explore means "found failures", which is the point here.
# DEMO_BUDGET (seconds for 0.11.3; a third of it for 0.3.26) is made small by the test
# that runs every README command.
DEMO_BUDGET ?= 90
demo: $(STAMP)
	$(BIN)/harness explore --server uvicorn==0.11.3 --http h11 --budget $(DEMO_BUDGET) --seed 0 || [ $$? -eq 1 ]
	$(BIN)/harness explore --server uvicorn==0.3.26 --http h11 --budget $$(( $(DEMO_BUDGET) / 3 + 1 )) --seed 0 || [ $$? -eq 1 ]

bench: $(STAMP)
	$(BIN)/python -m harness.tools.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
