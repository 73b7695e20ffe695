"""`python -m bench.numerics_fingerprint`: the table two machines compare to find where their arithmetic parts."""

import os
import subprocess
import sys

from tests.conftest import REPO

PINS = ("MKL_CBWR", "OPENCV_IPP", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def fingerprint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PINS}
    return subprocess.run([sys.executable, "-m", "bench.numerics_fingerprint", *args], cwd=REPO, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def rows(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr[-2000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "sha256" not in line]
    return dict(line.strip("|").replace(" ", "").split("|") for line in table)


def test_the_table_repeats_and_tells_kernels_apart():
    portable = rows(fingerprint())
    assert list(portable) == ["sgemm", "conv", "pointwise", "jpeg", "augment", "steps"]
    assert all(len(v) == 16 for v in portable.values())
    # A CPU that MKL's wider branches are not for computes the same table (the vendor-neutral branch is pinned) ...
    assert rows(fingerprint(env={"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"})) == portable
    # ... and the CPU's fastest kernels do not: the table can show a difference.
    native = rows(fingerprint("--native"))
    assert native["sgemm"] != portable["sgemm"] and native["steps"] != portable["steps"]


def test_data_and_splits_go_together(tmp_path):
    done = fingerprint("--data", str(tmp_path))
    assert done.returncode != 0 and "--data and --splits go together" in done.stderr and "Traceback" not in done.stderr
