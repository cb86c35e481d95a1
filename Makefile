# pianorhythm-tui: `make run` plays, `make test` checks everything. Both set up the machine first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# System packages: the synth library, a GM soundfont, JACK (its dummy driver carries MIDI in tests),
# Redis (multi-server tests), tmux (end-to-end terminal tests), openssl (TLS tests make a certificate),
# PulseAudio with its utilities (a null sink and parec test the desktop audio path) and haproxy (the
# README's two-node recipe, tests/cluster/test_recipe.py).
APT_PACKAGES := libfluidsynth3 timgm6mb-soundfont jackd2 redis-server tmux openssl pulseaudio pulseaudio-utils haproxy

.PHONY: run server test lint bench proto system venv lock clean

system:
	@scripts/install_system.sh $(APT_PACKAGES)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: system venv
	$(BIN)/pianorhythm-tui $(ARGS)

server: system venv
	$(BIN)/pianorhythm-tui --server $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collected no test; make fails on any non-zero exit, so that fails too.
test: system venv lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Every benchmark in short settings (~15 min), then bench/results.json and the table in bench/README.md;
# BENCH_ARGS="--only relay_200x50 capacity" runs some (bench/_suite.py lists them).
bench: system venv
	$(BIN)/python bench/_suite.py $(BENCH_ARGS)

# The newest versions pyproject.toml allows, written to constraints.txt (then run `make test` on them).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | { head -2 constraints.txt; cat; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .lock-venv

proto: venv
	PYTHON=$(BIN)/python scripts/proto_codegen.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
