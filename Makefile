# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hdrzoo-installed

.PHONY: demo test test-all test-vdp docs lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The pinned pair first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	# docs: tests/test_docs.py builds the site with `mkdocs build --strict` in `make test`.
	$(PY) -m pip install -e ".[dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hdrzoo demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# ColorVideoVDP is an optional extra (heavy: scipy, matplotlib, ffmpeg); its tests skip
# without it, and fail here if it is missing. It runs offline.
test-vdp: $(STAMP)
	$(PY) -m pip install -e ".[dev,vdp]"
	HDRZOO_REQUIRE_VDP=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/test_metrics.py -k cvvdp

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check hdrzoo tests benchmarks examples

# Hours on 2 CPU cores; `$(PY) benchmarks/run.py --quick` is a smoke run. Writes
# benchmarks/results/cpu.json and regenerates docs/benchmarks.md from it.
bench: $(STAMP)
	$(PY) benchmarks/run.py --docs

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache
