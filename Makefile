# The one place where binsight's commands live; README.md shows the same.
#   make run    install, build the embedded default dataset, dvc repro -> models/model.onnx
#   make test   install, run the test suite
#   make serve  start the inference service (needs models/model.onnx from make run)
#   make bench-serve  measure the service; prints a table
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test install data repro register serve bench-serve clean-data help

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"binsight needs Python 3.11, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(INSTALLED)

# The dataset: restored from the DVC cache when it is there, otherwise the
# embedded default is generated (deterministically) and registered with DVC.
data: $(INSTALLED)
	@if [ -f data/annotations.json ]; then echo "data/: present"; \
	elif $(BIN)/dvc checkout --quiet data.dvc 2>/dev/null && [ -f data/annotations.json ]; then echo "data/: restored from the DVC cache"; \
	else $(BIN)/python -m pipeline.synth.generate --out data && $(BIN)/dvc add --quiet data; fi

# dvc.yaml's commands say `python`: the venv's, put first on PATH.
repro: data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc metrics show

run: repro

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

# Register the exported model in the MLflow registry and point an alias at it.
register: $(INSTALLED)
	$(BIN)/python -m pipeline.register --card models/model_card.json --alias champion

serve: $(INSTALLED)
	$(BIN)/python -m serve.cli serve

bench-serve: $(INSTALLED)
	$(BIN)/python -m bench.serve_bench

clean-data:
	rm -rf data
