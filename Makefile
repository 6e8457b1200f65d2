# Two commands set everything up on a fresh machine:
#   make run    create .venv, install, run the pipeline (dvc repro) on the embedded default data
#   make test   create .venv, install, run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
PYTEST_ARGS ?=

.PHONY: install run test test-all lint bench clean lock

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build first, pinned: nothing after it may pull another torch build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	dvc repro

test: install
	pytest $(PYTEST_ARGS)

test-all: install
	pytest -m "heavy or not heavy" $(PYTEST_ARGS)

lint: install
	ruff check . && ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache

# Pin what is installed now (after a dependency change in pyproject.toml): the next install uses these versions.
lock: install
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^dermeval-ops'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
