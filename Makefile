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
# Apache Kafka's jars, once, with Maven (imagegen/devstack/pom.xml; needs a JDK 17 and mvn).
# The AsyncAPI 3 specification's JSON Schema (@asyncapi/specs, with npm) for the contract test.
# pgserver only where the machine has no PostgreSQL server binaries.
# Debian's Chromium for the browser tests (Playwright drives it; `playwright install` is never run) and
# kcat (librdkafka's client, for the any-client story), where missing and apt may install them;
# elsewhere those tests skip, saying why.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps faust-streaming==0.15.3
	$(PY) -c "from imagegen.devstack import maven; maven.main()"
	@command -v npm >/dev/null && npm install --no-save --silent --prefix .cache/asyncapi @asyncapi/specs@6.11.1 || \
		echo "npm not found: the AsyncAPI specification check will be skipped"
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || $(PIP) install -q pgserver
	@missing="$$(command -v chromium >/dev/null || echo chromium) $$(command -v kcat >/dev/null || echo kcat)"; \
	if [ -n "$$(echo $$missing)" ]; then { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || \
		echo "not installed (needs root and apt):$$missing; the tests that need them will be skipped"; fi
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
