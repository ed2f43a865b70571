# zenLogic Customer Service — developer tasks (GNU make).
#
#   make run          migrate, seed the demo data and run the service (embedded PostgreSQL unless DATABASE_URL)
#   make test         the test suite (PYTEST_ARGS='-k customers' to pass arguments to pytest)
#   make bench        every benchmark, ending with one line per ratio (BENCH_ARGS='--quick': a few minutes)
#   make lint / fmt   ruff + mypy / reformat
#   make protos       regenerate the gRPC code from protos/ into ./zenlogic (done by run and test)
#   make clean-data   delete .data/ (the embedded database)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BOOTSTRAP_PYTHON := $(or $(shell command -v python3.11 2>/dev/null),$(shell command -v python3 2>/dev/null),python3)

PROTO_FILES := $(sort $(shell find protos -name '*.proto' 2>/dev/null))
PROTOS_STAMP := zenlogic/.generated

PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv install protos run test bench lint fmt clean-data

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

# --- virtualenv: (re)installed only when pyproject.toml changes -------------------------------------------
venv install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	@touch $@

# --- gRPC code: protos/zenlogic/<svc>/v1/*.proto -> zenlogic/<svc>/v1/*_pb2*.py(i) -----------------------------
ifeq ($(PROTO_FILES),)
protos: $(INSTALLED)
	@echo "protos: no .proto files under protos/, nothing to generate"
else
protos: $(PROTOS_STAMP)

# regenerated when a .proto file or the installed packages (grpcio-tools, protobuf) change
$(PROTOS_STAMP): $(PROTO_FILES) $(INSTALLED)
	@mkdir -p zenlogic
	@find zenlogic -name '*_pb2*.py*' -delete
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. --pyi_out=. $(PROTO_FILES)
	@touch $@
endif

# --- run / test (both through config.launcher: embedded PostgreSQL unless DATABASE_URL is set) ---------------
run: $(INSTALLED) protos
	$(PY) -m config.launcher $(PY) -m config.run

test: $(INSTALLED) protos
	$(PY) -m config.launcher $(PY) -m pytest $(PYTEST_ARGS)

# in databases of its own next to the configured one (embedded PostgreSQL unless DATABASE_URL)
bench: $(INSTALLED) protos
	$(PY) -m config.launcher $(PY) bench/run.py $(BENCH_ARGS)

# --- code quality ----------------------------------------------------------------------------------------------
lint: $(INSTALLED) protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# --- data -------------------------------------------------------------------------------------------------------
clean-data:
	@if [ -f .data/pg/postmaster.pid ] && kill -0 "$$(head -n1 .data/pg/postmaster.pid)" 2>/dev/null; then \
		echo "warning: the embedded PostgreSQL still runs (pid $$(head -n1 .data/pg/postmaster.pid)); stop make run/test first"; \
	fi
	rm -rf .data
