# The one place where binsight's commands live; README.md shows the same.
#   make run    install, build the embedded default dataset, dvc repro -> models/model.onnx
#   make run RECIPE=trashnetpp  the same on a real-photo recipe (configs/recipes/NAME/), as a DVC experiment
#   make test   install, run the test suite
#   make check-serve-install  the service alone (`pip install .`, no training stack) in build/venv-serve: starts, judges a photo
#   make serve  start the inference service (needs models/model.onnx from make run)
#   make bench-serve  measure the service; prints a table
#   make bench-privacy  recall of the privacy step's finders on planted plates, faces and people; prints a table
#   make bench-quality-gate  what the quality gate sets aside of real photos, as taken and under strong fog or steam; prints a table
#   make bench-realdata [EPOCHS=n]  binsight vs Ultralytics YOLO on TrashNet++ (own venv .venv-bench); prints a table
#   make bench-realdata-pack  .devdata/ for training the same on a rented GPU machine (bench/device_realdata.sh; BENCHMARKS.md)
#   make bench-device-wheels [NO_YOLO=1]  .whl/: the packages that machine lacks, as Python 3.12 wheels (bench/device_wheels.py)
#   make bench-realdata-score  export and score what that machine trained (build/bench-gpu); prints the table
#   make test-integration  the Label Studio ML backend and importer against a real Label Studio (own venv .venv-labelstudio)
SHELL := /bin/bash
# Nothing but the package registries is reached: albumentations would ask
# PyPI for its newest version on import, MLflow would send telemetry.
export NO_ALBUMENTATIONS_UPDATE := 1
export MLFLOW_DISABLE_TELEMETRY := true
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test install data repro register serve bench-serve bench-privacy bench-quality-gate bench-realdata bench-realdata-pack bench-device-wheels bench-realdata-score check-serve-install test-integration clean-data help

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

# .venv: the pipeline and the tests (extras `train` and `test`). The service
# alone needs only the base dependencies (`pip install .`; pyproject.toml).
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"binsight needs Python 3.11, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,test]'
	touch $@

install: $(INSTALLED)

# A recipe is a parameter file, a class list and a dataset (params.yaml says
# which one `dvc repro` runs). `default` is the embedded synthetic dataset in
# data/; any other NAME reads configs/recipes/NAME/{params,classes,import}.yaml
# and imports the YOLO dataset at RECIPE_SOURCE into data-NAME/.
RECIPE ?= default
RECIPE_SOURCE ?= ../shared/data/$(RECIPE)
ifeq ($(RECIPE),default)
DATA := data
else
DATA := data-$(RECIPE)
RECIPE_DIR := configs/recipes/$(RECIPE)
endif

# The dataset: restored from the DVC cache when it is there, otherwise the
# embedded default is generated (deterministically) or the recipe's source
# imported, and registered with DVC.
data: $(INSTALLED)
	@if [ -f $(DATA)/annotations.json ]; then echo "$(DATA)/: present"; \
	elif $(BIN)/dvc checkout --quiet $(DATA).dvc 2>/dev/null && [ -f $(DATA)/annotations.json ]; then echo "$(DATA)/: restored from the DVC cache"; \
	elif [ "$(RECIPE)" = default ]; then $(BIN)/python -m pipeline.synth.generate --out data && $(BIN)/dvc add --quiet data; \
	else $(BIN)/binsight import yolo $(RECIPE_SOURCE) --data $(DATA) --classes $(RECIPE_DIR)/classes.yaml \
	       --map $(RECIPE_DIR)/import.yaml --report reports/import_report.json && $(BIN)/dvc add --quiet $(DATA); fi

# dvc.yaml's commands say `python`: the venv's, put first on PATH. Another
# recipe runs as a DVC experiment (`dvc exp show` compares it with main).
repro: data
ifeq ($(RECIPE),default)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
else
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run -S recipe.params=$(RECIPE_DIR)/params.yaml \
	  -S recipe.classes=$(RECIPE_DIR)/classes.yaml -S recipe.data=$(DATA)
	@# The experiment is recorded (dvc exp show / apply); params.yaml goes back to the
	@# default recipe, so that a plain `make run` or `dvc repro` never runs this one unasked.
	git checkout -- params.yaml
endif
	$(BIN)/dvc metrics show

run: repro

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

