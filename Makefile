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
# The public repository, e.g. `make book REPO_URL=https://github.com/OWNER/NAME`: turns on the
# repository, issue and Colab buttons (Colab opens the published reader notebooks). Empty: off.
REPO_URL ?=
SITE    := _build/html

.PHONY: setup book notebooks assignments grade test test-site lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e .
	touch $(STAMP)

setup: $(STAMP)

# Every chapter is executed; any warning or cell error fails the build.
# The build also writes each executed chapter as a plain-Jupyter notebook to $(SITE)/notebooks,
# and the course assignments (see `assignments`), with the student notebooks copied to $(SITE)/assignments.
book: $(STAMP)
	BOOK_WIDGETS=0 BOOK_REPO_URL=$(REPO_URL) $(VENV)/bin/jupyter-book build . -W -n --keep-going
	BOOK_REPO_URL=$(REPO_URL) $(PY) -m tools.assign --build _build --site $(SITE)/assignments
	@echo "Open $(SITE)/index.html in a browser."

# Rewrite the reader notebooks from an existing build (e.g. into another folder: make notebooks OUT=dir).
OUT ?= $(SITE)/notebooks
notebooks: $(STAMP)
	test -f $(SITE)/objects.inv || { echo "no built book: run make book first"; exit 1; }
	BOOK_REPO_URL=$(REPO_URL) $(PY) -m tools.export --build _build --out $(OUT)

# Student and instructor notebooks of every chapter in _build/assignments (numbers and links come
# from the built book; each chapter is run once in quick mode for its numbers, cached by its hash).
assignments: $(STAMP)
	test -f $(SITE)/objects.inv || { echo "no built book: run make book first"; exit 1; }
	BOOK_REPO_URL=$(REPO_URL) $(PY) -m tools.assign --build _build

# Grade a folder of submitted student notebooks: make grade SUBMISSIONS=dir SECRET=1234 [INPUTS=200] [JOBS=2].
SUBMISSIONS ?= submissions
GRADES  ?= grades.csv
SECRET  ?=
INPUTS  ?=
JOBS    ?= 1
grade: $(STAMP)
	test -n "$(SECRET)" || { echo "usage: make grade SUBMISSIONS=dir SECRET=<a number you keep secret> [INPUTS=200]"; exit 1; }
	BOOK_WIDGETS=0 $(PY) -m tools.grade $(SUBMISSIONS) --seed $(SECRET) $(if $(INPUTS),--inputs $(INPUTS)) --jobs $(JOBS) --out $(GRADES)

# Every page of the built site in headless Chromium (desktop and phone, light and dark);
# screenshots and report.json land in _build/site-check. Installs Debian's chromium if missing.
test-site: $(STAMP)
	test -f $(SITE)/index.html || { echo "no built book: run make book first"; exit 1; }
	$(PY) -c "from tools.browser import find_chromium as f; raise SystemExit(f() is None)" || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
	$(VENV)/bin/pytest tests/test_site_check.py -q -p no:cacheprovider
	$(PY) -m tools.check_site $(SITE) --out _build/site-check

test: $(STAMP) lint
	BOOK_WIDGETS=0 $(VENV)/bin/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Every benchmark in quick form, then one table of ratios against peers and targets (not CI).
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check lib tests benchmarks tools

clean:
	rm -rf _build .pytest_cache .ruff_cache .sweep_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
