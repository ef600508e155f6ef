# Two entry points: `make serve` (install, then start the service on the bundled model)
# and `make test` (install, then lint, type-check and run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test system-deps bench load worker

# Every install takes the versions the tests passed with (constraints.txt), so a fresh machine
# runs what was tested.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(PY) -m uvicorn --factory app.main:create_app --http app.serve:HeadTimeoutProtocol --host $(HOST) --port $(PORT)

worker: install
	$(PY) -m celery -A worker.celery_app worker -Q edits --loglevel=INFO

system-deps:
	bash scripts/system-deps.sh

test: install system-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy models training app worker
	$(PY) -m pytest

bench: install
	$(PY) -m benchmarks.service

load: install
	$(PY) -m benchmarks.load
