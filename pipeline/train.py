"""DVC stage `train`: train the detector, with resumable checkpoints, logged to MLflow.

    python -m pipeline.train --splits build/splits --data data --out build/train --metrics reports/train.json

Each epoch prints one line (losses, validation mAP@.5, learning rate, ETA);
on a terminal a progress bar runs within the epoch. A checkpoint is written
every `train.checkpoint_every` epochs; a rerun with the same configuration and
training data resumes from it (and continues the same MLflow run) instead of
starting over. A non-finite loss stops training at once, keeping the last good
checkpoint, because every later step would only spread NaNs through the weights.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import augment
from pipeline.config import Params, add_config_arguments, load_params, load_taxonomy
from pipeline.dataset import CocoDetection, collate
from pipeline.metrics import coco_detection_metrics
from pipeline.model import build_model
from pipeline.predict import predict, to_coco_results
from pipeline.tracking import configure, flatten, read_run_id, write_run_ref

CHECKPOINT = "checkpoint.pt"


class NonFiniteLossError(RuntimeError):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


TRAINING_CODE = ("train.py", "model.py", "backbones.py", "augment.py", "dataset.py")


def fingerprint(params: Params, class_names: list[str], train_split: Path) -> str:
    """Identifies what a checkpoint was trained with (configuration, data and code):
    resuming under anything else would mix two different runs."""
    h = hashlib.sha256()
    for module in TRAINING_CODE:
        h.update((Path(__file__).parent / module).read_bytes())
    for section in (params.model, params.augment, params.train):
        h.update(section.model_dump_json().encode())
    h.update(json.dumps(class_names).encode())
    h.update(train_split.read_bytes())
    return h.hexdigest()[:16]


def warmup_cosine(warmup_iters: int, total_iters: int):
    def factor(step: int) -> float:
        if step < warmup_iters:
            return 0.001 + (1 - 0.001) * step / warmup_iters
        progress = (step - warmup_iters) / max(1, total_iters - warmup_iters)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(model: torch.nn.Module, params: Params) -> torch.optim.Optimizer:
    cfg = params.train
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


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
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(live[name].detach(), alpha=1 - d)
            else:
                value.copy_(live[name])


def train_one_epoch(model, loader, optimizer, scheduler, epoch: int, show_bar: bool, average: WeightAverage) -> dict[str, float]:
    model.train()
    sums: dict[str, float] = {}
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not show_bar, file=sys.stderr)
    for step, (images, targets) in enumerate(bar):
        losses = model(list(images), list(targets))
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            detail = {k: v.item() for k, v in losses.items()}
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch}, step {step}: {detail}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Clipping keeps one bad batch early in from-scratch training from blowing up the weights.
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        average.update(model)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        sums["loss"] = sums.get("loss", 0.0) + loss.item()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return {k: v / max(1, len(loader)) for k, v in sums.items()}


def validation_map(model, dataset: CocoDetection) -> dict:
    return coco_detection_metrics(dataset.coco, to_coco_results(predict(model, dataset)))


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash while saving leaves the previous checkpoint intact


def train(params: Params, class_names: list[str], splits: Path, data: Path, out: Path) -> dict:
    cfg = params.train
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    train_set = CocoDetection(
        splits / "train.json", data, augment.build(params.augment.preset, params.augment.degradation_probability, cfg.seed)
    )
    val_set = CocoDetection(splits / "val.json", data)
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.num_workers,
        collate_fn=collate,
        drop_last=len(train_set) > cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=cfg.num_workers > 0,
    )
    model = build_model(params.model, len(class_names))
    optimizer = make_optimizer(model, params)
    average = WeightAverage(model, cfg.ema_decay)
    total_iters = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_iters, total_iters))

    fp = fingerprint(params, class_names, splits / "train.json")
    ckpt_path = out / CHECKPOINT
    start_epoch, history, best, run_id = 1, [], {"map_50": -1.0, "map": -1.0, "epoch": 0}, None
    best_state = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt.get("fingerprint") == fp:
            model.load_state_dict(ckpt["model"])
            average.module.load_state_dict(ckpt["average"])
            average.updates = ckpt["average_updates"]
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["torch_rng"])
            start_epoch, history, best, run_id = ckpt["epoch"] + 1, ckpt["history"], ckpt["best"], ckpt["run_id"]
            best_state = ckpt["best_state"]
            print(f"resuming from {ckpt_path} after epoch {ckpt['epoch']}")
        else:
            print(f"{ckpt_path} was trained with another configuration, data or code; starting afresh")

    mlflow = configure()
    with mlflow.start_run(run_id=run_id) as run:
        if run_id is None:
            mlflow.log_params(flatten("", {"model": params.model.model_dump(), "augment": params.augment.model_dump(), "train": cfg.model_dump()}))
            mlflow.log_params({"classes": ",".join(class_names), "train_images": len(train_set), "val_images": len(val_set)})
        started = time.monotonic()
        for epoch in range(start_epoch, cfg.epochs + 1):
            losses = train_one_epoch(model, loader, optimizer, scheduler, epoch, sys.stderr.isatty(), average)
            val = validation_map(average.module, val_set)
            history.append({"epoch": epoch, **losses, "val_map": val["map"], "val_map_50": val["map_50"]})
            mlflow.log_metrics({**{f"train_{k}": v for k, v in losses.items()}, "val_map": val["map"], "val_map_50": val["map_50"], "lr": optimizer.param_groups[0]["lr"]}, step=epoch)
            if val["map_50"] > best["map_50"]:
                best = {"map_50": val["map_50"], "map": val["map"], "epoch": epoch}
                best_state = {k: v.detach().clone() for k, v in average.module.state_dict().items()}
            elapsed = time.monotonic() - started
            eta = elapsed / (epoch - start_epoch + 1) * (cfg.epochs - epoch)
            print(
                f"epoch {epoch:3d}/{cfg.epochs} loss {losses['loss']:.3f} val mAP@.5 {val['map_50']:.3f} "
                f"mAP {val['map']:.3f} lr {optimizer.param_groups[0]['lr']:.4f} "
                f"elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min",
                flush=True,
            )
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                save_checkpoint(
                    ckpt_path, model=model.state_dict(), average=average.module.state_dict(), average_updates=average.updates,
                    optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                    torch_rng=torch.get_rng_state(), epoch=epoch, history=history, best=best, best_state=best_state,
                    run_id=run.info.run_id, fingerprint=fp,
                )
        run_id = run.info.run_id
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
    history = summary.pop("history")
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(summary, indent=1) + "\n")
    (args.metrics.parent / "train_history.json").write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    main()
