# Janus Mail — the two commands a newcomer needs are `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= var
# Worker processes of `make run` (empty: one per CPU, `serve`'s default; WORKERS=1: a single process).
WORKERS ?=
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast fuzz bench lint clean

# Under a lock: two `make test` started together must not run pip in the same venv at the same time.
LOCK := $(shell command -v flock >/dev/null 2>&1 && echo flock $(VENV)/.lock)

$(STAMP): pyproject.toml
	@mkdir -p $(VENV)
	$(LOCK) sh -c 'test -x $(BIN)/python || $(PY) -m venv $(VENV); \
	  $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e ".[test]" && touch $(STAMP)'

install: $(STAMP)

run: install
	$(BIN)/janusmail --data $(DATA) demo
	$(BIN)/janusmail --data $(DATA) serve $(if $(WORKERS),--workers $(WORKERS))

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -q -x -m "not slow"

# The parser property tests (IMAP commands, MIME, JMAP requests) with thousands of examples each.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -m fuzz -p no:randomly -n 2 --timeout 1800

bench: install
	$(BIN)/python bench/ingest.py
	@for b in bench/codec.py bench/latency.py bench/login_flood.py bench/imap.py bench/jmap.py; do if [ -f $$b ]; then $(BIN)/python $$b || exit 1; fi; done

lint: install
	$(BIN)/ruff check janusmail tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
