"""Training-step and inference time of the candidate detectors on this machine; prints a table.

    python -m bench.model_speed [--threads 2] [--size 320]

The numbers behind the choice of the default detector (pipeline/model.py):
what a training step of 8 images and a single-image inference cost on the CPU.
Random weights and images: speed does not depend on what the model has learned.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from pipeline.config import load_params
from pipeline.model import build_model

CANDIDATES = [
    ("fcos", "mobilenet_v3_small"),
    ("fcos", "mobilenet_v3_large"),
    ("fcos", "mobilenet_v2"),
    ("fcos", "compact_cnn"),
    ("fasterrcnn", "mobilenet_v3_small"),
    ("fasterrcnn", "mobilenet_v3_large"),
]


def measure(architecture: str, backbone: str, size: int, batch: int, repeats: int) -> tuple[float, float, int]:
    cfg = load_params().model.model_copy(update={"architecture": architecture, "backbone": backbone, "min_size": size, "max_size": size})
    model = build_model(cfg, 5).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    images = [torch.rand(3, size, size) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[10.0, 20, 100, 120], [150, 150, 200, 260]]) * size / 320, "labels": torch.tensor([1, 3])}] * batch
    steps = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - t)
    model.eval()
    infer = []
    with torch.inference_mode():
        for _ in range(repeats * 3 + 1):
            t = time.perf_counter()
            model([images[0]])
            infer.append(time.perf_counter() - t)
    params = sum(p.numel() for p in model.parameters())
    return sorted(steps[1:])[len(steps[1:]) // 2], sorted(infer[1:])[len(infer[1:]) // 2], params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"\n{args.threads} threads, {args.size}x{args.size} images, training batch {args.batch}, torch {torch.__version__}\n")
    print("| detector | backbone | parameters | training step | inference (1 image) |")
    print("|---|---|---|---|---|")
    for architecture, backbone in CANDIDATES:
        step, infer, params = measure(architecture, backbone, args.size, args.batch, args.repeats)
        print(f"| {architecture} | {backbone} | {params / 1e6:.1f} M | {step:.2f} s | {infer * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
