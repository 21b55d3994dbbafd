# Two commands for a fresh machine: `make demo` and `make test`.
# Both create (or reuse) .venv inside the repo and install what they need from constraints.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck bench lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version' 
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/ccm demo

# The whole suite in two halves at once: the tests against a real Prefect server spend most of
# their ~4 minutes waiting on it (the scheduler's next minute, flow-run heartbeats), so they run
# beside the rest instead of after it; their output follows the rest's. Fails if either half fails.
# `make test PYTEST_ARGS=...` passes arguments to both halves.
test: install
	@log=$$(mktemp); \
	$(BIN)/python -m pytest -m prefect_server -p no:cacheprovider $(PYTEST_ARGS) >$$log 2>&1 & server=$$!; \
	$(BIN)/python -m pytest -m "not prefect_server" $(PYTEST_ARGS); rest=$$?; \
	wait $$server; served=$$?; \
	echo; echo "=== the tests against a real Prefect server (run beside the rest) ==="; cat $$log; rm -f $$log; \
	if [ $$served -eq 5 ]; then served=0; fi; \
	exit $$(( rest || served ))

lint: install
	$(BIN)/ruff check ccm_tasks flows tests bench
	$(BIN)/mypy

# Benchmarks print figures beside a baseline measured in the same run (about an hour in all;
# run on a quiet machine). Each script has --help for shorter runs.
bench: install
	$(BIN)/python bench/bench_inputs.py
	$(BIN)/python bench/bench_dialer.py
	$(BIN)/python bench/bench_reports.py

# Regenerate the pinned set after changing dependency ranges in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
