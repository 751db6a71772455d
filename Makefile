# The two commands of the README: `make run` (the product on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint bench-registry clean

run: setup
	bash scripts/run.sh

test: setup
	bash scripts/test.sh

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[test]'
	touch $(STAMP)

lint: setup
	bash scripts/lint.sh

bench-drift: setup ; bash bench/drift/run.sh $(ARGS)
bench-registry: setup
	$(BIN)/python bench/registry/bench_registry.py

clean:
	rm -rf $(VENV) var
