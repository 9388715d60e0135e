# The verbs a newcomer looks for. Each creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
# jsii (the CDK's bridge to Node) warns on every run about Node 20's end of life.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: install browser local test lint synth bench deploy clean

# Not --quiet: a first install takes minutes, and pip's lines (Collecting …) show it is working.
$(STAMP): pyproject.toml
	@echo "==> Creating $(VENV) and installing Continuum's dependencies (first run only, about 2 minutes)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> Upgrading pip"
	$(PY) -m pip install --quiet --upgrade pip
	@echo "==> Installing Continuum and its dependencies (boto3, moto, aws-cdk-lib, pytest, ...)"
	$(PY) -m pip install -e '.[dev]'
	@echo "==> Ready: $(VENV) is set up"
	touch $(STAMP)

install: $(STAMP) browser

## Headless Chromium and its driver for the preference page's browser test (tests/e2e), from apt when
## missing: as root, or through sudo. Elsewhere install them yourself and set CHROMIUM / CHROMEDRIVER.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
browser:
	@if [ ! -x "$(CHROMIUM)" ] || [ ! -x "$(CHROMEDRIVER)" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "==> Installing chromium and chromium-driver with apt (the preference page's browser test)"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      chromium chromium-driver; \
	  else \
	    echo "==> No apt-get: install Chromium and chromedriver, then set CHROMIUM and CHROMEDRIVER" >&2; \
	  fi; \
	fi

## Run the whole engine locally on moto (no AWS account, no Docker); Ctrl-C stops it.
local: $(STAMP)
	$(PY) -m infra.local --port $(PORT)

## Run the whole test suite.
test: $(STAMP) browser
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared functions infra

## Write the CloudFormation templates to cdk.out (cdk-nag runs during synth). For reading only:
## placeholder settings are warned about, not refused.
synth: $(STAMP)
	$(PY) -m infra.app --inspect

bench: $(STAMP)
	$(PY) -m benchmarks

## Deploy to the AWS account in your environment (needs credentials and a bootstrapped account).
## Refused while a setting is missing or still cdk.json's placeholder; set them in cdk.json or with
## e.g. make deploy CDK_ARGS="-c continuum:EMAIL_SENDER=news@yourdomain.com".
deploy: $(STAMP)
	npx --yes aws-cdk@2 deploy --all -c continuum:strict=true $(CDK_ARGS)

clean:
	rm -rf $(VENV) cdk.out
