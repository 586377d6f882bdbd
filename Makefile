# djq: `make demo` runs the demo, `make test` runs the tests. Each sets up .venv on first
# use; with no DATABASE_URL both use an embedded PostgreSQL kept under .djq/.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EMBEDDED := $(PY) -m djq.contrib.embedded run --
PYTEST_ARGS ?=

.PHONY: demo test bench lint typecheck check clean venv

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(EMBEDDED) $(PY) manage.py djq_demo

test: $(STAMP)
	$(EMBEDDED) $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(EMBEDDED) $(PY) -m bench $(BENCH_ARGS)

check: $(STAMP)
	$(EMBEDDED) sh -c '$(PY) manage.py check && $(PY) manage.py makemigrations --check --dry-run && $(VENV)/bin/mypy djq'

clean:
	rm -rf $(VENV) .djq .pytest_cache .mypy_cache
