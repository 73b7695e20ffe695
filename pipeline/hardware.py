"""Where training runs: device, processes and precision, and the batch and schedule that fit them.

- `train.device: auto` trains on CUDA when torch sees a GPU, otherwise on the CPU.
- Under torchrun (`WORLD_SIZE` > 1) each process trains its share of every
  epoch with DistributedDataParallel: on its own GPU (nccl) or, on a CPU
  box, on `train.threads` cores (gloo). Process 0 alone logs, validates and
  writes checkpoints, the model and the MLflow run.
- Precision: bf16 autocast on CUDA (no loss scaling needed, unlike fp16);
  the CPU stays fp32, where bf16 is slow and would change the figures.
- Batch: `train.batch_size` images per step per CPU process,
  `train.cuda_batch_size` per GPU. The learning rate follows the batch by
  the optimiser's scaling rule, k = global batch / `train.batch_size`: SGD
  the linear rule, lr x k (Goyal et al., 2017, "Accurate, Large Minibatch
  SGD"); AdamW the square-root rule, lr x sqrt(k) (Malladi et al., 2022, "On
  the SDEs and Scaling Rules for Adaptive Gradient Algorithms"): Adam's
  update is normalised by the gradient's size, so a larger batch, whose
  gradient is less noisy, warrants a step larger by sqrt(k), not k. Warm-up and the weight average are
  kept the same length in images. On one CPU process every figure is exactly
  what the configuration says.

Reproducibility: torch runs deterministic algorithms with a fixed thread
count, so the same commit on the same CPU gives the same weights bit for bit.
Across CPUs the fastest kernels differ: torch, MKL and oneDNN pick them by
the instruction set (AVX2, AVX-512, AMX) and, for oneDNN, size their blocks
by the caches, and each choice adds floats in another order. Session 4 saw
two VMs of one machine kind train differently from the first epoch on.
`train.cpu_numerics: portable` (the default) therefore pins all three:
torch's own kernels to their AVX2 build (`ATEN_CPU_CAPABILITY`), MKL to its
vendor-neutral SSE2 code path in conditional-numerical-reproducibility mode
(`MKL_CBWR=COMPATIBLE`; Intel's strict mode exists for the AVX2 and AVX-512
branches only, and the fixed thread count is what standard mode needs), and
convolutions off oneDNN (whose
blocking follows the cache sizes) onto torch's im2col + MKL route. MKL's
AVX2 branch is not enough: Intel documents it as reproducible on Intel CPUs
only, "on non-Intel CPUs ... the AUTO branch is used instead" (oneMKL
developer guide, "Getting Started with Conditional Numerical
Reproducibility"). Session 7 saw exactly that: with the AVX2 branch, an AMD
EPYC VM and an Intel Xeon VM trained differently from the first epoch
(loss 2.0415 vs 2.0440), and on the Intel VM, hiding AVX2 from MKL
(`MKL_ENABLE_INSTRUCTIONS=SSE4_2`, as MKL sees a CPU without its AVX2 branch)
changed the weights under the AVX2 branch and left them unchanged under
COMPATIBLE. COMPATIBLE costs about 1.4x per training step on 2 cores
(`python -m bench.mkl_branch_speed`). OpenCV, which reads the
photos and draws most augmentations, picks its optimised code (its own
SIMD dispatch and Intel IPP) by the instruction set too, and the augmented
pixels change with it (session 6: a model trained on an Intel VM and one
trained on an AMD VM differed from the first epoch, the data being
identical; hiding AVX2 from OpenCV changes the augmented images); portable
mode runs OpenCV's baseline code, which every x86-64 CPU runs alike. Pinning
torch and oneDNN cost about 1.8x per training step on 2 cores (BENCHMARKS.md);
portable mode needs a CPU with AVX2.
Still not the same across CPU vendors (session 8): with all of the above, the
Intel Xeon VM (Sapphire Rapids) and an AMD EPYC VM (Zen 4) still trained
differently from the first epoch (loss 2.043 vs 2.039). On the AMD VM none
of the knobs that would imitate the Intel CPU changes a weight: MKL's
instruction cap, OpenBLAS's core type, numpy's SIMD dispatch; MKL_VERBOSE
shows every call of a step is an SGEMM in COMPATIBLE mode on a fixed 2
threads. The cause is not found. The committed dvc.lock is therefore made on
the project's machine kind (AMD EPYC, AVX-512, 2 threads), where CI runs;
on other CPUs expect the seed spread the README states.
`native` keeps the fastest kernels. On CUDA some kernels the detector needs
(e.g. the backward of the FPN's nearest upsampling) add with atomics in no
fixed order; torch warns about those and runs them anyway.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.utils.deterministic

from pipeline.config import TrainConfig


@dataclass(frozen=True)
class Placement:
    """This process's device and its place among the training processes."""

    device: torch.device
    autocast: torch.dtype | None  # None: plain fp32
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """The process that logs, validates and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class Schedule:
    """Batch and optimisation figures for a placement (per process where it says so)."""

    batch_size: int  # per process
    num_workers: int  # per process
    lr: float
    warmup_iters: int
    ema_decay: float

    def describe(self, placement: Placement) -> str:
        return (
            f"training on {placement.device.type} x{placement.world_size}, "
            f"{'bf16' if placement.autocast == torch.bfloat16 else 'fp32'}, batch {self.batch_size} per process, "
            f"lr {self.lr:g}"
        )


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("train.device is cuda but torch sees no GPU; set train.device: auto or cpu")
    if local_rank >= torch.cuda.device_count():
        raise SystemExit(
            f"process {local_rank} of this node has no GPU of its own ({torch.cuda.device_count()} visible); "
            "start at most that many processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def resolve_precision(choice: str, device: torch.device) -> torch.dtype | None:
    if choice == "fp32" or (choice == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if choice == "bf16":
            raise SystemExit("train.precision is bf16 but this GPU does not support bfloat16; set auto or fp32")
        return None
    return torch.bfloat16


PORTABLE_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's vectorised kernels: the AVX2 build on every CPU
    "MKL_CBWR": "COMPATIBLE",  # MKL: its SSE2 path, the one Intel vouches for on other vendors' CPUs too
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # for anything still reaching oneDNN
}
PORTABLE_CAPABILITY = "AVX2"


def fix_cpu_numerics(mode: str) -> None:
    """Pin the CPU kernels for `train.cpu_numerics` (module docstring); call before the process's first tensor op.

    torch reads its CPU capability once, at the first kernel it dispatches, and
    MKL its code path at its first call: later changes would be silently ignored,
    so a process that already computed with other kernels is refused.
    """
    if mode == "native":
        return
    before = os.environ.get("ATEN_CPU_CAPABILITY")
    os.environ["ATEN_CPU_CAPABILITY"] = PORTABLE_ENVIRONMENT["ATEN_CPU_CAPABILITY"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == PORTABLE_CAPABILITY:
        os.environ.update(PORTABLE_ENVIRONMENT)
        torch.backends.mkldnn.enabled = False
        baseline_opencv()
    else:  # refused: the process is left as it was (a caller that goes on computes as before)
        if before is None:
            del os.environ["ATEN_CPU_CAPABILITY"]
        else:
            os.environ["ATEN_CPU_CAPABILITY"] = before
        raise SystemExit(
            f"train.cpu_numerics is portable, but torch's CPU kernels run at {capability}, not {PORTABLE_CAPABILITY}: "
            "this CPU lacks AVX2, or this process computed before the kernels were pinned; set train.cpu_numerics: native"
        )


def baseline_opencv() -> None:
    """OpenCV's baseline code, without its run-time dispatch to wider SIMD or IPP (module docstring).

    Both switches hold for the whole process and for DataLoader workers forked
    from it; `OPENCV_IPP` also reaches processes started afresh. The IPP switch
    is kept per thread by OpenCV, so it is set in the thread that reads and
    augments (the main thread, and each forked worker's copy of it).
    """
    import cv2

    os.environ["OPENCV_IPP"] = "disabled"
    cv2.setUseOptimized(False)
    cv2.ipp.setUseIPP(False)


def cpu_numerics_summary() -> dict[str, str]:
    """What arithmetic this process uses (logged with each training run, to explain a difference between machines)."""
    import platform

    return {
        "cpu": _cpu_model() or platform.processor() or "unknown",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
        "onednn": str(torch.backends.mkldnn.enabled),
        "opencv_optimized": str(_opencv_optimized()),
        "torch": torch.__version__,
    }


def _opencv_optimized() -> bool:
    import cv2

    return cv2.useOptimized() or cv2.ipp.useIPP()


def _cpu_model() -> str | None:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def place(cfg: TrainConfig) -> Placement:
    """Join the torchrun process group if there is one, and pick this process's device.

    Also pins the CPU kernels, fixes the thread count and turns on deterministic algorithms (module docstring).
    """
    world_size, rank, local_rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    fix_cpu_numerics(cfg.cpu_numerics)
    device = resolve_device(cfg.device, local_rank)
    torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace, which must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = False  # benchmarking picks kernels by timing, i.e. by chance
    torch.use_deterministic_algorithms(True, warn_only=True)
    # On by default with the above, it fills every new tensor with NaN so that a bug reading
    # uninitialised memory is at least repeatable; that costs ~10 % of a CPU training step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return Placement(device, resolve_precision(cfg.precision, device), rank, world_size)


def barrier(placement: Placement) -> None:
    if placement.distributed:
        dist.barrier()


def release(placement: Placement) -> None:
    if placement.distributed and dist.is_initialized():
        dist.destroy_process_group()


def schedule(cfg: TrainConfig, placement: Placement) -> Schedule:
    on_cuda = placement.device.type == "cuda"
    batch = cfg.cuda_batch_size if on_cuda else cfg.batch_size
    scale = batch * placement.world_size / cfg.batch_size
    return Schedule(
        batch_size=batch,
        num_workers=cfg.cuda_num_workers if on_cuda else cfg.num_workers,
        lr=cfg.lr * (math.sqrt(scale) if cfg.optimizer == "adamw" else scale),
        # Same number of images of warm-up (at least one step if any), and an average over the same number of images.
        warmup_iters=max(1, round(cfg.warmup_iters / scale)) if cfg.warmup_iters else 0,
        ema_decay=cfg.ema_decay**scale,
    )


def all_true(flag: bool, placement: Placement) -> bool:
    """Whether `flag` holds in every process: they must agree, e.g. to stop, or the others wait forever."""
    if not placement.distributed:
        return flag
    t = torch.tensor(int(flag), device=placement.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def mean_over_processes(values: dict[str, float], placement: Placement) -> dict[str, float]:
    if not placement.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=placement.device)
    dist.all_reduce(t)
    return {k: v / placement.world_size for k, v in zip(keys, t.tolist(), strict=True)}
