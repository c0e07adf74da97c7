# callvault: `make run` makes a demo vault in ./var, ingests the sample calls and serves
# it on https://127.0.0.1:8443 in the foreground; `make test` runs the whole suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the tests and benchmarks drive for real (never mocked or skipped).
APT_PACKAGES := espeak-ng sox libsox-fmt-mp3 lame softhsm2 opensc age openssl nginx wrk chromium
APT_TOOLS := espeak-ng sox lame softhsm2-util age openssl nginx wrk chromium

.PHONY: run test check lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps:
	@missing=""; for t in $(APT_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	test -e /usr/lib/softhsm/libsofthsm2.so || missing="$$missing libsofthsm2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "missing system tools:$$missing -- run: sudo apt-get install $(APT_PACKAGES)" >&2; exit 1; \
	  fi; \
	fi

# Initialise (first time), ingest the samples, then `callvault serve` until Ctrl+C.
run: $(STAMP)
	@$(PY) -m callvault.demo

test: system-deps $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

check: lint test

bench: system-deps $(STAMP)
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) var bench/results
