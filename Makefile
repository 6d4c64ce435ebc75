# The two commands of the README: `make demo` and `make test` (the fast set; `make test-all` runs
# everything, `make test-slow` the slow set alone, as .ci/run does after `make test`).
# Both create (or reuse) the virtualenv in $(VENV) and install what they need into it.
# The venv's Python: PYTHON=... if given, else the first of these that runs and is 3.11-3.13, the
# versions the pins in setup.cfg install on (numpy 2.4 and scipy 1.17 have no Python 3.10 release).
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p -c 'import sys; (3, 11) <= sys.version_info[:2] <= (3, 13) and print(sys.executable)' \
	2>/dev/null | grep . && break; done)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.legc-installed

.PHONY: demo test test-slow test-all test-torch lint clean-venv evidence-venv

$(STAMP): setup.cfg pyproject.toml
	@if [ -x $(PY) ]; then echo "make: reusing $(VENV) ($$($(PY) --version))"; \
	elif [ -z "$(PYTHON)" ]; then echo "make: no Python 3.11-3.13 found (tried $(PYTHON_CANDIDATES)). Fix: install one, or pass PYTHON=/path/to/python3.x" >&2; exit 1; \
	else echo "make: creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"; $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[research,edge,dev,diagnostics,jax,distributed]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/legc demo $(DEMO_ARGS)

# pytest exits 5 when it collects no test: that is a failure here, not a pass.
# The slow set is the `slow` marker (tests/conftest.py SLOW: the evidence scripts and the longest
# end-to-end tests); a -m in PYTEST_ARGS replaces the selection.
# Tests run on one pytest-xdist worker per core, at most 4 (each imports TensorFlow: ~1 GB), a
# test file to a worker (its module fixtures are shared by its tests). Much of a test's time is
# one Python thread or a subprocess, so 2 workers on 2 cores cut CI's fast set from 201 s to 157 s
# and its slow set from 941 s to 732 s (2026-12-06). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
PYTEST_RUN = $(PY) -m pytest $(XDIST) $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test: $(STAMP)
	@$(call PYTEST_RUN,-m "not slow")

test-slow: $(STAMP)
	@$(call PYTEST_RUN,-m slow)

test-all: $(STAMP)
	@$(call PYTEST_RUN,)

# Keras 3 on the PyTorch backend, in its own virtualenv: torch and its CUDA libraries are several GB,
# so `make test` never installs them. LEGC_REQUIRE_TORCH=1 turns the module's skip (no torch) into
# a failure here.
TORCH_VENV ?= .venv-torch
TORCH_STAMP := $(TORCH_VENV)/.legc-installed
TORCH_TESTS := tests/integration/test_keras3_torch.py

$(TORCH_STAMP): setup.cfg pyproject.toml
	@if [ -x $(TORCH_VENV)/bin/python ]; then echo "make: reusing $(TORCH_VENV)"; \
	elif [ -z "$(PYTHON)" ]; then echo "make: no Python 3.11-3.13 found (tried $(PYTHON_CANDIDATES)). Fix: install one, or pass PYTHON=/path/to/python3.x" >&2; exit 1; \
	else echo "make: creating $(TORCH_VENV) with $(PYTHON)"; $(PYTHON) -m venv $(TORCH_VENV); fi
	$(TORCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TORCH_VENV)/bin/python -m pip install --quiet -e '.[torch,edge,dev]'
	touch $(TORCH_STAMP)

test-torch: $(TORCH_STAMP)
	@LEGC_REQUIRE_TORCH=1 $(TORCH_VENV)/bin/python -m pytest $(TORCH_TESTS) $(PYTEST_ARGS); \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_legc tools edge tests
	$(VENV)/bin/ruff format --check keras_legc tools edge tests

clean-venv:
	rm -rf $(VENV)

# The device-side venv (numpy 1.26 + tflite-runtime 2.14 only); tests use it via LEGC_DEVICE_PYTHON.
.PHONY: device-env
device-env:
	bash .ci/device_env.sh

# The Torch-Pruning evidence's own virtualenv (issue 26): torch and Torch-Pruning 1.6.1, the anchor
# keras-legc's channel pruning is compared with (legc_research/evidence/channels_vs_torch_pruning.py
# runs its PyTorch side there as a subprocess). Built on request only, never by `make test`.
EVIDENCE_VENV ?= .venv-evidence
EVIDENCE_STAMP := $(EVIDENCE_VENV)/.legc-installed

$(EVIDENCE_STAMP):
	@if [ -x $(EVIDENCE_VENV)/bin/python ]; then echo "make: reusing $(EVIDENCE_VENV)"; \
	elif [ -z "$(PYTHON)" ]; then echo "make: no Python 3.11-3.13 found (tried $(PYTHON_CANDIDATES)). Fix: install one, or pass PYTHON=/path/to/python3.x" >&2; exit 1; \
	else echo "make: creating $(EVIDENCE_VENV) with $(PYTHON)"; $(PYTHON) -m venv $(EVIDENCE_VENV); fi
	$(EVIDENCE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EVIDENCE_VENV)/bin/python -m pip install --quiet 'torch==2.14.1' 'torch-pruning==1.6.1' 'numpy>=1.26'
	touch $(EVIDENCE_STAMP)

evidence-venv: $(EVIDENCE_STAMP)
