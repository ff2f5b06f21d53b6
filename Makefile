# The two commands: `make run` (daemon on the repository's mirrord.ini) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all bench system-deps venv lint clean

run: $(STAMP)
	mkdir -p demo/uploads demo/mirror
	$(BIN)/mirrord -c mirrord.ini run

test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: system-deps $(STAMP)
	$(BIN)/python -m pytest -q --run-slow $(PYTEST_ARGS)

bench: $(STAMP)
	./scripts/install-system-deps.sh bench
	$(BIN)/python -m bench $(BENCH_ARGS)

system-deps:
	./scripts/install-system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) state demo/mirror .pytest_cache
