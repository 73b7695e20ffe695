"""Digests of every kind of arithmetic training does, under `train.cpu_numerics` portable: where two CPUs part.

    python -m bench.numerics_fingerprint [--native] [--data data --splits build/splits]

Two machines that train apart (README, Figures; BENCHMARKS.md, Reproducibility)
run this and compare the tables line by line: the first component whose
digest differs is where the arithmetic parts, in seconds instead of a
30-minute `make run`. Each row digests the exact bytes of a result:

- sgemm: matrix products of fixed inputs, shapes the detector uses (MKL);
- conv: forward and backward of a 3x3, a depthwise 3x3 and a 1x1
  convolution (torch's im2col route onto MKL, oneDNN off);
- pointwise: exp, log, sigmoid, softmax, GELU (torch's vectorised kernels, Sleef);
- jpeg: encoding and decoding a photo-like image (OpenCV, libjpeg-turbo);
- augment: the training augmentation of a few drawn images (OpenCV's
  baseline code, albumentations, numpy);
- steps: three AdamW steps of the default detector on random images;
- first batch (with --data and --splits, e.g. after `make run`): the first
  augmented batch of the real loader and the detector's losses and gradients on it.

Session 8 recorded its table on an AMD EPYC VM (BENCHMARKS.md,
Reproducibility); the next session on an Intel VM compares.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from pipeline import hardware


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.detach().contiguous().numpy().tobytes() if hasattr(a, "detach") else bytes(memoryview(a)))
    return h.hexdigest()[:16]


def sgemm(torch) -> str:
    g = torch.Generator().manual_seed(0)
    shapes = [(64, 64, 64), (900, 16, 72), (3, 1000, 5000), (257, 129, 1023), (6400, 96, 144)]
    return _digest(*(torch.rand(m, k, generator=g) @ torch.rand(k, n, generator=g) for m, n, k in shapes))


def conv(torch) -> str:
    g = torch.Generator().manual_seed(1)
    outputs = []
    for out_channels, in_channels, kernel, groups in ((32, 16, 3, 1), (32, 32, 3, 32), (64, 32, 1, 1)):
        x = torch.rand(4, in_channels, 40, 40, generator=g, requires_grad=True)
        w = torch.rand(out_channels, in_channels // groups, kernel, kernel, generator=g, requires_grad=True)
        y = torch.nn.functional.conv2d(x, w, padding=kernel // 2, groups=groups)
        y.square().sum().backward()
        outputs += [y, x.grad, w.grad]
    return _digest(*outputs)


def pointwise(torch) -> str:
    x = torch.rand(100_003, generator=torch.Generator().manual_seed(2)) * 8 - 4
    return _digest(x.exp(), (x.abs() + 1e-3).log(), x.sigmoid(), x.softmax(0), torch.nn.functional.gelu(x))


def jpeg() -> str:
    import cv2
    import numpy as np

    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return _digest(encoded, cv2.imdecode(encoded, cv2.IMREAD_COLOR))


def augmentation() -> str:
    import numpy as np

    from pipeline import augment

    transform = augment.build("truck_camera", 1.0)
    rng = np.random.default_rng(4)
    outputs = []
    for index in range(12):
        image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        image[20:70, 30:90] = rng.integers(0, 256, 3, dtype=np.uint8)
        augment.reseed(transform, 1, 1, index)
        outputs.append(np.ascontiguousarray(transform(image=image, bboxes=[[30.0, 20.0, 90.0, 70.0]], labels=[1])["image"]))
    return _digest(*outputs)


def steps(torch) -> str:
    from pipeline.config import load_params
    from pipeline.model import build_model

    torch.manual_seed(0)
    model = build_model(load_params().model.model_copy(update={"min_size": 128, "max_size": 128}), 3).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(5)
    images = [torch.rand(3, 128, 128, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 20, 60, 70]]), "labels": torch.tensor([1])}] * 2
    for _ in range(3):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _digest(*model.parameters())


def first_batch(torch, data: Path, splits: Path) -> tuple[str, str]:
    """The real loader's first batch as the train stage draws it, and the detector's losses and gradients on it."""
    from pipeline import augment
    from pipeline.config import load_params, load_taxonomy
    from pipeline.dataset import CocoDetection, EpochSampler, collate
    from pipeline.model import build_model
    from pipeline.train import seed_everything

    params = load_params()
    cfg, aug = params.train, params.augment
    seed_everything(cfg.seed)
    train_set = CocoDetection(splits / "train.json", data, augment.build(aug.preset, aug.degradation_probability))
    mosaics = augment.mosaic_schedule(aug, cfg.epochs, params.model.min_size)
    loader = torch.utils.data.DataLoader(augment.SeededAugmentation(train_set, cfg.seed, mosaics), batch_size=cfg.batch_size,
                                         sampler=EpochSampler(train_set, cfg.seed, 0, 1), num_workers=0, collate_fn=collate)
    images, targets = next(iter(loader))
    model = build_model(params.model, len(load_taxonomy().class_names)).train()
    losses = model(images, targets)
    sum(losses.values()).backward()
    return _digest(*images), _digest(*losses.values(), *(p.grad for p in model.parameters() if p.grad is not None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native", action="store_true", help="the CPU's fastest kernels instead of the portable ones")
    parser.add_argument("--data", type=Path, help="dataset folder holding images/ (with --splits: the first-batch rows)")
    parser.add_argument("--splits", type=Path, help="folder with train.json (the prepare stage's output)")
    args = parser.parse_args(argv)
    if (args.data is None) != (args.splits is None):
        raise SystemExit("--data and --splits go together")
    hardware.fix_cpu_numerics("native" if args.native else "portable")  # before torch's first operation
    import torch

    torch.set_num_threads(2)  # the training's thread count (train.threads): MKL's sums depend on it
    torch.use_deterministic_algorithms(True, warn_only=True)
    rows = [("sgemm", sgemm(torch)), ("conv", conv(torch)), ("pointwise", pointwise(torch)), ("jpeg", jpeg()),
            ("augment", augmentation()), ("steps", steps(torch))]
    if args.data is not None:
        batch, gradients = first_batch(torch, args.data, args.splits)
        rows += [("first batch: pixels", batch), ("first batch: losses and gradients", gradients)]
    summary = hardware.cpu_numerics_summary()
    print(f"\nnumerics fingerprint: {summary['cpu']}, kernels {summary['cpu_capability']}, MKL_CBWR {summary['mkl_cbwr']}, "
          f"oneDNN {summary['onednn']}, OpenCV optimised {summary['opencv_optimized']}, torch {summary['torch']}, 2 threads\n")
    print("| component | sha256 (first 16 hex) |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
