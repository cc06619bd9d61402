# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and install the pinned dependencies once;
# a second run finds the stamp file and skips the install.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STRATA := $(VENV)/bin/strata
STAMP  := $(VENV)/.deepstrata-installed
# Tests run on two worker processes; each keeps torch to one thread so they do not fight.
PYTEST_WORKERS ?= 2

# The serving playground's test drives Debian's headless chromium (never downloaded at run time).
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: demo test bench install browser clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade -c constraints.txt pip setuptools
	$(PY) -m pip install -q -c constraints.txt -e ".[all,test]"
	@if $(PY) -m pip list 2>/dev/null | grep -i nvidia; then \
		echo "error: a CUDA package was pulled in; check constraints.txt" >&2; exit 1; fi
	@touch $(STAMP)

demo: $(STAMP)
	$(STRATA) train recipes/digits_cnn.yaml

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; }

# The torchrun tests start their own processes; they run alone, after the parallel run.
test: $(STAMP) browser
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m "not distributed"
	$(PY) -m pytest -q -p no:xdist -m distributed

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean-runs:
	rm -rf runs
