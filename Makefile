# The whole system on one machine, and its tests. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PACKAGES := contracts services/service-kit services/api-gateway services/endpoint-manager services/asset-registry \
	services/inference-dispatcher services/training-manager services/sd-runtime

export API_PORT ?= 8000
export API_KEY ?= local-dev-key

.PHONY: install up down logs status test test-unit test-integration test-e2e lint schemas clean

install: $(STAMP)

$(STAMP): requirements.txt services/sd-runtime/requirements.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -r requirements.txt -r services/sd-runtime/requirements.txt
	$(BIN)/pip install --quiet --no-deps open-clip-torch==3.3.0
	$(BIN)/pip install --quiet --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(p))
	touch $(STAMP)

up: install ## start everything in the background; returns once the API answers
	$(BIN)/python -m infra.local.stack up

down: ## stop everything `make up` started
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m infra.local.stack down; else echo "nothing to stop"; fi

logs: ## follow every log of the running stack
	$(BIN)/python -m infra.local.stack logs

status:
	$(BIN)/python -m infra.local.stack status

test: install lint
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest tests/unit

test-integration: install
	$(BIN)/python -m pytest tests/integration

test-e2e: install
	$(BIN)/python -m pytest tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/python -m contracts.export_schemas --check

schemas: install ## rewrite contracts/schemas and examples after changing an event model
	$(BIN)/python -m contracts.export_schemas

clean: down
	rm -rf $(VENV) .run
