# Entry points. Every target installs what it needs on a fresh Debian 12
# machine (apt packages, venvs, the podman base image) before it runs.
#   make deploy-local   hardened stack on local systemd hosts (podman)
#   make test           everything CI runs; ends with "N passed, N failed"
SHELL := /bin/bash
.DEFAULT_GOAL := help
SCENARIO ?=
# Release of the deploy-local hosts: trixie (Debian 13) or bookworm (Debian 12).
DEBIAN_RELEASE ?= trixie

.PHONY: help deploy-local destroy-local test test-app lint syntax molecule setup bench lock \
	dashboard-picture

help:
	@echo "make deploy-local   deploy redis + guard-proxy onto local systemd hosts (podman;"
	@echo "                    Debian 13, DEBIAN_RELEASE=bookworm for Debian 12)"
	@echo "make destroy-local  remove the local hosts created by deploy-local"
	@echo "make test           run every suite (app, lint, syntax, molecule) like CI"
	@echo "make test-app       app unit and integration tests (Python 3.11 here, 3.13 in a trixie container)"
	@echo "make lint           yamllint + ansible-lint --profile production"
	@echo "make syntax         ansible-playbook --syntax-check for every inventory"
	@echo "make molecule       all Molecule scenarios (SCENARIO=default for one)"
	@echo "make bench          proxy overhead benchmark (bench/)"
	@echo "make dashboard-picture  redraw docs/img/dashboard.png from a real ~6-minute run"
	@echo "make lock           re-pin the app's dependencies with hashes (app/requirements*.lock)"

deploy-local:
	DEBIAN_RELEASE='$(DEBIAN_RELEASE)' scripts/deploy-local.sh

destroy-local:
	scripts/deploy-local.sh --destroy

test:
	scripts/test-all.sh

test-app:
	scripts/test-all.sh app app-trixie

lint:
	scripts/test-all.sh lint

syntax:
	scripts/test-all.sh syntax

molecule:
	scripts/test-all.sh molecule$(if $(SCENARIO),=$(SCENARIO))

setup:
	scripts/setup-app-venv.sh
	scripts/setup-test-hosts.sh

bench:
	scripts/setup-app-venv.sh
	$(MAKE) -C bench

# docs/img/dashboard.png: the Grafana dashboard's panels drawn from a real run (~6 minutes:
# redis-server stopped for 70 s in the middle) of two proxies, the fake Ollama, redis-server
# and Debian's Prometheus 2.42 + redis_exporter (taken out of their .debs, not installed).
dashboard-picture:
	scripts/setup-app-venv.sh
	$(MAKE) -C bench deps
	.venv/bin/python monitoring/render/render_dashboard.py

# app/requirements.lock (wheelhouse, deploys), app/requirements-onnx.lock (the
# same plus the onnx extra: deploys with guard_proxy_models) and
# app/requirements-test.lock (.venv: both extras): pins with hashes.
# LOCK_ARGS=--upgrade or '--upgrade-package NAME' moves pins; without it only
# what pyproject.toml now needs changes.
lock:
	LOCK_ARGS='$(LOCK_ARGS)' scripts/lock-app.sh
