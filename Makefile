# PosterRec: `make demo` then `make test` on a fresh machine. Everything installs into .venv.
PYTHON_SYSTEM ?= python3.11
VENV          ?= .venv
PY            := $(VENV)/bin/python
STAMP         := $(VENV)/.installed
HOME_DIR      ?= var
DEMO_COUNT    ?= 240
export POSTERREC_HOME ?= $(HOME_DIR)

.PHONY: install test demo demo-data serve bench lint clean

$(STAMP): setup.cfg
	@command -v $(PYTHON_SYSTEM) >/dev/null || { echo "PosterRec needs $(PYTHON_SYSTEM) on PATH"; exit 1; }
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collected no test: that is a failure, not a pass.
test: install
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "make test: no tests were collected"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) $(HOME_DIR) *.egg-info .pytest_cache
