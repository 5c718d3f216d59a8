# `make demo` and `make test` set up .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# until the dashboard lands: a short training run on the embedded dataset (generated on first use)
demo: $(VENV)/.installed
	$(VENV)/bin/eventprop-lab train --dataset randman-shd --loss sum_exp --epochs 5 --n-hidden 128 \
		--lr 0.003 --out-dir runs/demo

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/bench_engine.py
