# zenLogic Customer Service — developer tasks (GNU make).
#
#   make run          migrate, seed the demo data and run the service (embedded PostgreSQL and Redis unless
#                     DATABASE_URL / REDIS_URL and CELERY_BROKER_URL); installs only what running needs
#   make test         the test suite (PYTEST_ARGS='-k customers' to pass arguments to pytest); adds the dev tools
#   make install      the virtualenv with the test and lint tools
#   make bench        every benchmark, ending with one line per ratio (BENCH_ARGS='--quick': a few minutes)
#   make lint / fmt   ruff + mypy + import contracts / reformat
#   make protos       regenerate the gRPC code from protos/ into ./zenlogic (done by run and test)
#   make messages     extract the translatable strings into locale/es and compile the catalogue (needs gettext)
#   make clean-data   delete .data/ (the embedded database)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEV_INSTALLED := $(VENV)/.installed-dev
BOOTSTRAP_PYTHON := $(or $(shell command -v python3.11 2>/dev/null),$(shell command -v python3 2>/dev/null),python3)

PROTO_FILES := $(sort $(shell find protos -name '*.proto' 2>/dev/null))
PROTOS_STAMP := zenlogic/.generated

PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv install protos run test bench lint fmt messages clean-data

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

# --- virtualenv: (re)installed only when pyproject.toml changes; `run` needs the runtime only -------------------
venv: $(INSTALLED)
install: $(DEV_INSTALLED)

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e .
	@touch $@

$(DEV_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
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

test: $(DEV_INSTALLED) protos
	$(PY) -m config.launcher $(PY) -m pytest $(PYTEST_ARGS)

# in databases of its own next to the configured one (embedded PostgreSQL unless DATABASE_URL)
bench: $(INSTALLED) protos
	$(PY) -m config.launcher $(PY) bench/run.py $(BENCH_ARGS)

# --- code quality ----------------------------------------------------------------------------------------------
lint: $(DEV_INSTALLED) protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(DEV_INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# --- translations: locale/<lang>/LC_MESSAGES/django.po (edited by hand) -> django.mo (committed, so that run and
# test work without gettext) ---------------------------------------------------------------------------------------
MESSAGES_IGNORE := --ignore='.venv/*' --ignore='tests/*' --ignore='bench/*' --ignore='zenlogic/*' --ignore='staticfiles/*'

messages: $(INSTALLED)
	$(PY) manage.py makemessages -l es --no-location $(MESSAGES_IGNORE)
	$(PY) manage.py compilemessages -l es --ignore='.venv'

# --- data -------------------------------------------------------------------------------------------------------
clean-data:
	@if [ -f .data/pg/postmaster.pid ] && kill -0 "$$(head -n1 .data/pg/postmaster.pid)" 2>/dev/null; then \
		echo "warning: the embedded PostgreSQL still runs (pid $$(head -n1 .data/pg/postmaster.pid)); stop make run/test first"; \
	fi
	@for f in .data/redis/redis-*.pid; do \
		if [ -f "$$f" ] && kill -0 "$$(cat "$$f")" 2>/dev/null; then echo "warning: an embedded Redis still runs (pid $$(cat "$$f"))"; fi; \
	done
	rm -rf .data
