# fastnn: `make demo` and `make test` set up .venv on first use (Python 3.10+ and gcc needed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fastnn-installed
# Reinstall when the packaging or the compiled sources change.
BUILD_INPUTS := pyproject.toml setup.py $(wildcard kernels/_cython/*.pyx kernels/_cython/*.pxi kernels/_cython/*.pxd kernels/_cython/*.c kernels/_cython/*.h)

.PHONY: install test test-cuda-sim test-browser browser sanitize demo clean distclean

install: $(STAMP)

$(STAMP): $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install browser
	$(PY) -m pytest
	$(MAKE) test-cuda-sim
	PYTHON=$(PY) bash benchmarks/ci_check.sh


# The browser tests (tests/test_browser.py, the visualiser check in tests/test_teach.py) drive
# Debian's chromium with Playwright. `browser` installs it where it is missing and we are root
# on Debian; elsewhere it says why those tests will be skipped. Screenshots: see test_browser.py.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then \
	  echo "browser tests: installing Debian's chromium (apt-get install -y chromium, about a minute)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "browser tests: installing chromium failed; they will be skipped"; \
	else \
	  echo "browser tests: no $(CHROMIUM), and installing it needs root on Debian; they will be skipped" \
	       "(install chromium, then: make test-browser)"; \
	fi

test-browser: install browser
	$(PY) -m pytest -q -rs tests/test_browser.py tests/test_teach.py::test_html_page_slider_works_in_headless_chromium

# The CUDA kernels under numba's simulator: a separate interpreter, because the
# variable must be set before numba is first imported. Tiny shapes only.
test-cuda-sim: install
	NUMBA_ENABLE_CUDASIM=1 FASTNN_TEST_BACKENDS=cuda $(PY) -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_layers.py tests/test_cuda.py \
	  tests/test_primitives.py tests/test_tiers.py

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
