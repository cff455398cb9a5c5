# Two commands for a fresh Debian machine with Python 3.11: `make demo`, `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/netan demo

test: setup
	$(VENV)/bin/pytest -n 2 -q -p no:cacheprovider

test-fast: setup
	$(VENV)/bin/pytest -n 2 -q -m "not slow and not netns"

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) netan-demo-out *.egg-info
