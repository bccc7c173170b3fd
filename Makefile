# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The render test needs a real browser and Mermaid: Debian's chromium, and mermaid pinned in
# package-lock.json (npm ci). Both are installed on first use, like the venv.
CHROMIUM := /usr/bin/chromium
MERMAID  := node_modules/.installed
# make bench's load-test comparison (harness/tools/loadtest.py) drives a real server with
# Debian's wrk, installed on first use like chromium.
WRK      := /usr/bin/wrk
# ...and its floor comparison counts instructions with valgrind's callgrind.
VALGRIND := /usr/bin/valgrind

.PHONY: test lint unit scenarios demo bench clean fixtures venv render-deps wrk constraints
# (tests/sdists.py fetches into $HARNESS_CACHE/sdists when it is set, as envs.py does)
SDISTS := $(or $(HARNESS_CACHE),.harness-cache)/sdists/.fetched

VENV_PINS := -c constraints.txt
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(VENV_PINS) -e '.[test]'
	touch $(STAMP)

# Rebuilds the venv from the newest releases pyproject.toml allows (no pins) and pins them.
constraints:
	rm -rf $(VENV)
	$(MAKE) --no-print-directory venv VENV_PINS=
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(STAMP)

venv: $(STAMP)

# Source distributions the working-copy and bisect tests build git histories from.
$(SDISTS): tests/sdists.py | $(STAMP)
	$(BIN)/python -m tests.sdists
	touch $(SDISTS)

fixtures: $(SDISTS)

# Debian's package $(1) for $(2), installed only when its binary ($@) is missing: apt-get's
# output goes to a log shown only on failure, and the error names the fix.
define apt_install
	@echo "installing Debian's $(1) ($(2))..."
	@log=$$(mktemp); sudo=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
	if ! { $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	       $$sudo apt-get install -y -qq --no-install-recommends $(1); } >$$log 2>&1; then \
	    tail -n 20 $$log; rm -f $$log; \
	    echo "error: could not install $(1) with apt-get (see above); install Debian's $(1) package by hand (apt-get install $(1)) and run make again" >&2; \
	    exit 1; \
	fi; rm -f $$log
	@[ -x $@ ] || { echo "error: apt-get installed $(1) but there is no $@" >&2; exit 1; }
endef

$(CHROMIUM):
	$(call apt_install,chromium,for the Mermaid render test)

$(MERMAID): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js and npm (Debian: apt-get install npm) and run make again" >&2; exit 1; }
	@npm ci --no-audit --no-fund --loglevel=error >/dev/null || { \
	    echo "error: npm ci failed (see above): the npm registry must be reachable to install mermaid from package-lock.json" >&2; exit 1; }
	@touch $(MERMAID)

render-deps: $(CHROMIUM) $(MERMAID)

$(WRK):
	$(call apt_install,wrk,the load generator of make bench's load test)

wrk: $(WRK)

$(VALGRIND):
	$(call apt_install,valgrind,make bench counts instructions with its callgrind)

lint: $(STAMP)
	$(BIN)/ruff check harness servers scenarios tests
	$(BIN)/mypy

unit: $(STAMP) $(SDISTS) render-deps $(WRK)
	$(BIN)/pytest -q tests

scenarios: $(STAMP)
	$(BIN)/pytest -q scenarios

test: lint unit scenarios

# Explores uvicorn 0.11.3 (uvicorn #748) and 0.3.26 (#241); reports go to reports/demo/,
# which git ignores: the committed showcase in reports/ is not rewritten under the reader.
# Exit status 1 from explore means "found failures", which is the point here.
# DEMO_BUDGET (seconds for 0.11.3; a third of it for 0.3.26) is made small by the test
# that runs every README command.
DEMO_BUDGET ?= 90
DEMO_REPORTS := reports/demo
demo: $(STAMP)
	$(BIN)/harness explore --server uvicorn==0.11.3 --http h11 --budget $(DEMO_BUDGET) --seed 0 --reports $(DEMO_REPORTS) || [ $$? -eq 1 ]
	$(BIN)/harness explore --server uvicorn==0.3.26 --http h11 --budget $$(( $(DEMO_BUDGET) / 3 + 1 )) --seed 0 --reports $(DEMO_REPORTS) || [ $$? -eq 1 ]

bench: $(STAMP) $(WRK) $(VALGRIND)
	$(BIN)/python -m harness.tools.bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
