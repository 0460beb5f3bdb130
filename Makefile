# One-command set-up: `make demo` runs the failed-post recovery demo, `make test` the tests.
# Both create the virtual environment on first use and reinstall only when pyproject.toml changes.
# Another Airflow: `make test AIRFLOW_VERSION=2.11.2 VENV=.venv-airflow-2.11`.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
PYTEST_ARGS ?=

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]"
	rm -f $(VENV)/.installed-airflow-*
	touch $@

demo: install
	$(VENV)/bin/python -m ayrshare_provider.emulator.demo --dags-folder example_dags

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Ruff with a selection close to Airflow's (pyproject.toml), and mypy on the package.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Side-by-side measurements against the http provider and the official SDK: bench/RESULTS.md.
bench: install
	$(VENV)/bin/python -m pip install -q social-post-api
	cd bench && ../$(VENV)/bin/python run_all.py

clean:
	rm -rf .venv .venv-airflow-* .pytest_cache *.egg-info
