# Two commands do all the set-up on a fresh machine:
#   make demo   install what is missing, then run `proc-ml demo`
#   make test   install what is missing, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.proc-ml-installed

.PHONY: setup demo test test-all bench clean

setup: $(STAMP)

# torch==2.13.0 first: on the CI and dev machines it resolves to a local CPU wheel, while a
# bare `torch` requirement would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/proc-ml demo

test: setup
	$(PY) -m pytest

# The slow acceptance runs as well (long training runs, 200-asset batches).
test-all: setup
	$(PY) -m pytest -m "slow or not slow"

# Every benchmark runs; those that missed a target (exit 1) are listed at the end.
bench: setup
	@missed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "missed a target:$$missed"; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache proc_ml_demo
