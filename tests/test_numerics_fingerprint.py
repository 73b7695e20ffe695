"""`python -m bench.numerics_fingerprint`: the table two machines compare to find where their arithmetic parts."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

PINS = ("MKL_CBWR", "OPENCV_IPP", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
ROWS = ["sgemm", "conv", "pointwise", "norms", "jpeg", "augment", "steps"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="portable numerics need a CPU with AVX2"),
]


def fingerprint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PINS}
    return subprocess.run([sys.executable, "-m", "bench.numerics_fingerprint", *args], cwd=REPO, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def rows(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr[-2000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "sha256" not in line]
    return dict((cell.strip() for cell in line.strip("|").split("|")) for line in table)


def test_the_table_repeats_and_tells_kernels_apart():
    portable = rows(fingerprint())
    assert list(portable) == ROWS and all(len(v) == 16 for v in portable.values())
    assert rows(fingerprint()) == portable, "the same machine must print the same table twice"
    # A CPU that MKL's wider branches are not for computes the same table (the vendor-neutral branch is pinned) ...
    assert rows(fingerprint(env={"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"})) == portable
    # ... and the CPU's fastest kernels do not: the table can show a difference.
    native = rows(fingerprint("--native"))
    assert native["sgemm"] != portable["sgemm"] and native["steps"] != portable["steps"]


def test_the_first_batch_rows_come_from_the_train_stages_data(tiny_dataset, tiny_splits, tmp_path):
    with_data = rows(fingerprint("--data", str(tiny_dataset), "--splits", str(tiny_splits)))
    assert list(with_data) == [*ROWS, "first batch: pixels", "first batch: losses and gradients"]
    assert rows(fingerprint("--data", str(tiny_dataset), "--splits", str(tiny_splits))) == with_data
    missing = fingerprint("--data", str(tiny_dataset), "--splits", str(tmp_path))
    assert missing.returncode != 0 and "train.json: run `make run`" in missing.stderr and "Traceback" not in missing.stderr


def test_data_and_splits_go_together(tmp_path):
    done = fingerprint("--data", str(tmp_path))
    assert done.returncode != 0 and "--data and --splits go together" in done.stderr and "Traceback" not in done.stderr
