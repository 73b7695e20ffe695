"""Training-step time of binsight's detector with torchvision's per-image FCOS targets and with the
batched ones (pipeline/fcos_batched.py); prints a table.

    python -m bench.fcos_step_speed [--batch 32] [--steps 20] [--count-ops]

On a GPU as training runs there (bf16 autocast, channels_last), on the CPU in
fp32. One step: forward with the loss, backward, AdamW. Random weights and
images with 1 to 6 boxes each: the speed does not depend on what the model
has learned. Both variants compute the same losses (tests/test_fcos_batched.py).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from pipeline.config import load_params
from pipeline.fcos_batched import as_torchvision
from pipeline.model import build_model


def batch(size: int, count: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, size, size, generator=g).to(device) for _ in range(count)]
    targets = []
    for i in range(count):
        n = 1 + i % 6
        corner = torch.rand(n, 2, generator=g) * size * 0.6
        extent = size * (0.1 + torch.rand(n, 2, generator=g) * 0.4)
        boxes = torch.cat([corner, (corner + extent).clamp(max=size)], dim=1)
        targets.append({"boxes": boxes.to(device), "labels": torch.randint(1, 8, (n,), generator=g).to(device)})
    return images, targets


def step_times(model, images, targets, device: torch.device, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    times = []
    for _ in range(steps + 3):  # 3 warm-up steps
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with autocast:
            loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times[3:]


def count_ops(model, images, targets) -> int:
    """Tensor operations (torch.profiler's aten:: events, nested ones included) of one forward pass with the
    loss: on a GPU each is at least one kernel launch from Python."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(images, targets)
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--count-ops", action="store_true", help="count the tensor operations of a forward pass instead")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cfg = load_params().model.model_copy(update={"min_size": args.size, "max_size": args.size})
    batched = build_model(cfg, 7).train().to(device)
    per_image = as_torchvision(batched)  # torchvision's own targets, same weights
    if device.type == "cuda":
        batched, per_image = (m.to(memory_format=torch.channels_last) for m in (batched, per_image))
    images, targets = batch(args.size, args.batch, device)
    if args.count_ops:
        print(f"tensor operations of one forward pass with the loss, batch {args.batch} at {args.size} px")
        print("| FCOS targets | aten ops |\n|---|---|")
        for name, model in (("torchvision, image by image", per_image), ("batched (binsight)", batched)):
            print(f"| {name} | {count_ops(model, images, targets)} |")
        return
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training step, batch {args.batch} at {args.size} px, {where}; median of {args.steps} steps (s)")
    print("| FCOS targets | step (median) | step (min) |\n|---|---|---|")
    for _ in range(2):  # alternate, so that a slow phase of the machine falls on both
        for name, model in (("torchvision, image by image", per_image), ("batched (binsight)", batched)):
            times = step_times(model, images, targets, device, args.steps)
            print(f"| {name} | {statistics.median(times):.4f} | {min(times):.4f} |", flush=True)


if __name__ == "__main__":
    main()
