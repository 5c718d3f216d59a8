# `make demo` and `make test` set up .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo train-demo test bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,app]'
	touch $@

# the dashboard on the embedded dataset (generated on first use): open http://localhost:5006/main
demo: $(VENV)/.installed
	$(VENV)/bin/panel serve app/main.py --address 127.0.0.1 --port 5006

# a short training run on the embedded dataset, in the terminal
train-demo: $(VENV)/.installed
	$(VENV)/bin/eventprop-lab train --dataset randman-shd --loss sum_exp --epochs 5 --n-hidden 128 \
		--lr 0.003 --out-dir runs/demo

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,app,bench]'
	$(PY) benchmarks/bench_engine.py

# spoken digits synthesised with espeak-ng (apt-get install espeak-ng), then encoded by the cochlea
# (about 15 minutes on 2 cores); see data_cache/README.md
.PHONY: tts-digits
tts-digits: $(VENV)/.installed
	$(PY) scripts/make_tts_digits.py --out data_cache/tts-digits/wav
	$(VENV)/bin/eventprop-lab encode data_cache/tts-digits/wav --out data_cache/tts-digits/tts_digits.h5 \
		--split test=speaker:en-gb+m6,en-gb-x-rp+f1

# English and German spoken digits, 20 classes like SHD, with noise, reverberation and band-limiting:
# synthesised with espeak-ng (about 2 minutes), then encoded (about 15-20 minutes on 2 cores);
# 3 speakers held out for test. See data_cache/README.md
.PHONY: tts-words
tts-words: $(VENV)/.installed
	$(PY) scripts/make_tts_digits.py --set words --out data_cache/tts-words/wav
	$(VENV)/bin/eventprop-lab encode data_cache/tts-words/wav --out data_cache/tts-words/tts_words.h5 \
		--split test=speaker:m6,f3,Annie
