# One target per check. `make test` and `make run` work on a fresh machine: they create
# the virtualenv and install the project first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench call check docs mutmut

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

# The docs site from docs/ (mkdocs.yml), built into a scratch directory: --strict fails on a
# link to a missing page or anchor and on a page left out of the nav. NO_MKDOCS_2_WARNING
# silences Material's notice about MkDocs 2, which is not a problem of these pages.
DOCS_SITE ?= /tmp/mfa-site
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d $(DOCS_SITE)

# Mutation testing of skills/mfa/ against the in-process tests (tests/skills/, tests/agent/):
# most of a day on 2 cores (docs/mutation.md), not in CI. Settings in pyproject.toml; it ends by
# listing the survivors (`.venv/bin/mutmut show NAME` shows one mutant's diff).
mutmut: $(STAMP)
	$(PY) -m pip install -q 'mutmut>=3.2,<4'
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results
