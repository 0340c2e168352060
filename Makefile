# The two commands a fresh machine needs (Python 3.11 + make):
#   make run    set up .venv and run the server on 127.0.0.1:3110
#   make test   set up .venv and run the whole test suite (PostgreSQL, and Chromium for the
#               browser tests: installed with apt-get when run as root and missing, else a
#               message saying how)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench bench-peers smoke clean

# --no-compile: Python compiles a module when it is first imported; compiling every
# installed package up front took about 40% of the install's CPU time.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# The bench extra (ROAPI, for bench/peers.py) only where the side-by-side benchmark runs.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -c requirements.lock -e '.[dev,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lakehouse serve

# The suite starts a throwaway PostgreSQL from the server installed on the machine, and the
# browser tests the Chromium installed on it. Three workers on two cores: most of the suite
# waits on the servers it starts (PYTEST_WORKERS=0: one process). The API fuzzing runs beside
# them in a process of its own: its guard counts what the fuzz tests of that process sent, and
# schemathesis's generated tests do not survive pytest-xdist's grouping.
# PYTEST_ARGS: only those tests.
PYTEST_WORKERS ?= 3
FUZZ_TESTS := tests/e2e/test_api_fuzz.py
test: $(STAMP)
	scripts/ensure_postgres.sh
	scripts/ensure_chromium.sh
ifdef PYTEST_ARGS
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
else
	@# The fuzzing alongside the rest; its report is printed after, and either failing fails.
	$(BIN)/pytest $(FUZZ_TESTS) > $(VENV)/fuzz.log 2>&1 & fuzz=$$!; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --ignore=$(FUZZ_TESTS); rest=$$?; \
	wait $$fuzz; fuzzed=$$?; cat $(VENV)/fuzz.log; \
	test $$rest -eq 0 && test $$fuzzed -eq 0
endif

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

smoke: $(STAMP)
	scripts/g0_smoke.sh --backend s3
	scripts/g0_smoke.sh --backend local

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/small_appends.py

# Ours vs ROAPI vs bare Granian + DuckDB, same data; wrk if installed (apt-get install wrk).
# BENCH_PEERS_ARGS="--rounds 2 --seconds 1" is a ~1 minute smoke run.
bench-peers: $(BENCH_STAMP)
	$(BIN)/python bench/peers.py $(BENCH_PEERS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
