# The two commands: `make run` (daemon on the repository's mirrord.ini) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all bench bytecode system-deps venv lint clean

run: bytecode
	mkdir -p demo/uploads demo/mirror
	$(BIN)/mirrord -c mirrord.ini run

# The suite runs in TEST_WORKERS processes (pytest-xdist; each test file on one worker, with
# its own SeaweedFS, sshd, PostgreSQL and memcached on free loopback ports): most of a test's
# time is a daemon waiting for the kernel or a server, and one process ran 4,950-5,160 s on
# this 2-core machine, near CI's 90-minute limit; two took 1,757 s. The tests marked
# `serial` change a host-wide inotify sysctl that the other worker's watchers would feel,
# so they run alone afterwards. TEST_WORKERS=0 runs everything in one process. Exit status
# 5 is pytest's "no tests collected": a PYTEST_ARGS that picks tests of one kind only.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not serial"
PYTEST_SERIAL = $(BIN)/python -m pytest -q -m serial

test: system-deps bytecode
	$(PYTEST_PARALLEL) $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PYTEST_SERIAL) $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-all: system-deps bytecode
	$(PYTEST_PARALLEL) --run-slow $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PYTEST_SERIAL) --run-slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

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
