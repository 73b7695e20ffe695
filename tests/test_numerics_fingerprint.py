"""`python -m bench.numerics_fingerprint`: the table two machines compare to find where their arithmetic parts."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

PINS = ("MKL_CBWR", "OPENCV_IPP", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
ROWS = ["sgemm", "conv", "pointwise", "norms", "jpeg", "augment", "steps"]

needs_avx2 = pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="portable numerics need a CPU with AVX2")


def fingerprint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PINS}
    return subprocess.run([sys.executable, "-m", "bench.numerics_fingerprint", *args], cwd=REPO, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def rows(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr[-2000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "sha256" not in line]
    return dict((cell.strip() for cell in line.strip("|").split("|")) for line in table)


@pytest.mark.slow
@needs_avx2
def test_the_table_repeats_and_tells_kernels_apart():
    portable = rows(fingerprint())
    assert list(portable) == ROWS and all(len(v) == 16 for v in portable.values())
    assert rows(fingerprint()) == portable, "the same machine must print the same table twice"
    # A CPU that MKL's wider branches are not for computes the same table (the vendor-neutral branch is pinned) ...
    assert rows(fingerprint(env={"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"})) == portable
    # ... and the CPU's fastest kernels do not: the table can show a difference.
    native = rows(fingerprint("--native"))
    assert native["sgemm"] != portable["sgemm"] and native["steps"] != portable["steps"]


@pytest.mark.slow
@needs_avx2
def test_the_first_batch_rows_are_the_train_stages_first_batch(tiny_dataset, tiny_splits, tiny_params, mlflow_store, tmp_path):
    """The ids of epoch 1's first batch, as a traced training run of the same recipe saw them (BINSIGHT_TRAIN_TRACE)."""
    import hashlib
    import json

    import numpy as np

    data = ("--data", str(tiny_dataset), "--splits", str(tiny_splits), "--params", str(tiny_params[1]))
    with_data = rows(fingerprint(*data))
    assert list(with_data) == [*ROWS, "first batch: image ids", "first batch: pixels", "first batch: losses and gradients"]
    assert rows(fingerprint(*data)) == with_data

    trace = tmp_path / "trace"
    trained = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--splits", str(tiny_splits), "--data", str(tiny_dataset), "--out", str(tmp_path / "train"),
         "--metrics", str(tmp_path / "train.json"), "--params", str(tiny_params[1]), "--classes", str(REPO / "configs/classes.yaml")],
        cwd=REPO, env={**os.environ, "BINSIGHT_TRAIN_TRACE": str(trace), "MLFLOW_TRACKING_URI": mlflow_store},
        capture_output=True, text=True, timeout=600)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    seen = json.loads((trace / "rank0.json").read_text())["image_ids"]["1"][: tiny_params[0].train.batch_size]
    assert with_data["first batch: image ids"] == hashlib.sha256(np.array(seen, dtype=np.int64).tobytes()).hexdigest()[:16]

    missing = fingerprint("--data", str(tiny_dataset), "--splits", str(tmp_path / "no-splits"))
    assert missing.returncode != 0 and "train.json: run `make run`" in missing.stderr and "Traceback" not in missing.stderr


def test_data_and_splits_go_together(tmp_path):
    done = fingerprint("--data", str(tmp_path))
    assert done.returncode != 0 and "--data and --splits go together" in done.stderr and "Traceback" not in done.stderr
