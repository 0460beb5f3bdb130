# One-command set-up: `make demo` runs the failed-post recovery demo, `make test` the fast tests,
# `make test-all` every test (what CI runs on the newest Airflow), `make docs` the Sphinx site.
# Both create the virtual environment on first use and reinstall only when pyproject.toml or the
# version (ayrshare_provider/__init__.py, which the installed metadata reports) changes.
# Another Airflow: `make test AIRFLOW_VERSION=2.11.2 VENV=.venv-airflow-2.11.2`.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
# Older Airflow releases break with newer releases of their web stack: .ci pins those for them.
CONSTRAINTS := $(wildcard .ci/constraints-airflow-$(AIRFLOW_VERSION).txt)
PYTEST_ARGS ?=
EMULATOR := ayrshare-emulator

.PHONY: install demo test test-all docs production lint package-check bench clean

install: $(STAMP)

# The two distributions of this repository, editable: the provider, and the emulator its extra names.
$(STAMP): pyproject.toml ayrshare_provider/__init__.py $(EMULATOR)/pyproject.toml $(EMULATOR)/ayrshare_emulator/__init__.py $(CONSTRAINTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip  # pip >= 25.1 installs dependency groups
	$(VENV)/bin/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ./$(EMULATOR) -e ".[emulator]" \
	  --group dev $(addprefix -c ,$(CONSTRAINTS))
	rm -f $(VENV)/.installed-airflow-*
	touch $@

# The demo (.ci/demo.py, dev tooling: in neither wheel) runs on the installed packages; its default
# DAGs folder is the installed ayrshare_provider.example_dags, which the editable install maps to
# example_dags/: this also checks that mapping.
demo: install
	$(VENV)/bin/python .ci/demo.py

# The fast loop for a change: unit, emulator contract and the shorter dag.test() runs. Left out:
# the dag.test() runs of over 30 s on Airflow 3.0 to 3.2 (long_run, scale, ledger), the fault soak,
# and the whole-Airflow stacks (stack, production); `make test-all` runs them.
FAST := not long_run and not scale and not ledger and not soak and not stack and not production
test: install
	$(VENV)/bin/python -m pytest -m "$(FAST)" $(PYTEST_ARGS)

test-all: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The documentation site (docs/, Sphinx with MyST), warnings as errors; its tools are the `docs` group.
docs: install
	$(VENV)/bin/python -m pip install -q --group docs
	$(VENV)/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

# The production-shaped stack alone: PostgreSQL, CeleryExecutor on Redis, two hosts of a worker and a
# triggerer each, both workers and a triggerer SIGKILLed mid-recovery (Debian's postgresql and
# redis-server; ~6 minutes).
production: install
	$(VENV)/bin/python -m pytest -s -m production $(PYTEST_ARGS)

# Ruff with a selection close to Airflow's (pyproject.toml), its formatter, and mypy on the package.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The release artifacts of both distributions: build each sdist and wheel (the wheel from the sdist),
# check their metadata and the provider wheel's files; install the two wheels alone into a fresh
# venv with Airflow, check that Airflow finds the provider and its connection type, and run the
# README's demo from outside the clone; install the emulator's wheel into a venv without Airflow
# and drive it there with Ayrshare's official SDK.
# (grep without -q reads all of Airflow's output, which otherwise dies on a broken pipe.)
package-check: install
	rm -rf dist .venv-wheel .venv-emulator
	$(VENV)/bin/python -m build --outdir dist .
	$(VENV)/bin/python -m build --outdir dist $(EMULATOR)
	$(VENV)/bin/twine check --strict dist/*
	$(VENV)/bin/python .ci/check_wheel.py dist/airflow_provider_ayrshare-*.whl
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" dist/*.whl $(addprefix -c ,$(CONSTRAINTS))
	home=$$(mktemp -d) && cd /tmp && \
	  AIRFLOW_HOME=$$home $(CURDIR)/.venv-wheel/bin/airflow providers list -o plain | grep "airflow-provider-ayrshare" >/dev/null && \
	  AIRFLOW_HOME=$$home $(CURDIR)/.venv-wheel/bin/airflow providers hooks -o plain | grep "ayrshare" >/dev/null && \
	  echo "the two wheels install alone; Airflow lists the provider and the ayrshare connection type"
	cd /tmp && $(CURDIR)/.venv-wheel/bin/python $(CURDIR)/.ci/demo.py
	@echo "the demo ran from /tmp on the installed wheels and their example DAGs"
	$(PYTHON) -m venv .venv-emulator
	.venv-emulator/bin/python -m pip install -q dist/ayrshare_emulator-*.whl "social-post-api>=1.3"
	cd /tmp && $(CURDIR)/.venv-emulator/bin/python $(CURDIR)/.ci/check_emulator_alone.py

# Side-by-side measurements against the http provider and the official SDK: bench/RESULTS.md.
bench: install
	$(VENV)/bin/python -m bench.run_all

clean:
	rm -rf .venv .venv-airflow-* .venv-wheel .venv-emulator dist .pytest_cache *.egg-info $(EMULATOR)/*.egg-info docs/_build
