"""What pinning MKL to its vendor-neutral branch costs: training-step time under portable numerics with
`MKL_CBWR=AVX2,STRICT` (the pin until session 7, which non-Intel CPUs do not run) and `COMPATIBLE` (the pin
now, pipeline/hardware.py); prints a table.

    python -m bench.mkl_branch_speed [--batch 8] [--steps 6]

Each measurement runs in a fresh interpreter (MKL reads the pin at its first
call), the two branches taking turns twice, so that a slow phase of the
machine falls on both. One step: the default detector's forward with the
loss, backward and AdamW, on random images at the default input size, with
the training's thread count. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

STEP_TIMES = """
import json, os, statistics, sys, time, torch
from pipeline import hardware
from pipeline.config import load_params
from pipeline.model import build_model
params = load_params()
hardware.fix_cpu_numerics("portable")
os.environ["MKL_CBWR"] = sys.argv[1]  # before MKL's first call, still to come
torch.set_num_threads(params.train.threads)
torch.use_deterministic_algorithms(True, warn_only=True)
torch.manual_seed(0)
model = build_model(params.model, 5).train()
optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
size, batch, steps = params.model.min_size, int(sys.argv[2]), int(sys.argv[3])
images = [torch.rand(3, size, size) for _ in range(batch)]
targets = [{"boxes": torch.tensor([[10.0, 20, 160, 170], [150, 150, 300, 260]]), "labels": torch.tensor([1, 3])}] * batch
times = []
for _ in range(steps + 1):  # the first step warms up
    started = time.perf_counter()
    loss = sum(model(images, targets).values())
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    times.append(time.perf_counter() - started)
print(json.dumps(statistics.median(times[1:])))
"""
BRANCHES = ("AVX2,STRICT", "COMPATIBLE")


def median_step(branch: str, batch: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    done = subprocess.run([sys.executable, "-c", STEP_TIMES, branch, str(batch), str(steps)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {b: [] for b in BRANCHES}
    for _ in range(2):
        for branch in BRANCHES:
            results[branch].append(median_step(branch, args.batch, args.steps))
    base = min(results[BRANCHES[0]])
    print(f"training step, batch {args.batch}, portable numerics; median of {args.steps} steps per run, two runs (s)")
    print("| MKL_CBWR | run 1 | run 2 | best vs AVX2 |\n|---|---|---|---|")
    for branch, times in results.items():
        print(f"| {branch} | {times[0]:.3f} | {times[1]:.3f} | {min(times) / base:.2f} x |")


if __name__ == "__main__":
    main()
