# Every target installs what it needs first, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: install run test test-fast test-slow coverage e2e lint audit upgrade-smoke bench bench-proxy bench-serve bench-fullstack bench-fullstack-quick bench-workers soak docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,e2e]"
	touch $(STAMP)

install: $(STAMP)

## Serve the demo (examples/smoke_app) on http://127.0.0.1:8000
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/run_smoke_app.sh

## Fast suite in parallel, then the slow suite (real subprocesses and a real Streamlit child), both measured:
## fails under 100 % line coverage of fluxlit/ or 95 % of supervisor/ or proxy/ (the `coverage` target below)
test: coverage

test-fast: install
	$(PYTEST) -n auto -m "not slow"

test-slow: install
	$(PYTEST) -n 2 -m slow

## Coverage gate: fast + slow suites (subprocesses measured too, see [tool.coverage] in pyproject.toml);
## 100 % of fluxlit/, at least 95 % of supervisor/ and of proxy/; writes coverage.xml and htmlcov/
COV := --cov=fluxlit --cov=supervisor --cov=proxy --cov-report=
coverage: install
	rm -f .coverage .coverage.* coverage.xml
	$(PYTEST) -n auto -m "not slow" $(COV)
	$(PYTEST) -n 2 -m slow $(COV) --cov-append
	@# data files of subprocesses that outlived the pytest run (none is the usual case)
	if ls .coverage.* >/dev/null 2>&1; then $(BIN)/python -m coverage combine --append --quiet; fi
	$(BIN)/python -m coverage xml --quiet -o coverage.xml
	$(BIN)/python -m coverage html --quiet -d htmlcov
	@# all three gates report before the target fails
	status=0; \
	$(BIN)/python -m coverage report --include='fluxlit/*' --fail-under=100 --show-missing --skip-covered || status=1; \
	$(BIN)/python -m coverage report --include='supervisor/*' --fail-under=95 --show-missing --skip-covered || status=1; \
	$(BIN)/python -m coverage report --include='proxy/*' --fail-under=95 --show-missing --skip-covered || status=1; \
	exit $$status

## Browser tests: headless Debian Chromium (/usr/bin/chromium) through Playwright
e2e: install
	$(PYTEST) e2e -m e2e

lint: install
	$(BIN)/ruff check fluxlit supervisor proxy tests e2e bench examples scripts/gen_docs.py scripts/soak_mixed.py scripts/soak_uploads.py scripts/security_audit.py
	$(BIN)/ruff format --check fluxlit supervisor proxy tests e2e bench examples scripts/gen_docs.py scripts/soak_mixed.py scripts/soak_uploads.py scripts/security_audit.py
	$(BIN)/mypy --strict fluxlit supervisor proxy
	$(BIN)/ty check fluxlit supervisor proxy

## Docs: generated pages up to date, then a strict site build into site/
docs: install
	$(BIN)/python scripts/gen_docs.py --check
	$(BIN)/python -m mkdocs build --strict --site-dir site

## Known-vulnerability audit of the runtime surface (fluxlit[auth]) and a CycloneDX SBOM, both into artifacts/
AUDIT := .venv-audit
audit:
	$(PYTHON) -m venv $(AUDIT)/target
	$(PYTHON) -m venv $(AUDIT)/tools
	$(AUDIT)/target/bin/python -m pip install --quiet --upgrade pip setuptools
	$(AUDIT)/target/bin/python -m pip install --quiet -e ".[auth]"
	$(AUDIT)/tools/bin/python -m pip install --quiet pip-audit cyclonedx-bom
	$(AUDIT)/tools/bin/python scripts/security_audit.py $(AUDIT)/target/bin/python $(AUDIT)/tools/bin artifacts

## The fast suite against the newest streamlit, fastapi, hypercorn and their stack, in a scratch venv (PRE=1: pre-releases too)
UPGRADE := .venv-upgrade
upgrade-smoke:
	rm -rf $(UPGRADE)
	$(PYTHON) -m venv $(UPGRADE)
	$(UPGRADE)/bin/python -m pip install --quiet --upgrade pip
	$(UPGRADE)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager $(if $(PRE),--pre) -e ".[dev]" \
		streamlit fastapi starlette hypercorn h11 wsproto anyio structlog click prometheus-client httpx
	$(UPGRADE)/bin/python -m pip list 2>/dev/null | grep -i -E '^(streamlit|fastapi|starlette|hypercorn|h11|wsproto|anyio) '
	$(UPGRADE)/bin/python -m pytest -n auto -m "not slow" -q -p no:cacheprovider

## Mixed soak against a running server: BASE_URL (default http://127.0.0.1:8000), COUNT=100000, CONCURRENCY=8
soak: install
	$(BIN)/python scripts/soak_mixed.py

bench-serve: install
	$(BIN)/python bench/serve_timings.py

bench-proxy: install
	$(BIN)/python bench/proxy_bench.py

## Full stack vs fluxlit 0.13.2, Streamlit, FastAPI-on-hypercorn and nginx (needs wrk, nginx, chromium; ~10 min)
bench-fullstack: install
	$(BIN)/python bench/fullstack.py

bench-fullstack-quick: install
	$(BIN)/python bench/fullstack.py --quick

## fluxlit serve --workers 1 vs 2 on the async API route, interleaved (needs wrk)
bench-workers: install
	$(BIN)/python bench/workers_scaling.py --server fluxlit

bench: bench-proxy bench-serve bench-fullstack bench-workers

clean:
	rm -rf $(VENV) .venv-audit .venv-upgrade artifacts .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage .coverage.* coverage.xml site
