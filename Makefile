# One target per check. `make test` and `make run` work on a fresh machine: they create
# the virtualenv and install the project first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench call check mutmut

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m agent

call: $(STAMP)
	$(PY) -m agent call

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m bench

check: lint test

# Mutation testing of skills/mfa/ against the fast unit tests (tests/skills/); slow, not in CI.
# Settings in pyproject.toml [tool.mutmut]; see what survived with `.venv/bin/mutmut results`.
mutmut: $(STAMP)
	$(PY) -m pip install -q 'mutmut>=3.2,<4'
	$(VENV)/bin/mutmut run
