# The course's task runner. `make lab` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8888
# Extra `jupyter lab` options, e.g. LAB_ARGS=--no-browser (the browser tests use it).
LAB_ARGS ?=
# nbgrader reads its configuration from autograder/ (see autograder/nbgrader_config.py)
# and runs tools such as `alembic` from PATH: put the venv's first.
export JUPYTER_CONFIG_DIR := $(CURDIR)/autograder
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: lab test lint format release check grade benchmark screenshots lock clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed; found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	touch $@

# The gradebook knows every assignment's points (formgrader shows them); redone when a
# source notebook changes.
WORK := $(or $(AUTOGRADER_WORK),.grading)
RECORDED := $(WORK)/.recorded
$(RECORDED): $(STAMP) autograder/exercises.toml $(wildcard solutions/*/*.ipynb)
	$(BIN)/autograder record
	touch $@

## Open the course in JupyterLab (installs everything the first time).
lab: $(STAMP) $(RECORDED)
	$(BIN)/jupyter lab --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) \
		--ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks/00-welcome/00-welcome.ipynb $(LAB_ARGS)

## Run the whole test suite (installs everything the first time).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate the student copies in notebooks/ from solutions/.
release: $(STAMP)
	$(BIN)/autograder release

## Check one notebook against the hidden tests: make check NB=notebooks/01-waiting/01-waiting.ipynb
## (ARGS=--hint for the next hint). Below full marks is an answer, not a failure of make:
## only the CLI's exit code 2 (a bad path, say) makes make fail.
check: $(STAMP)
	@$(BIN)/autograder check $(NB) $(ARGS) || [ $$? -eq 1 ]

## Grade a folder of submissions: make grade SUBMISSIONS=path OUT=path
grade: $(STAMP)
	$(BIN)/autograder grade $(SUBMISSIONS) --out $(OUT)

## Timings: where grading time goes, speed per worker count, scores stable with every core busy.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/profile_batch.py
	$(BIN)/python benchmarks/grading_speed.py
	$(BIN)/python benchmarks/grade_determinism.py --runs 10

## Regenerate the README's two screenshots (docs/) with the browser tests (needs Chromium).
screenshots: $(STAMP)
	README_SCREENSHOTS=$(CURDIR)/docs $(BIN)/python -m pytest tests/test_browser.py -q

## Re-pin every installed package after changing pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e .
	{ echo "# Every package the course installs, pinned (pip constraints). Regenerate with 'make lock'."; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .grading .pytest_cache .ruff_cache
