# Two entry points: `make study` reproduces the study, `make test` runs the tests.
# Each creates .venv from nothing when it is missing, then does its job.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: study study-quick test bench bench-fleet clean explorer-site

$(STAMP): pyproject.toml setup.py $(wildcard mailstudy/*/*.pyx)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools warns on every editable install that a folder named like the package may shadow it: that is
	@# this checkout's layout on purpose, so the warning says nothing a newcomer can act on.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[test,dask]'
	@touch $(STAMP)

study: $(STAMP)
	$(BIN)/mailstudy study

study-quick: $(STAMP)
	$(BIN)/mailstudy study --quick

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python bench/sessions.py

bench-fleet: $(STAMP)
	$(BIN)/python bench/fleet.py

# The explorer as a folder of files that opens from disk (mailstudy/faces/static_site.py): Pyodide from npm.
PYODIDE ?= 314.0.8
build/npm/pyodide-$(PYODIDE).tgz:
	mkdir -p build/npm
	cd build/npm && npm pack pyodide@$(PYODIDE) --silent

explorer-site: $(STAMP) build/npm/pyodide-$(PYODIDE).tgz
	$(BIN)/python -m mailstudy.faces.static_site build/explorer-site --pyodide build/npm/pyodide-$(PYODIDE).tgz

clean:
	rm -rf build data/cache .pytest_cache .hypothesis
