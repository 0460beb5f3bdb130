# One-command set-up: `make demo` runs the failed-post recovery demo, `make test` the tests.
# Both create the virtual environment on first use and reinstall only when pyproject.toml changes.
# Another Airflow: `make test AIRFLOW_VERSION=2.11.2 VENV=.venv-airflow-2.11`.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
# Older Airflow releases break with newer releases of their web stack: .ci pins those for them.
CONSTRAINTS := $(wildcard .ci/constraints-airflow-$(AIRFLOW_VERSION).txt)
PYTEST_ARGS ?=

.PHONY: install demo test production lint package-check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]" $(addprefix -c ,$(CONSTRAINTS))
	rm -f $(VENV)/.installed-airflow-*
	touch $@

demo: install
	$(VENV)/bin/python -m ayrshare_provider.emulator.demo --dags-folder example_dags

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The production-shaped stack alone: PostgreSQL, CeleryExecutor on Redis, two workers and two
# triggerers, one of each SIGKILLed mid-recovery (Debian's postgresql and redis-server; ~10 minutes).
production: install
	$(VENV)/bin/python -m pytest -s -m production $(PYTEST_ARGS)

# Ruff with a selection close to Airflow's (pyproject.toml), its formatter, and mypy on the package.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The release artifacts: build the sdist and wheel, check their metadata, install the wheel alone
# into a fresh venv with Airflow, and check that Airflow finds the provider and its connection type.
package-check: install
	rm -rf dist .venv-wheel
	$(VENV)/bin/python -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" dist/*.whl
	home=$$(mktemp -d) && cd /tmp && \
	  AIRFLOW_HOME=$$home $(CURDIR)/.venv-wheel/bin/airflow providers list -o plain | grep -q "airflow-provider-ayrshare" && \
	  AIRFLOW_HOME=$$home $(CURDIR)/.venv-wheel/bin/airflow providers hooks -o plain | grep -q "ayrshare" && \
	  echo "the wheel installs alone; Airflow lists the provider and the ayrshare connection type"

# Side-by-side measurements against the http provider and the official SDK: bench/RESULTS.md.
bench: install
	$(VENV)/bin/python -m pip install -q social-post-api
	cd bench && ../$(VENV)/bin/python run_all.py

clean:
	rm -rf .venv .venv-airflow-* .venv-wheel dist .pytest_cache *.egg-info
