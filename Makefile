# The two commands: `make run` (daemon on the repository's mirrord.ini) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all bench bytecode system-deps venv lint clean

run: bytecode
	mkdir -p demo/uploads demo/mirror
	$(BIN)/mirrord -c mirrord.ini run

test: system-deps bytecode
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: system-deps bytecode
	$(BIN)/python -m pytest -q --run-slow $(PYTEST_ARGS)

bench: $(STAMP)
	./scripts/install-system-deps.sh bench
	$(BIN)/python -m bench $(BENCH_ARGS)

system-deps:
	./scripts/install-system-deps.sh

venv: $(STAMP)

# mirrord's modules byte-compiled, as `pip install` leaves an installed package: the
# editable install does not, and under PYTHONDONTWRITEBYTECODE=1 every mirrord process
# compiled its ~210 modules at start (0.2-0.35 s of CPU each; the CLI e2e tests ran 46 s
# before, 38 s after). Up-to-date files are skipped; a stale .pyc is never loaded.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q mirrord

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) state demo/mirror .pytest_cache
