# Two commands a newcomer needs; each sets up .venv itself on a fresh machine.
#   make demo  - install, then run the main job on the embedded default
#   make test  - install, then run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint

$(BIN)/rexnet: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first, pinned to the builds this machine serves from disk
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/rexnet

install: $(BIN)/rexnet

# Main job: train rexnet_100 on the embedded digits (quick preset, about a minute on 2 CPU cores),
# printing per-epoch progress and the final top-1/top-5; the run folder is under runs/.
demo: install
	$(BIN)/rexnet train --out runs/demo

# Passive OpenMP waiting: on a shared or small CPU, spinning idle threads slow torch 5-20x.
test: export OMP_WAIT_POLICY = PASSIVE
test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
