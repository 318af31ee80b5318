# The AlexNet course. `make lab` to teach or learn, `make test` to check everything.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(CURDIR)/$(VENV)/bin
PY      := $(BIN)/python
STAMP   := $(VENV)/.installed
# nbgrader shells out to alembic: the venv's bin/ must be on PATH.
export PATH := $(BIN):$(PATH)

# The torch build the course is tested with (a local copy on the course's build machines).
ifeq ($(shell uname -m),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif

LAB_FLAGS := --ServerApp.root_dir=$(CURDIR) --ServerApp.ip=127.0.0.1
ifeq ($(shell id -u),0)
LAB_FLAGS += --allow-root
endif

.PHONY: install lab test check release grade bench doctor lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,lab]'
	touch $@

install: $(STAMP)

lab: $(STAMP)
	for ext in formgrader assignment_list course_list validate_assignment; do \
	  $(BIN)/jupyter server extension enable --sys-prefix nbgrader.server_extensions.$$ext >/dev/null 2>&1; done
	$(BIN)/jupyter labextension enable --level=sys_prefix @jupyter/nbgrader >/dev/null
	$(BIN)/jupyter lab $(LAB_FLAGS)

# Two workers: most tests wait on a kernel or a subprocess, so both cores stay busy
# (tests/conftest.py schedules the tests by group so that nothing expensive runs twice).
TEST_WORKERS ?= 2

# Groups run in the order collected: the instructor's day and the notebooks first, the small
# modules last to even out the tail. The JUnit report feeds README's cost table (tests/ci_cost.py).
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --no-loadscope-reorder --durations=40 \
	  --junitxml=test-artifacts/junit.xml
	$(PY) -m tests.ci_cost test-artifacts/junit.xml

# The developer's loop (under 2 minutes): unit tests, then notebook 01's nbgrader round trip.
check: $(STAMP)
	$(PY) -m ruff check alexnet_utils tests
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow and not browser" tests/unit
	ALEXNET_TEST_ASSIGNMENTS=01_build_alexnet $(PY) -m pytest -q tests/course/test_grading.py -k "point or zero"

release: $(STAMP)
	$(PY) -m alexnet_utils release

grade: $(STAMP)
	$(PY) -m alexnet_utils grade --references

bench: $(STAMP)
	$(PY) -m alexnet_utils bench --curriculum --json bench.json

doctor: $(STAMP)
	$(PY) -m alexnet_utils doctor

lint: $(STAMP)
	$(PY) -m ruff check alexnet_utils tests

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache gradebook.db
