# `make book` and `make test` each set up .venv on first use (requirements + lib, editable).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=
# The book's networks are small: one intra-op thread per process is as fast on a quiet machine
# and several times faster on a busy one (threads spin waiting for a core). Parallelism comes
# from processes (pytest -n 2), not threads. Override with e.g. `make test OMP_NUM_THREADS=2`.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup book test lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e .
	touch $(STAMP)

setup: $(STAMP)

# Every chapter is executed; any warning or cell error fails the build.
book: $(STAMP)
	BOOK_WIDGETS=0 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Open _build/html/index.html in a browser."

test: $(STAMP) lint
	BOOK_WIDGETS=0 $(VENV)/bin/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Every benchmark in quick form, then one table of ratios against peers and targets (not CI).
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check lib tests benchmarks

clean:
	rm -rf _build .pytest_cache .ruff_cache .sweep_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
