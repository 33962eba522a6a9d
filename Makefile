# Everything runs inside .venv, created on first use from a bare Python >= 3.10.
# torch is installed as $(TORCH) unless a torch is already importable in .venv;
# naming TORCH on the command line (make test TORCH='torch==2.5.1') always installs it.
# TORCH_INDEX picks the wheel source of torch without editing files, e.g. the
# CPU-only wheels (no CUDA libraries to download) on a fresh clone:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# TORCH_PIP_ARGS passes any other pip options for that one install. Naming either
# on the command line installs torch even if one is importable (in a .venv that
# already installed torch: `make clean-venv` first).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_PIP_ARGS ?= $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
# Set SCATTER=0 to skip building torch-scatter (PyG then uses its own scatter code).
SCATTER ?= 1
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.stamps

.PHONY: demo test test-slow bench notebooks clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(STAMP)/torch: | $(PY)
	@mkdir -p $(STAMP)
ifneq ($(filter command,$(origin TORCH) $(origin TORCH_INDEX) $(origin TORCH_PIP_ARGS)),)
	$(PIP) install $(strip $(TORCH_PIP_ARGS) "$(TORCH)")
else
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already installed" || $(PIP) install $(strip $(TORCH_PIP_ARGS) "$(TORCH)")
endif
	@touch $@

$(STAMP)/base: pyproject.toml $(STAMP)/torch
	$(PIP) install --quiet -e .
	@touch $@

# The extras are installed with the installed torch pinned, so that none of
# their dependencies brings another torch.
$(STAMP)/test: pyproject.toml $(STAMP)/torch
	@$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(STAMP)/torch-pin.txt
	$(PIP) install --quiet -e ".[test,notebooks,ray]" -c $(STAMP)/torch-pin.txt
	@touch $@

# torch-scatter has no wheel for every torch: build it against the installed one
# (a few minutes the first time; pip caches the wheel afterwards).
$(STAMP)/scatter: $(STAMP)/torch
ifeq ($(SCATTER),1)
	$(PIP) install --no-build-isolation "torch-scatter>=2.1"
endif
	@touch $@

demo: $(STAMP)/base
	$(VENV)/bin/tcmp-pyg demo

# The whole suite with torch-scatter, then the message-passing tests once more
# with torch-scatter hidden, so PyG's own fallback path is exercised too.
test: $(STAMP)/test $(STAMP)/scatter
	$(PY) -m pytest $(PYTEST_ARGS)
	TCMP_PYG_HIDE_TORCH_SCATTER=1 $(PY) -m pytest -m mp -q $(PYTEST_ARGS)

test-slow: $(STAMP)/test
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# The speed benchmarks of benchmarks/RESULTS.md (bench_data on a small corpus;
# the full NTU-sized run is `$(PY) benchmarks/bench_data.py`).
bench: $(STAMP)/base
	$(PY) benchmarks/bench_layers.py
	$(PY) benchmarks/bench_pruning_overhead.py
	$(PY) benchmarks/bench_compact.py
	$(PY) benchmarks/bench_data.py --files 2000 --frames 120

# The example notebooks executed on the full budget, outputs and figures
# included, as docs/notebooks/*.ipynb (examples/ stays output-free; the tests
# execute those from scratch). NOTEBOOKS=02_mp_vs_tcmp renders one.
NOTEBOOKS ?=
notebooks: $(STAMP)/test
	$(PY) docs/render_notebooks.py $(NOTEBOOKS)

clean-venv:
	rm -rf $(VENV)
