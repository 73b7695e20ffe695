"""`train.cpu_numerics: portable`: the same arithmetic whatever instruction sets the CPU has beyond AVX2.

Each case runs in a fresh interpreter: torch fixes its kernels at the first
operation of a process. A CPU with fewer instruction sets is imitated on
this one by capping torch, MKL and oneDNN at AVX2 from the outside
(`ATEN_CPU_CAPABILITY`, `MKL_ENABLE_INSTRUCTIONS`, `ONEDNN_MAX_CPU_ISA`): in
portable mode the weights after a few training steps must not change, in
native mode they do (on a CPU with more than AVX2), which shows the
comparison can fail; and so they do in portable mode without MKL's pin,
which shows that MKL reads it (its own query function is not exported by
torch's statically linked MKL).
"""

import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A few steps of the default detector on small random images; prints the weights' digest.
TRAIN_STEPS = """
import hashlib, sys, torch
from pipeline import hardware
from pipeline.config import load_params
from pipeline.model import build_model
import os
mode = sys.argv[1]
hardware.fix_cpu_numerics(mode.removesuffix("-without-mkl-pin").removesuffix("-with-mkl-avx2-branch"))
if mode.endswith("-without-mkl-pin"):  # MKL reads it at its first call, still to come
    del os.environ["MKL_CBWR"]
if mode.endswith("-with-mkl-avx2-branch"):  # the pin before session 7
    os.environ["MKL_CBWR"] = "AVX2,STRICT"
torch.set_num_threads(2)
torch.use_deterministic_algorithms(True, warn_only=True)
torch.manual_seed(0)
cfg = load_params().model.model_copy(update={"min_size": 128, "max_size": 128})
model = build_model(cfg, 3).train()
optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
g = torch.Generator().manual_seed(1)
images = [torch.rand(3, 128, 128, generator=g) for _ in range(2)]
targets = [{"boxes": torch.tensor([[10.0, 20, 60, 70]]), "labels": torch.tensor([1])}] * 2
for _ in range(3):
    loss = sum(model(images, targets).values())
    optimizer.zero_grad(); loss.backward(); optimizer.step()
print(hardware.cpu_numerics_summary()["cpu_capability"], hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""
# The training augmentation of a few drawn images (OpenCV does most of its work), as the numerics fingerprint
# digests it (bench/numerics_fingerprint.py); prints the pixels' digest.
AUGMENT = """
import sys
from pipeline import hardware
hardware.fix_cpu_numerics(sys.argv[1])
from bench.numerics_fingerprint import augmentation
print(augmentation())
"""
# OpenCV's dispatch, capped from the outside as a CPU without AVX/AVX2 would have it.
OPENCV_WITHOUT_AVX = {"OPENCV_CPU_DISABLE": "AVX2,FP16,AVX"}
AVX2_ONLY_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
NATIVE = torch.backends.cpu.get_cpu_capability()

needs_more_than_avx2 = pytest.mark.skipif(NATIVE in ("AVX2", "DEFAULT"), reason=f"this CPU's kernels run at {NATIVE}: nothing to cap")


def run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {*AVX2_ONLY_CPU, *OPENCV_WITHOUT_AVX, "MKL_CBWR", "OPENCV_IPP", "MKL_ENABLE_INSTRUCTIONS"}}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=300)


def digest(mode: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    done = run(TRAIN_STEPS, mode, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    capability, weights = done.stdout.split()
    return capability, weights


@needs_more_than_avx2
def test_portable_training_computes_the_same_on_a_cpu_with_only_avx2():
    here, avx2_only = digest("portable"), digest("portable", AVX2_ONLY_CPU)
    assert here[0] == avx2_only[0] == "AVX2"
    assert here[1] == avx2_only[1]


@needs_more_than_avx2
def test_native_training_differs_there_so_the_comparison_can_fail():
    here, avx2_only = digest("native"), digest("native", AVX2_ONLY_CPU)
    assert here[0] == NATIVE and avx2_only[0] == "AVX2"
    assert here[1] != avx2_only[1]


def intel_with_avx512() -> bool:
    """MKL's code paths wider than AVX2 are for Intel CPUs; on others (AMD) it runs AVX2 code unpinned too."""
    try:
        info = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return "GenuineIntel" in info and " avx512f" in info


