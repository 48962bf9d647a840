# Two entry points (README): `make repro` runs the main job, `make test` runs the tests.
# Both create .venv once (re-installed only when pyproject.toml changes) and are safe to rerun.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-10)
export PATH := $(abspath $(VENV))/bin:$(PATH)
JOBS ?= 2

.PHONY: setup repro repro-real test test-fast clean-outputs

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

repro: setup  ## the main job: the whole pipeline on params.yaml (embedded data by default)
	# GENDA_WARM=1: stages run in a warm fork server that imported torch & co once (genda.runtime.forkserver)
	GENDA_WARM=1 dvc repro; s=$$?; $(PY) -m genda.runtime.forkserver stop >/dev/null; exit $$s

repro-real: setup  ## the real-data profile (real/: reads ../shared/data, hours): resumable, rerun the same command
	# two stages at a time, one thread each (the thread count of the profile's records): genda.pipeline.parallel
	# TARGETS='tsne@*' (stage names, groups or patterns): only those and their upstream, as `dvc repro TARGET`
	(cd real && GENDA_WARM=1 $(abspath $(PY)) -m genda.pipeline.parallel --jobs $(JOBS) $(TARGETS)); s=$$?; \
	$(PY) -m genda.runtime.forkserver stop >/dev/null; exit $$s

test: setup   ## every test (slow end-to-end DVC tests included), two test files at a time
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -m "not slow"
