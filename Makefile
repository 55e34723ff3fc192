# Two commands do all set-up on a fresh Debian machine (Python 3.11, root, no display):
#   make demo   create .venv, install, open napari with the sample data and all widgets
#               (the headless demo when there is no display)
#   make test   the same set-up, then the whole suite, widget tests in napari under Xvfb
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= qt,distributed,dev
XVFB := xvfb-run -a -s "-screen 0 1920x1200x24"
# The qt extra installs PyQt6; say so, in case other bindings are around.
export QT_API ?= pyqt6

.PHONY: setup sysdeps demo test bench gpu-check screenshots lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

sysdeps:
	@bash scripts/ensure_system_deps.sh

setup: sysdeps $(STAMP)

demo: setup
	@if [ -n "$$DISPLAY" ]; then \
		$(BIN)/python -m napari_corrtomo; \
	else \
		echo "No display found: running the headless demo instead (corrtomo demo --out out/demo)."; \
		echo "For the viewer, run 'make demo' on a desktop or under 'xvfb-run -a make demo'."; \
		$(BIN)/corrtomo demo --out out/demo; \
	fi

test: setup
	$(XVFB) $(BIN)/python -m pytest

# Peer tools (PoreSpy, TauFactor, localthickness, itk-rtk, ...) live in the bench extra only.
bench: EXTRAS := qt,distributed,dev,bench
bench: setup
	@rm -f $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[qt,distributed,dev,bench]"
	@touch $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(XVFB) $(BIN)/python $$script || exit 1; done

# GPU tests on a CUDA machine; DRY_RUN=1 (automatic without a GPU) only prints the plan
# and the wheels a bare Python + CuPy + numba + SciPy machine lacks.
gpu-check:
	DRY_RUN=$(DRY_RUN) $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) scripts/gpu_check.py

# The tutorial's pictures come from its test (tests/widgets/test_tutorial.py), the others
# from scripts/screenshots.py.
screenshots: setup
	CORRTOMO_TUTORIAL_SHOTS=docs/images $(XVFB) $(BIN)/python -m pytest -q tests/widgets/test_tutorial.py
	$(XVFB) $(BIN)/python scripts/screenshots.py

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) out .pytest_cache
