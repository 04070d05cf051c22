# Two commands a newcomer needs; each sets up .venv itself on a fresh machine.
#   make demo  - install what training needs, then run the main job on the embedded default
#   make test  - install the test extras too, then run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# one stamp per set-up: the demo installs only what training needs; the tests add the [test] extra on top
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test install lint

$(DEMO_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first, pinned to the builds this machine serves from disk
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(DEMO_STAMP)
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(TEST_STAMP)

# Main job: train rexnet_100 on the embedded digits (quick preset, about a minute on 2 CPU cores),
# printing per-epoch progress and the final top-1/top-5; the run folder is runs/demo.
# Repeatable: a finished run is shown, not trained again (remove runs/demo for a new one); an
# interrupted one is resumed.
demo: $(DEMO_STAMP)
	@if $(BIN)/python -c "import json, sys; sys.exit(json.load(open('runs/demo/summary.json')).get('status') != 'completed')" 2>/dev/null; then \
		echo "runs/demo holds a finished run (rm -r runs/demo to train again):"; \
		$(BIN)/python -c "import json; s = json.load(open('runs/demo/summary.json')); print('  ' + ', '.join(f'{k} {s[k]:.2f}' for k in ('best_top1', 'val_top1', 'val_top5', 'test_top1') if isinstance(s.get(k), (int, float))))"; \
	elif [ -f runs/demo/config.json ]; then \
		$(BIN)/rexnet train --out runs/demo --resume; \
	else \
		$(BIN)/rexnet train --out runs/demo; \
	fi

# Passive OpenMP waiting: on a shared or small CPU, spinning idle threads slow torch 5-20x.
test: export OMP_WAIT_POLICY = PASSIVE
test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -m serial

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