@pytest.mark.skipif(not intel_with_avx512(), reason="MKL has no path wider than AVX2 on this CPU to pin it away from (not an Intel CPU with AVX-512)")
def test_mkl_follows_its_pin():
    """Without MKL_CBWR the portable setting would differ on an AVX2-only CPU: MKL reads the pin, and it matters."""
    here, avx2_only = digest("portable-without-mkl-pin"), digest("portable-without-mkl-pin", AVX2_ONLY_CPU)
    assert here[0] == avx2_only[0] == "AVX2"
    assert here[1] != avx2_only[1]


# MKL without its AVX2 code: what it runs on a CPU its AVX2 branch is not for (Intel's documentation: any
# non-Intel CPU). Session 7: an AMD and an Intel VM trained apart from the first epoch under that branch.
MKL_WITHOUT_AVX2_BRANCH = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


def test_portable_training_computes_the_same_where_mkl_has_no_avx2_branch():
    assert digest("portable") == digest("portable", MKL_WITHOUT_AVX2_BRANCH)


def mkl_has_avx2_here() -> bool:
    info = open("/proc/cpuinfo", encoding="utf-8").read()
    return "GenuineIntel" in info and " avx2" in info


@pytest.mark.skipif(not mkl_has_avx2_here(), reason="MKL's AVX2 branch is for Intel CPUs with AVX2: nothing to take away here")
def test_mkls_avx2_branch_differs_there_so_the_comparison_can_fail():
    mode = "portable-with-mkl-avx2-branch"
    assert digest(mode) != digest(mode, MKL_WITHOUT_AVX2_BRANCH)


def test_portable_mode_pins_torch_mkl_onednn_and_opencv():
    done = run(
        "import os, cv2, torch; from pipeline import hardware; hardware.fix_cpu_numerics('portable'); "
        "print(torch.backends.cpu.get_cpu_capability(), os.environ['MKL_CBWR'], torch.backends.mkldnn.enabled, "
        "cv2.useOptimized(), cv2.ipp.useIPP(), hardware.cpu_numerics_summary()['opencv_optimized'])"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["AVX2", "COMPATIBLE", "False", "False", "False", "False"]
    native = run("from pipeline import hardware; hardware.fix_cpu_numerics('native'); print(hardware.cpu_numerics_summary()['opencv_optimized'])")
    assert native.stdout.split() == ["True"]  # native leaves OpenCV as it comes


@needs_more_than_avx2
def test_a_process_that_computed_before_the_pin_is_refused():
    done = run("import torch; (torch.rand(64) + 1).sum(); from pipeline import hardware; hardware.fix_cpu_numerics('portable')")
    assert done.returncode != 0
    assert f"run at {NATIVE}, not AVX2" in done.stderr and "cpu_numerics: native" in done.stderr
    assert "Traceback" not in done.stderr  # SystemExit: one clear line


@needs_more_than_avx2
def test_a_refused_pin_leaves_the_process_as_it_was():
    done = run(
        "import os, torch; (torch.rand(64) + 1).sum(); from pipeline import hardware\n"
        "try:\n    hardware.fix_cpu_numerics('portable')\nexcept SystemExit:\n    pass\n"
        "print(torch.backends.mkldnn.enabled, os.environ.get('MKL_CBWR'), os.environ.get('ATEN_CPU_CAPABILITY'))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "None", "None"]


def augmented(mode: str, env: dict[str, str] | None = None) -> str:
    done = run(AUGMENT, mode, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@needs_more_than_avx2
def test_portable_augmentation_is_the_same_whatever_opencv_could_dispatch_to():
    assert augmented("portable") == augmented("portable", OPENCV_WITHOUT_AVX)


@needs_more_than_avx2
def test_native_augmentation_follows_opencvs_dispatch_so_the_comparison_can_fail():
    assert augmented("native") != augmented("native", OPENCV_WITHOUT_AVX)
