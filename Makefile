# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU wheel: anything looser pulls gigabytes of CUDA packages.
# faust-streaming without its dependencies: it pins click<8.4 for a CLI imagegen does not use, which
# conflicts with huggingface-hub; its runtime dependencies are in pyproject.toml.
# pgserver only where the machine has no PostgreSQL server binaries.
# Debian's Chromium for the browser tests (Playwright drives it; `playwright install` is never run),
# where it is missing and apt may install it; elsewhere those tests skip, saying why.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps faust-streaming==0.15.3
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || $(PIP) install -q pgserver
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed (needs root and apt): the browser tests will be skipped"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/imagegen dev --sample

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) data test-artifacts .cache
