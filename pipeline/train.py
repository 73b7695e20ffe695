"""DVC stage `train`: train the detector, with resumable checkpoints, logged to MLflow.

    python -m pipeline.train --splits build/splits --data data --out build/train --metrics reports/train.json
    torchrun --nproc_per_node 4 -m pipeline.train ...   (the same stage on 4 GPUs, or 4 CPU processes)

Each epoch prints one line (losses, validation mAP@.5, learning rate, ETA);
on a terminal a progress bar runs within the epoch. A checkpoint is written
every `train.checkpoint_every` epochs; a rerun with the same configuration,
training data, code and hardware setup resumes from it (and continues the same MLflow run) instead of
starting over. A non-finite loss stops training at once, keeping the last good
checkpoint, because every later step would only spread NaNs through the weights.
pipeline/hardware.py says where training runs (CPU, CUDA, several processes)
and how batch and learning rate follow.

Randomness is a function of (train.seed, epoch, sample index, process) and
nothing else: each epoch's shuffle (dataset.EpochSampler), each sample's
augmentation (augment.SeededAugmentation) and the global generators, reseeded
at each epoch. So the number of DataLoader workers changes nothing, and a
training resumed from a checkpoint ends with the same weights as one that
ran through.

Debugging aid: with BINSIGHT_TRAIN_TRACE=<folder>, each process writes
<folder>/rank<r>.json: the image ids it trained on, per epoch, and a SHA-256
of its final weights (the distributed test checks both).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import augment, hardware, sources
from pipeline.coco import IMAGES_DIR
from pipeline.config import Params, TrainConfig, add_config_arguments, load_params, load_taxonomy
from pipeline.dataset import CocoDetection, EpochSampler, collate
from pipeline.hardware import Placement, Schedule
from pipeline.metrics import coco_detection_metrics
from pipeline.filehash import file_sha256
from pipeline.model import BackboneWeightsError, build_model
from pipeline.predict import predict, to_coco_results
from pipeline.tracking import configure, flatten, write_run_ref

CHECKPOINT = "checkpoint.pt"
TRACE_ENV = "BINSIGHT_TRAIN_TRACE"


class NonFiniteLossError(RuntimeError):
    pass


def seed_everything(*key: int) -> None:
    """Seed Python's, numpy's and torch's global generators (CPU and CUDA) from the integers in `key`."""
    seed = int(np.random.SeedSequence(key).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fingerprint(params: Params, class_names: list[str], splits: Path, data: Path, placement: Placement, schedule: Schedule) -> str:
    """Identifies what a checkpoint was trained with (configuration, data, code and hardware setup):
    resuming under anything else would mix two different runs."""
    h = hashlib.sha256()
    # Every pipeline file this stage runs, found from its imports, so the list cannot go stale.
    h.update(sources.digest(sources.stage_sources("pipeline.train")).encode())
    for section in (params.model, params.augment, params.train):
        h.update(section.model_dump_json().encode())
    h.update(json.dumps(class_names).encode())
    h.update(split_content_digest(splits, data).encode())
    if params.model.local_backbone_weights is not None:  # the file's content, which its path does not name
        h.update(file_sha256(params.model.local_backbone_weights).encode())
    setup = {"device": placement.device.type, "processes": placement.world_size, "autocast": str(placement.autocast)}
    h.update(json.dumps({**setup, **dataclasses.asdict(schedule)}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def split_content_digest(splits: Path, data: Path) -> str:
    """SHA-256 over the train and val split files and the bytes of every image they list.

    The split files name images but not their pixels: a dataset regenerated or re-encoded under the same names
    (a changed synthesis, another JPEG encoder) reruns the stage in DVC, and without the pixels here the old
    checkpoint would match and hand back weights trained on the old images. Validation counts too: it selects
    the weights that go on. Hashing every image costs well under a second for thousands of photos.
    """
    h = hashlib.sha256()
    for name in ("train.json", "val.json"):
        split_file = splits / name
        h.update(split_file.read_bytes())
        for info in json.loads(split_file.read_text())["images"]:
            h.update(file_sha256(data / IMAGES_DIR / info["file_name"]).encode())
    return h.hexdigest()


def warmup_cosine(warmup_iters: int, total_iters: int):
    def factor(step: int) -> float:
        if step < warmup_iters:
            return 0.001 + (1 - 0.001) * step / warmup_iters
        progress = (step - warmup_iters) / max(1, total_iters - warmup_iters)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


BACKBONE_BODY = "backbone.body."  # the feature extractor's parameters; the FPN ("backbone.fpn.") is new like the head


def parameter_groups(model: torch.nn.Module, lr: float, backbone_lr_scale: float) -> list[dict]:
    """The trainable parameters: one group when `backbone_lr_scale` is 1 (the same steps as ever), else the FPN and
    head at lr first (the group the logs read) and the backbone's feature extractor at lr x `backbone_lr_scale`.

    Takes the bare model: a wrapper (DDP, torch.compile) prefixes the names, and a scale that reached no parameter is
    refused rather than silently ignored.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if backbone_lr_scale == 1.0:
        return [{"params": [p for _, p in trainable], "lr": lr}]
    body = [p for name, p in trainable if name.startswith(BACKBONE_BODY)]
    rest = [p for name, p in trainable if not name.startswith(BACKBONE_BODY)]
    if not body or not rest:
        raise ValueError(f"train.backbone_lr_scale {backbone_lr_scale} needs trainable parameters both under "
                         f"{BACKBONE_BODY!r} and elsewhere; this model has {len(body)} and {len(rest)}")
    return [{"params": rest, "lr": lr}, {"params": body, "lr": lr * backbone_lr_scale}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, lr, cfg.backbone_lr_scale)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class WeightAverage:
    """Exponential moving average of the weights (and batch-norm statistics).

    Short from-scratch schedules leave the raw weights noisy from one step to
    the next (validation mAP jumps by 0.1 between epochs); the average is
    steadier and better, and is what gets evaluated, selected and exported.
    The decay ramps up so that the first steps are not averaged with the
    random initialisation for long.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = model.state_dict()
        floats, live_floats = [], []
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                floats.append(value)
                live_floats.append(live[name].detach())
            else:
                value.copy_(live[name])
        # One fused kernel per step on a GPU instead of two per tensor (hundreds); the same
        # arithmetic element by element, so the CPU figures are unchanged.
        torch._foreach_mul_(floats, d)
        torch._foreach_add_(floats, live_floats, alpha=1 - d)


def train_one_epoch(
    model, loader, optimizer, scheduler, epoch: int, average: WeightAverage, placement: Placement,
    show_bar: bool, seen_ids: list[int] | None = None, timing: dict[str, float] | None = None,
) -> dict[str, float]:
    """One pass over this process's share of the data; the mean losses over all processes.

    `model` may be wrapped in DistributedDataParallel; `average` follows the bare module.
    `timing`, if given, receives the seconds spent waiting for data and the rest of the epoch.
    """
    model.train()
    bare = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    device = placement.device
    autocast = torch.autocast(device.type, dtype=placement.autocast) if placement.autocast else contextlib.nullcontext()
    # Losses are summed where they are computed (float64, so the sum is the one Python floats gave) and
    # read once per epoch, not four times per step.
    sums: dict[str, torch.Tensor] = {}
    waited, started = 0.0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not show_bar, file=sys.stderr)
    batches = iter(bar)
    step = 0
    while True:
        asked = time.perf_counter()
        batch = next(batches, None)
        waited += time.perf_counter() - asked
        if batch is None:
            break
        images, targets = batch
        if seen_ids is not None:
            seen_ids.extend(int(t["image_id"]) for t in targets)
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with autocast:
            losses = model(images, targets)
        loss = sum(losses.values())
        # Every process must stop at the same step: one that went on would wait forever for the others.
        if not hardware.all_true(bool(torch.isfinite(loss)), placement):
            detail = {k: v.item() for k, v in losses.items()}
            where = f" (process {placement.rank}: {detail})" if placement.distributed else f": {detail}"
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch}, step {step}{where}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Clipping keeps one bad batch early in from-scratch training from blowing up the weights.
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        average.update(bare)
        for k, v in [*losses.items(), ("loss", loss)]:
            sums[k] = sums[k] + v.detach().double() if k in sums else v.detach().double()
        if show_bar:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        step += 1
    if timing is not None:
        timing.update(data_s=waited, steps_s=time.perf_counter() - started - waited)
    means = {k: v.item() / max(1, len(loader)) for k, v in sums.items()}
    return hardware.mean_over_processes(means, placement)


# Images per forward pass when validating: a GPU takes many at once; the CPU keeps the batch its figures were made with.
VALIDATION_BATCH = {"cpu": 8, "cuda": 32}


def validation_map(model, dataset: CocoDetection, batch_size: int = VALIDATION_BATCH["cpu"]) -> dict:
    return coco_detection_metrics(dataset.coco, to_coco_results(predict(model, dataset, batch_size)))


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash while saving leaves the previous checkpoint intact


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy in the default memory layout, whatever device and layout training used."""
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True) for k, v in state.items()}


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the parameters. Batch-norm statistics are left out: each process updates its own
    in every forward pass, and DistributedDataParallel aligns them only at the start of the next."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def write_trace(folder: Path, placement: Placement, seen: dict[int, list[int]], model: torch.nn.Module) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trace = {"rank": placement.rank, "world_size": placement.world_size, "image_ids": seen, "weights_sha256": weights_digest(model)}
    (folder / f"rank{placement.rank}.json").write_text(json.dumps(trace) + "\n")


def train(params: Params, class_names: list[str], splits: Path, data: Path, out: Path) -> dict | None:
    """Train; the summary in the main process, None in the others (under torchrun)."""
    placement = hardware.place(params.train)
    try:
        summary = _train(params, class_names, splits, data, out, placement)
        hardware.barrier(placement)  # the others wait while process 0 validates and saves the last epoch
        return summary
    finally:
        hardware.release(placement)


def _train(params: Params, class_names: list[str], splits: Path, data: Path, out: Path, placement: Placement) -> dict | None:
    cfg = params.train
    schedule = hardware.schedule(cfg, placement)
    main = placement.main
    seed_everything(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    aug = params.augment
    train_set = CocoDetection(splits / "train.json", data, augment.build(aug.preset, aug.degradation_probability))
    mosaics = augment.mosaic_schedule(aug, cfg.epochs, params.model.min_size)
    val_set = CocoDetection(splits / "val.json", data)
    sampler = EpochSampler(train_set, cfg.seed, placement.rank, placement.world_size)
    on_cuda = placement.device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        augment.SeededAugmentation(train_set, cfg.seed, mosaics),
        batch_size=schedule.batch_size,
        sampler=sampler,
        num_workers=schedule.num_workers,
        collate_fn=collate,
        drop_last=len(sampler) > schedule.batch_size,
        pin_memory=on_cuda,
        # Only the workers' base seed comes from here (nothing in them uses it); without a generator
        # the loader would draw it from the global one, which a resumed run has not advanced alike.
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=schedule.num_workers > 0,
    )
    net = build_model(params.model, len(class_names)).to(placement.device)
    if on_cuda:
        net = net.to(memory_format=torch.channels_last)  # what tensor cores convolve fastest
    optimizer = make_optimizer(net, cfg, schedule.lr)
    average = WeightAverage(net, schedule.ema_decay)
    total_iters = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(schedule.warmup_iters, total_iters))

    fp = fingerprint(params, class_names, splits, data, placement, schedule)
    ckpt_path = out / CHECKPOINT
    start_epoch, history, best, run_id = 1, [], {"map_50": -1.0, "map": -1.0, "epoch": 0}, None
    best_state = None
    say = print if main else (lambda *a, **k: None)
    say(schedule.describe(placement), flush=True)
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt.get("fingerprint") == fp:
            net.load_state_dict(ckpt["model"])
            average.module.load_state_dict(ckpt["average"])
            average.updates = ckpt["average_updates"]
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            start_epoch, history, best, run_id = ckpt["epoch"] + 1, ckpt["history"], ckpt["best"], ckpt["run_id"]
            best_state = ckpt["best_state"]
            say(f"resuming from {ckpt_path} after epoch {ckpt['epoch']}")
        else:
            say(f"{ckpt_path} was trained with another configuration, data, code or hardware setup; starting afresh")
    model = net
    if placement.distributed:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[placement.device] if on_cuda else None)

    trace_dir = os.environ.get(TRACE_ENV)
    seen: dict[int, list[int]] = {}
    mlflow = configure() if main else None
    with mlflow.start_run(run_id=run_id) if main else contextlib.nullcontext() as run:
        if main and run_id is None:
            mlflow.log_params(flatten("", {"model": params.model.model_dump(), "augment": params.augment.model_dump(), "train": cfg.model_dump()}))
            mlflow.log_params({f"numerics.{k}": v for k, v in hardware.cpu_numerics_summary().items()})
            mlflow.log_params({"classes": ",".join(class_names), "train_images": len(train_set), "val_images": len(val_set),
                               "device": placement.device.type, "processes": placement.world_size, "effective_lr": schedule.lr})
        started = time.monotonic()
        for epoch in range(start_epoch, cfg.epochs + 1):
            sampler.set_epoch(epoch)
            # Whatever draws from the global generators (e.g. Faster R-CNN's box sampling) draws
            # the same numbers in this epoch whether or not the run was resumed before it.
            seed_everything(cfg.seed, epoch, placement.rank)
            seen_ids = seen.setdefault(epoch, []) if trace_dir else None
            timing: dict[str, float] = {}
            losses = train_one_epoch(model, loader, optimizer, scheduler, epoch, average, placement, main and sys.stderr.isatty(), seen_ids, timing)
            if not main:
                continue
            validation_started = time.perf_counter()
            val = validation_map(average.module, val_set, VALIDATION_BATCH[placement.device.type])
            timing["validation_s"] = time.perf_counter() - validation_started
            history.append({"epoch": epoch, **losses, "val_map": val["map"], "val_map_50": val["map_50"]})
            mlflow.log_metrics({**{f"train_{k}": v for k, v in losses.items()}, "val_map": val["map"], "val_map_50": val["map_50"], "lr": optimizer.param_groups[0]["lr"]}, step=epoch)
            if val["map_50"] > best["map_50"]:
                best = {"map_50": val["map_50"], "map": val["map"], "epoch": epoch}
                best_state = cpu_copy(average.module.state_dict())
            elapsed = time.monotonic() - started
            eta = elapsed / (epoch - start_epoch + 1) * (cfg.epochs - epoch)
            print(
                f"epoch {epoch:3d}/{cfg.epochs} loss {losses['loss']:.3f} val mAP@.5 {val['map_50']:.3f} "
                f"mAP {val['map']:.3f} lr {optimizer.param_groups[0]['lr']:.4f} "
                f"elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min "
                f"(waiting for data {timing['data_s']:.1f} s, steps {timing['steps_s']:.1f} s, validation {timing['validation_s']:.1f} s)",
                flush=True,
            )
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                save_checkpoint(
                    ckpt_path, model=cpu_copy(net.state_dict()), average=cpu_copy(average.module.state_dict()),
                    average_updates=average.updates, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                    epoch=epoch, history=history, best=best, best_state=best_state, run_id=run.info.run_id, fingerprint=fp,
                )
        if main:
            run_id = run.info.run_id
    if trace_dir:
        write_trace(Path(trace_dir), placement, seen, net)
    if not main:
        return None
    # The weights that go on are those of the best validation epoch (val, not test: test stays unseen).
    torch.save(
        {"state_dict": best_state, "model_config": params.model.model_dump(), "class_names": class_names, "epoch": best["epoch"]},
        out / "model.pt",
    )
    write_run_ref(out / "run.json", run_id)
    return {"best_epoch": best["epoch"], "val_map_50": best["map_50"], "val_map": best["map"], "epochs": cfg.epochs, "history": history}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=Path, required=True, help="folder with train.json and val.json")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder holding images/")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.pt, checkpoint.pt and run.json")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON summary of training for dvc metrics")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = train(load_params(args.params), load_taxonomy(args.classes).class_names, args.splits, args.data, args.out)
    except NonFiniteLossError as err:
        raise SystemExit(f"training stopped: {err}; the last good checkpoint is kept. Lower train.lr or check the data.") from None
    except BackboneWeightsError as err:
        raise SystemExit(f"training cannot start: {err}") from None
    if summary is None:
        return  # not the main process: it writes nothing
    history = summary.pop("history")
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(summary, indent=1) + "\n")
    (args.metrics.parent / "train_history.json").write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    main()