# The install a service host or a truck's computer gets: a fresh venv with
# `pip install .` (a wheel, no extras, no -e: its package data is what runs).
# The training stack must not be importable there, and `binsight migrate`,
# `create-key` and `serve` must work: the service starts with a tiny model
# (exported by .venv), reports ready and judges one photo. About half a minute.
SERVE_VENV := build/venv-serve
SERVE_CHECK := build/serve-check

check-serve-install: $(INSTALLED)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"binsight needs Python 3.11, found {sys.version.split()[0]}"'
	rm -rf $(SERVE_VENV) $(SERVE_CHECK) build/lib build/bdist.*  # setuptools' build folders: no stale module may enter the wheel
	$(BIN)/python tests/tiny_model.py $(SERVE_CHECK)/model
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet .
	$(SERVE_VENV)/bin/python tests/serve_install_check.py --venv $(SERVE_VENV) --model $(SERVE_CHECK)/model --work $(SERVE_CHECK)/run

# Register the exported model in the MLflow registry and point an alias at it.
register: $(INSTALLED)
	$(BIN)/python -m pipeline.register --card models/model_card.json --alias champion

serve: $(INSTALLED)
	$(BIN)/python -m serve.cli serve

bench-serve: $(INSTALLED)
	$(BIN)/python -m bench.serve_bench

bench-privacy: $(INSTALLED)
	$(BIN)/python -m bench.privacy_recall

# The quality gate on every TrashNet++ valid photo, as taken and under strong fog or steam.
bench-quality-gate: $(INSTALLED)
	$(BIN)/python -m bench.quality_gate

# Ultralytics (AGPL-3.0) lives only in this venv, never in .venv. It asks for
# opencv-python (the GUI build, which needs libGL); binsight pins the headless
# build of the same version. Both unpack into cv2/, so the headless one is put
# back alone (pip check then names the missing opencv-python: expected).
BENCH_VENV := .venv-bench
BENCH_INSTALLED := $(BENCH_VENV)/.installed
# Default epochs: what fits about 40 minutes on 2 CPU cores (38 min 26 s in session 13; BENCHMARKS.md); on a GPU pass EPOCHS=50 or more.
EPOCHS ?= 2

$(BENCH_INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"binsight needs Python 3.11, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e '.[train,bench]'
	$(BENCH_VENV)/bin/pip uninstall --quiet -y opencv-python opencv-python-headless
	$(BENCH_VENV)/bin/pip install --quiet --no-deps "$$(grep -o 'opencv-python-headless==[0-9.]*' pyproject.toml)"
	touch $@

bench-realdata: $(BENCH_INSTALLED)
	$(BENCH_VENV)/bin/python -m bench.realdata --epochs $(EPOCHS) --out build/bench-realdata

# The same comparison with the training on a GPU machine that has torch but no package index:
# pack here, run bench/device_realdata.sh there, unpack its trained.tgz.part-* into build/, score here.
bench-realdata-pack: $(INSTALLED)
	$(BIN)/python -m bench.device_pack

bench-device-wheels: $(BENCH_INSTALLED)
	$(BENCH_VENV)/bin/python -m bench.device_wheels --out .whl $(if $(NO_YOLO),--no-yolo)

bench-realdata-score: $(BENCH_INSTALLED)
	$(BENCH_VENV)/bin/python -m bench.realdata --score-only --models $(or $(MODELS),yolo11n,yolo26n,binsight,binsight-imagenet) --out build/bench-gpu

# A real Label Studio (Apache-2.0) for tests/integration/, in a venv of its own:
# its pins (Django, pandas, boto3, ...) never meet binsight's. The tests start
# it on 127.0.0.1 from a temporary data folder, drive it with label-studio-sdk
# (the version label-studio 1.23.2 itself requires) and connect binsight's
# service as its ML backend. Without this venv, `make test` skips them.
LS_VENV := .venv-labelstudio
LS_INSTALLED := $(LS_VENV)/.installed
LABEL_STUDIO := label-studio==1.23.2 label-studio-sdk==2.1.2

$(LS_INSTALLED):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"binsight needs Python 3.11, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --upgrade pip
	$(LS_VENV)/bin/pip install --quiet $(LABEL_STUDIO)
	touch $@

test-integration: $(INSTALLED) $(LS_INSTALLED)
	BINSIGHT_LABELSTUDIO_VENV="$(CURDIR)/$(LS_VENV)" $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration

clean-data:
	rm -rf $(DATA)
