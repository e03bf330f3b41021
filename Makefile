# The whole system on one machine, and its tests. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PACKAGES := contracts services/service-kit services/api-gateway services/endpoint-manager services/asset-registry \
	services/inference-dispatcher services/training-manager services/webhooks services/sd-runtime clients/sdmw-cli

export API_PORT ?= 8000
export API_KEY ?= local-dev-key

.PHONY: install up down restart logs status test test-unit test-integration test-e2e lint schemas clean distclean \
	chaos package synth bootstrap deploy destroy diff localstack test-localstack

install: $(STAMP)

$(STAMP): requirements.txt services/sd-runtime/requirements.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -r requirements.txt -r services/sd-runtime/requirements.txt
	$(BIN)/pip install --quiet --no-deps open-clip-torch==3.3.0
	$(BIN)/pip install --quiet --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(p))
	touch $(STAMP)

up: install ## start everything in the background, supervised; puts back the data `make down` kept; returns once the API answers
	$(BIN)/python -m infra.local.stack up

down: ## stop everything `make up` started; buckets, tables and queued messages are kept for the next `make up`
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m infra.local.stack down; else echo "nothing to stop"; fi

restart: ## SERVICE=<name> restarts that service's processes; without SERVICE, `make down` then `make up` (data kept)
	@if [ -n "$(SERVICE)" ]; then $(BIN)/python -m infra.local.stack restart $(SERVICE); \
	else $(MAKE) --no-print-directory down && $(MAKE) --no-print-directory up; fi

logs: ## follow every log of the running stack
	$(BIN)/python -m infra.local.stack logs

status:
	$(BIN)/python -m infra.local.stack status

test: install lint synth
	$(BIN)/python -m pytest

# LocalStack on this machine, no Docker (`SDMW_EMULATOR=localstack make up` starts it): its pinned release in a
# venv of its own, with a Python >= 3.13 found here (infra/localstack/install.sh).
LOCALSTACK_VENV := .localstack/venv

localstack: ## install LocalStack (pinned) into .localstack/venv, for SDMW_EMULATOR=localstack without Docker
	infra/localstack/install.sh $(LOCALSTACK_VENV)

# The seed scenarios, the WebUI extension's flows and the chaos test's short form, against LocalStack on this
# machine (each test stack starts its own); `make test` runs everything on the embedded moto server.
LOCALSTACK_E2E := tests/e2e/test_endpoint_deployment.py tests/e2e/test_assets.py tests/e2e/test_inference.py \
	tests/e2e/test_training.py tests/e2e/test_cli.py tests/e2e/test_webui_extension.py tests/e2e/test_chaos.py

test-localstack: install localstack
	SDMW_TEST_EMULATOR=localstack $(BIN)/python -m pytest $(LOCALSTACK_E2E)

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

chaos: install ## faults under load (bench/chaos.py: kills, duplicates, poison, a 30 s pause, edge kills, a trickling webhook receiver, same-name deploys); non-zero if anything fails
	$(BIN)/python -m bench.chaos

clean: ## a clean start: stop everything without keeping the data, and remove it, the logs and build outputs
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m infra.local.stack clean; fi
	rm -rf .run build

distclean: clean ## also remove the virtual environment
	rm -rf $(VENV) .localstack

# --- AWS (infra/aws, README "Deploy to AWS") ---------------------------------------------------
# SERVICE=<name> deploys, diffs or destroys that service's stack alone; without it, every stack.
STACK_PREFIX ?= sdmw
CDK_DIR := infra/aws
CDK := $(CDK_DIR)/node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export CDK_DISABLE_CLI_TELEMETRY := true
CDK_FLAGS := --no-notices -c prefix=$(STACK_PREFIX)
STACKS = $(if $(SERVICE),--exclusively $(STACK_PREFIX)-$(SERVICE),--all)

$(CDK): $(CDK_DIR)/package.json $(CDK_DIR)/package-lock.json
	cd $(CDK_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(CDK)

package: install ## the Lambda code, the dependency layer (Linux arm64 wheels) and the image's build context
	$(BIN)/python -m infra.aws.package

synth: package $(CDK) ## every stack's template, checked by cdk-nag (in synth), cfn-lint and AWS's deploy-time limits; offline
	rm -rf build/cdk.out  # only this synth's templates are checked, never a stack an earlier one left
	cd $(CDK_DIR) && ./node_modules/.bin/cdk synth --quiet $(CDK_FLAGS) $(if $(SERVICE),-c only=$(SERVICE))
	$(BIN)/cfn-lint -- build/cdk.out/*.template.json
	$(BIN)/python -m infra.aws.limits build/cdk.out $(if $(SERVICE),--partial)

bootstrap: package $(CDK) ## once per account and region, with AWS credentials: the CDK's asset bucket and roles
	$(BIN)/python -m infra.aws.preflight --bootstrapping
	cd $(CDK_DIR) && ./node_modules/.bin/cdk bootstrap $(CDK_FLAGS)

diff: package $(CDK)
	cd $(CDK_DIR) && ./node_modules/.bin/cdk diff $(CDK_FLAGS) $(STACKS)

# Kept data (tables, bucket, repository, secrets) from an earlier deployment is adopted, not re-created.
deploy: package $(CDK) ## needs AWS credentials; the image: Docker here, RUNTIME_IMAGE=<uri>, or IMAGE_BUILD=codebuild
	$(BIN)/python -m infra.aws.preflight --prefix $(STACK_PREFIX) $(if $(SERVICE),--service $(SERVICE))
	cd $(CDK_DIR) && ./node_modules/.bin/cdk deploy $(CDK_FLAGS) $(if $(RUNTIME_IMAGE),-c runtime_image=$(RUNTIME_IMAGE)) \
		$(if $(RETAIN_DATA),-c retain_data=$(RETAIN_DATA)) $(if $(ALARM_EMAIL),-c alarm_email=$(ALARM_EMAIL)) \
		$(if $(IMAGE_BUILD),-c image_build=$(IMAGE_BUILD)) --import-existing-resources \
		--require-approval never --outputs-file ../../build/outputs.json $(STACKS)
	$(if $(filter codebuild,$(IMAGE_BUILD)),$(BIN)/python -m infra.aws.codebuild_run --prefix $(STACK_PREFIX))

destroy: $(CDK) ## data (bucket, tables, repository) is kept unless RETAIN_DATA=false was set at deploy; secrets always
	cd $(CDK_DIR) && ./node_modules/.bin/cdk destroy $(CDK_FLAGS) --force $(STACKS)
