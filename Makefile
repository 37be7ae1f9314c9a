# Developer entry points. Every target bootstraps the virtualenv it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python 3.13 (the Lambda runtime) where one actually runs: a plain python3.13, else pyenv's
# 3.13 through PYENV_VERSION, else python3 (the code also runs on 3.11).
PYENV_313 := $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | tail -n 1)
PYTHON := $(shell \
  if python3.13 --version >/dev/null 2>&1; then echo python3.13; \
  elif [ -n "$(PYENV_313)" ] && PYENV_VERSION=$(PYENV_313) python3.13 --version >/dev/null 2>&1; then echo "env PYENV_VERSION=$(PYENV_313) python3.13"; \
  else echo python3; fi)

# The venv's bin first: it holds a working python3.13, which `sam build` looks for on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

FN ?= SenderFunction
EVENT ?= events/sender/sqs-batch.json
ENV ?= default
EVENTS ?= 200
FAILURE_RATE ?= 0.3

.PHONY: help venv demo test lint typecheck validate unit build deploy invoke serve bench soak clean browser screenshots

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The layer's pins (layers/notifications/requirements.txt, without extras: pip refuses them in
# constraints) constrain the venv too, so the tests run the versions the functions ship with.
$(STAMP): pyproject.toml layers/notifications/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	sed 's/\[[^]]*\]//' layers/notifications/requirements.txt > $(VENV)/layer-constraints.txt
	$(BIN)/python -m pip install --quiet -e '.[dev]' --constraint $(VENV)/layer-constraints.txt
	touch $(STAMP)

venv: $(STAMP) ## create the virtualenv (.venv) with everything installed

demo: $(STAMP) ## run the whole pipeline on embedded moto and print the dashboard
	$(BIN)/notifyctl local demo --events $(EVENTS) --failure-rate $(FAILURE_RATE)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy on the shared layer package
	$(BIN)/mypy

# cfn-lint's serverless rules (cfn-lint-serverless), with these deliberate findings skipped
# (tests/reliability/test_least_privilege.py asserts the same list on the translated template):
#   ES6000 EventsDLQ and NotificationsDLQ are the dead-letter queues themselves;
#   WS1004 every function logs to its own LogGroup with RetentionInDays via LoggingConfig,
#          which the rule does not follow;
#   ES1007, ES4000 the breaker check runs every minute and is idempotent: the next tick repairs
#          a failed one, and a DLQ of stale ticks would hold nothing worth replaying;
#   ES7000 alert emails: the ledger keeps every dead letter and the DeadLetters alarm fires too;
#   WS1002 the feedback function is invoked by EventBridge (SES) and CloudWatch Logs (SMS);
#   ES1001 OnFailure destinations are for stream sources; SQS sources use the queues' RedrivePolicy.
SERVERLESS_RULES_SKIPPED := ES6000,WS1004,ES1007,ES4000,ES7000,WS1002,ES1001

validate: $(STAMP) ## cfn-lint (with serverless rules) and sam validate --lint on template.yaml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules --ignore-checks $(SERVERLESS_RULES_SKIPPED)
	$(BIN)/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)

unit: $(STAMP) ## unit tests only (no moto)
	$(BIN)/python -m pytest tests/unit -q

# The browser tests (tests/browser) drive Debian's chromium with Playwright (no browser
# download: Playwright launches the system one). As root with apt, a missing chromium is
# installed; anywhere else the tests skip with a loud message (CHROMIUM=/path picks another).
browser: ## install Debian's chromium for the browser tests when root and missing
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$CHROMIUM" ]; then \
	  true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get) for tests/browser"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "!!! apt-get could not install chromium: tests/browser will be SKIPPED"; \
	else \
	  echo "!!! no chromium and not root: tests/browser will be SKIPPED (install chromium or set CHROMIUM)"; \
	fi

# Tests marked `soak` (the 2,000-notification chaos run, the memory growth run, the in-process
# demo) take longer than make test's 12-minute budget on 2 CPUs allows: make soak runs them.
test: lint typecheck validate browser ## lint, type checks, template validation and the pytest suite (all but the soak runs)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not soak"

build: $(STAMP) ## sam build (needs a working python3.13 on PATH)
	$(BIN)/sam build --template template.yaml

deploy: build ## sam deploy to the samconfig environment ENV (default, staging, prod)
	$(BIN)/sam deploy --config-env $(ENV)

invoke: build ## sam local invoke FN with EVENT (needs Docker)
	$(BIN)/sam local invoke $(FN) -e $(EVENT) --env-vars events/env.json

serve: $(STAMP) ## the local stack on moto server at 127.0.0.1 until Ctrl-C
	$(BIN)/notifyctl local serve

screenshots: $(STAMP) browser ## regenerate docs/images/preference-center.png with the browser test
	mkdir -p docs/images
	PREFERENCE_SCREENSHOT=docs/images/preference-center.png $(BIN)/python -m pytest -q -n 0 tests/browser

bench: $(STAMP) ## benchmarks: print figures, never fail on timing
	$(BIN)/python bench/run.py

# Property tests (Hypothesis) with a fresh seed and SOAK_EXAMPLES_FACTOR (10) times the examples;
# make test runs them derandomized (tests/properties.py). Not in CI. The seed is printed first
# and again on a failure: make soak SOAK_SEED=<seed> replays the same examples.
PROPERTY_TESTS := tests/reliability/test_randomized_schedules.py tests/reliability/test_bad_input.py tests/unit/test_email_mime.py
ifndef SOAK_SEED
SOAK_SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
SOAK_EXAMPLES_FACTOR ?= 10

soak: $(STAMP) ## long runs kept out of make test: property tests with a fresh seed and 10x examples (prints the seed), the tests marked soak, the 2,000-notification contention burst
	@echo "soak: Hypothesis seed $(SOAK_SEED), $(SOAK_EXAMPLES_FACTOR)x examples"
	@HYPOTHESIS_PROFILE=soak SOAK_EXAMPLES_FACTOR=$(SOAK_EXAMPLES_FACTOR) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-seed=$(SOAK_SEED) $(PROPERTY_TESTS) \
	  || { echo "soak FAILED with Hypothesis seed $(SOAK_SEED); replay: make soak SOAK_SEED=$(SOAK_SEED)"; exit 1; }
	@echo "soak passed with Hypothesis seed $(SOAK_SEED)"
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m soak
	CONTENTION_BURST=2000 $(BIN)/python -m pytest -q -n 0 tests/concurrency/test_contention.py -k burst

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache build/test-artifacts
