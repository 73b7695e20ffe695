"""Digests of every kind of arithmetic training does, under `train.cpu_numerics` portable: where two CPUs part.

    python -m bench.numerics_fingerprint [--native] [--data data --splits build/splits] [--params P --classes C]

Two machines that train apart (README, Figures; BENCHMARKS.md, Reproducibility)
run this and compare the tables line by line: the first component whose
digest differs is where the arithmetic parts, in seconds instead of a
30-minute `make run`. Each row digests the exact bytes of a result:

- sgemm: matrix products of fixed inputs (MKL);
- conv: forward and backward of a 3x3, a depthwise 3x3 and a 1x1
  convolution (torch's im2col route onto MKL, oneDNN off);
- pointwise: the activations and losses the detector computes (ReLU,
  hard-swish, hard-sigmoid, sigmoid, logistic and focal loss, exp, log, sqrt;
  torch's vectorised kernels, Sleef);
- norms: batch and group norm forward and backward, average pooling, a
  vector norm (torch's reductions);
- jpeg: a photo encoded by OpenCV (as the synthetic data stage does) and
  decoded by Pillow (as the training dataset reads it);
- augment: the training augmentation of a few drawn images (OpenCV's
  baseline code, albumentations, numpy);
- steps: three training steps of the detector on random images, as the
  train stage takes them (its optimiser and warm-up schedule, gradient
  clipping, weight average);
- first batch (with --data and --splits, e.g. after `make run`): the train
  stage's first batch of epoch 1 (its image ids, its augmented pixels) and
  the losses and gradients of its initial model on it, drawn in the train
  stage's order (tests/test_numerics_fingerprint.py checks the ids against a
  traced training run).

BENCHMARKS.md (Reproducibility) keeps the table of the machine that made the
committed dvc.lock.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from pipeline import hardware
from pipeline.config import add_config_arguments, load_params, load_taxonomy


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.detach().contiguous().numpy().tobytes() if hasattr(a, "detach") else bytes(memoryview(a)))
    return h.hexdigest()[:16]


def sgemm(torch) -> str:
    g = torch.Generator().manual_seed(0)
    shapes = [(64, 64, 64), (900, 16, 72), (3, 1000, 5000), (257, 129, 1023), (6400, 96, 144)]  # (m, n, k): [m, k] @ [k, n]
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
    from torchvision.ops import sigmoid_focal_loss

    functional = torch.nn.functional
    g = torch.Generator().manual_seed(2)
    x = torch.rand(100_003, generator=g) * 8 - 4
    target = (torch.rand(100_003, generator=g) > 0.9).float()
    return _digest(functional.relu(x), functional.hardswish(x), functional.hardsigmoid(x), x.sigmoid(), x.exp(),
                   (x.abs() + 1e-3).log(), x.abs().sqrt(), functional.binary_cross_entropy_with_logits(x, target, reduction="none"),
                   sigmoid_focal_loss(x, target, reduction="none"))


def norms(torch) -> str:
    functional = torch.nn.functional
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 32, 20, 20, generator=g, requires_grad=True)
    weight = torch.rand(32, generator=g, requires_grad=True)
    bias = torch.rand(32, generator=g, requires_grad=True)
    running_mean, running_var = torch.zeros(32), torch.ones(32)
    batch = functional.batch_norm(x, running_mean, running_var, weight, bias, training=True)
    group = functional.group_norm(x, 16, weight, bias)
    pooled = functional.adaptive_avg_pool2d(x, 1)
    (batch.square().sum() + group.square().sum() + pooled.sum()).backward()
    return _digest(batch, group, pooled, running_mean, running_var, x.grad, weight.grad, bias.grad, torch.linalg.vector_norm(x.detach()))


def jpeg() -> str:
    import io

    import cv2
    import numpy as np

    from pipeline.imageio import read_rgb

    rng = np.random.default_rng(4)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise SystemExit("OpenCV could not encode the test JPEG")
    return _digest(encoded, np.ascontiguousarray(read_rgb(io.BytesIO(encoded.tobytes()))))


def augmentation() -> str:
    import numpy as np

    from pipeline import augment

    transform = augment.build("truck_camera", 1.0)
    rng = np.random.default_rng(5)
    outputs = []
    for index in range(12):
        image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        image[20:70, 30:90] = rng.integers(0, 256, 3, dtype=np.uint8)
        augment.reseed(transform, 1, 1, index)
        outputs.append(np.ascontiguousarray(transform(image=image, bboxes=[[30.0, 20.0, 90.0, 70.0]], labels=[1])["image"]))
    return _digest(*outputs)


def steps(torch, params) -> str:
    from pipeline.model import build_model
    from pipeline.train import WeightAverage, make_optimizer, warmup_cosine

    torch.manual_seed(0)
    model = build_model(params.model.model_copy(update={"min_size": 128, "max_size": 128}), 3).train()
    optimizer = make_optimizer(model, params.train, params.train.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(params.train.warmup_iters, 1000))
    average = WeightAverage(model, params.train.ema_decay)
    g = torch.Generator().manual_seed(6)
    images = [torch.rand(3, 128, 128, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 20, 60, 70]]), "labels": torch.tensor([1])}] * 2
    for _ in range(3):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)  # as train_one_epoch does
        optimizer.step()
        scheduler.step()
        average.update(model)
    return _digest(*model.parameters(), *average.module.state_dict().values())


def first_batch(torch, params, class_names: list[str], data: Path, splits: Path) -> tuple[str, str, str]:
    """The train stage's first batch of epoch 1 and its initial model's losses and gradients on it, drawn in the
    order pipeline/train.py's _train draws them (one process on the CPU, workers in the main process)."""
    from pipeline import augment
    import numpy as np

    from pipeline.dataset import CocoDetection, EpochSampler, collate
    from pipeline.model import build_model
    from pipeline.train import seed_everything

    cfg, aug = params.train, params.augment
    seed_everything(cfg.seed)
    train_set = CocoDetection(splits / "train.json", data, augment.build(aug.preset, aug.degradation_probability))
    mosaics = augment.mosaic_schedule(aug, cfg.epochs, params.model.min_size)
    CocoDetection(splits / "val.json", data)  # built there before the model, in case reading it ever draws a number
    sampler = EpochSampler(train_set, cfg.seed, 0, 1)
    loader = torch.utils.data.DataLoader(
        augment.SeededAugmentation(train_set, cfg.seed, mosaics),
        batch_size=cfg.batch_size, sampler=sampler, num_workers=0, collate_fn=collate,
        generator=torch.Generator().manual_seed(cfg.seed))
    model = build_model(params.model, len(class_names)).train()
    sampler.set_epoch(1)
    seed_everything(cfg.seed, 1, 0)
    images, targets = next(iter(loader))
    losses = model(images, targets)
    sum(losses.values()).backward()
    ids = np.array([int(t["image_id"]) for t in targets], dtype=np.int64)
    return _digest(ids), _digest(*images), _digest(*losses.values(), *(p.grad for p in model.parameters() if p.grad is not None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native", action="store_true", help="the CPU's fastest kernels instead of the portable ones")
    parser.add_argument("--data", type=Path, help="dataset folder holding images/ (with --splits: the first-batch rows)")
    parser.add_argument("--splits", type=Path, help="folder with train.json (the prepare stage's output)")
    add_config_arguments(parser)  # the recipe the data and split were made with (default: the default recipe)
    args = parser.parse_args(argv)
    if (args.data is None) != (args.splits is None):
        raise SystemExit("--data and --splits go together")
    if args.splits is not None and not (args.splits / "train.json").is_file():
        raise SystemExit(f"no {args.splits / 'train.json'}: run `make run` (or the prepare stage) first")
    params, class_names = load_params(args.params), load_taxonomy(args.classes).class_names
    # The train stage's own set-up (kernels pinned, its thread count, deterministic algorithms), on the CPU.
    hardware.place(params.train.model_copy(update={"cpu_numerics": "native" if args.native else "portable", "device": "cpu"}))
    import torch

    rows = [("sgemm", sgemm(torch)), ("conv", conv(torch)), ("pointwise", pointwise(torch)), ("norms", norms(torch)),
            ("jpeg", jpeg()), ("augment", augmentation()), ("steps", steps(torch, params))]
    if args.data is not None:
        ids, batch, gradients = first_batch(torch, params, class_names, args.data, args.splits)
        rows += [("first batch: image ids", ids), ("first batch: pixels", batch), ("first batch: losses and gradients", gradients)]
    summary = hardware.cpu_numerics_summary()
    print(f"\nnumerics fingerprint: {summary['cpu']}, kernels {summary['cpu_capability']}, MKL_CBWR {summary['mkl_cbwr']}, "
          f"oneDNN {summary['onednn']}, OpenCV optimised {summary['opencv_optimized']}, torch {summary['torch']}, "
          f"{torch.get_num_threads()} threads\n")
    print("| component | sha256 (first 16 hex) |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
