# The two commands of the README: `make demo` and `make test`.
# Both create (or reuse) the virtualenv in $(VENV) and install what they need into it.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.legc-installed

.PHONY: demo test lint clean-venv

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[edge,dev,diagnostics]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/legc demo $(DEMO_ARGS)

# pytest exits 5 when it collects no test: that is a failure here, not a pass.
test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_legc tools edge tests
	$(VENV)/bin/ruff format --check keras_legc tools edge tests

clean-venv:
	rm -rf $(VENV)

# The device-side venv (numpy 1.26 + tflite-runtime 2.14 only); tests use it via LEGC_DEVICE_PYTHON.
.PHONY: device-env
device-env:
	bash .ci/device_env.sh
