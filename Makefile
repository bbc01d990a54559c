# fastnn: `make demo` and `make test` set up .venv on first use (Python 3.10+ and gcc needed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fastnn-installed
# Reinstall when the packaging or the compiled sources change.
BUILD_INPUTS := pyproject.toml setup.py $(wildcard kernels/_cython/*.pyx kernels/_cython/*.pxd kernels/_cython/*.c kernels/_cython/*.h)

.PHONY: install test test-cuda-sim sanitize demo clean distclean

install: $(STAMP)

$(STAMP): $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest
	$(MAKE) test-cuda-sim
	PYTHON=$(PY) bash benchmarks/ci_check.sh


# The CUDA kernels under numba's simulator: a separate interpreter, because the
# variable must be set before numba is first imported. Tiny shapes only.
test-cuda-sim: install
	NUMBA_ENABLE_CUDASIM=1 FASTNN_TEST_BACKENDS=cuda $(PY) -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_layers.py tests/test_cuda.py

# The Cython backend's C code under AddressSanitizer + UBSan, with its kernel tests.
sanitize: install
	PYTHON=$(PY) bash kernels/_cython/sanitize.sh

demo: install
	$(VENV)/bin/fastnn demo

# Build products and caches: the compiled extension, Numba's cache (*.nbi/*.nbc in
# __pycache__), generated C. The install stamp goes too, so the next `make install`
# rebuilds the extension the editable install needs.
SOURCE_DIRS := $(wildcard kernels fastnn benchmarks tests)
clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis fastnn-out $(STAMP)
	rm -f kernels/_cython/_kernels.c kernels/_cython/_kernels.html
	find $(SOURCE_DIRS) -name '*.so' -type f -delete
	find $(SOURCE_DIRS) -name '*.c.gen' -type f -delete
	find $(SOURCE_DIRS) -name __pycache__ -type d -prune -exec rm -rf {} +

# Everything `make install` made as well: the virtual environment.
distclean: clean
	rm -rf $(VENV)
