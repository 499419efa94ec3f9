# Every target sets itself up: the first run creates .venv and installs fmtrain with its
# test extras; later runs reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench gpu-bench keras-names readme clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Bytecode for fmtrain's own modules, as pip writes for a regular install: an editable install
	@# leaves it to the first import, which PYTHONDONTWRITEBYTECODE=1 forbids (then every
	@# `fmtrain validate` compiles ~40 modules again: 0.31 s instead of 0.24 s).
	$(BIN)/python -m compileall -q fmtrain
	@touch $(STAMP)

## Train and evaluate the offline digits MLP; fails unless test accuracy >= 0.95.
demo: $(STAMP)
	$(BIN)/fmtrain fit configs/digits_mlp.yaml --run-dir runs/demo --overwrite --expect 'test.accuracy>=0.95'
	$(BIN)/fmtrain eval runs/demo --quiet
	@echo "report: runs/demo/report.html (and report.md)"

## Lint (ruff: style, imports, bugbear, pyupgrade), then the whole test suite on two workers
## (pytest-xdist, one test file per worker at a time: much of a test's time is Python, imports and
## waiting on subprocesses, so two workers finish in about 0.6x the time even on two cores).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## Headless Chromium for the browser test of report.html (Debian's package); without root it is
## left out and tests/test_report_browser.py skips, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed (root needed): the browser test of report.html will skip"

## Lint only.
lint: $(STAMP)
	$(BIN)/ruff check .

## Only the tests that need no TensorFlow (seconds).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not tf and not slow"

## Speed of fmtrain's engine against plain and tuned model.fit, side by side; then streamed shards
## (peak memory as data grows, throughput against in memory), KerasHub (against task.fit), several
## workers, and the start-up of the commands that import no TensorFlow.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_hub.py
	$(BIN)/python benchmarks/bench_distribute.py
	$(BIN)/python benchmarks/bench_startup.py

## On a machine with a GPU: bench.py's rows in float32 and bf16 and the CNN, ViT and text configs, one
## table in under 8 minutes (benchmarks/gpu.sh; exit 3 with one line when TensorFlow or a GPU is
## missing). No install step: a lent GPU machine has no package registry. CHECK=--cpu-check runs
## the same pipeline on the CPU at tiny sizes.
gpu-bench:
	FMTRAIN_PYTHON=$${FMTRAIN_PYTHON:-$(or $(wildcard $(BIN)/python),python3)} benchmarks/gpu.sh $(CHECK)

## Regenerate fmtrain/config/keras_names.py after a Keras upgrade.
keras-names: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python scripts/gen_keras_names.py

## Regenerate the README's tables of sources, preprocessing steps, models and metrics.
readme: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python scripts/readme_tables.py

clean:
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
