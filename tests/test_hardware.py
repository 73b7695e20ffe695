"""Where training runs: device fallback, precision, and the batch and schedule that follow the hardware."""

import pytest
import torch

from pipeline import hardware
from pipeline.config import TrainConfig
from pipeline.hardware import Placement
from tests.conftest import tiny_params_dict


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_device_falls_back_to_the_cpu(no_gpu):
    assert hardware.resolve_device("auto") == torch.device("cpu")
    assert hardware.resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_fails_clearly(no_gpu):
    with pytest.raises(SystemExit, match="train.device is cuda but torch sees no GPU"):
        hardware.resolve_device("cuda")


def test_more_processes_than_gpus_fails_clearly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert hardware.resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(SystemExit, match="process 2 of this node has no GPU of its own"):
        hardware.resolve_device("auto", local_rank=2)


def test_cpu_stays_fp32_unless_told():
    cpu = torch.device("cpu")
    assert hardware.resolve_precision("auto", cpu) is None
    assert hardware.resolve_precision("fp32", cpu) is None
    assert hardware.resolve_precision("bf16", cpu) is torch.bfloat16


def test_bad_torchrun_environment_fails_clearly(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SystemExit, match="WORLD_SIZE='two' is not an integer"):
        hardware.place(TrainConfig(**tiny_params_dict()["train"]))


@pytest.fixture
def cfg() -> TrainConfig:
    train = tiny_params_dict()["train"]
    train.update(batch_size=8, cuda_batch_size=32, lr=0.002, warmup_iters=60, ema_decay=0.99, num_workers=1, cuda_num_workers=6)
    return TrainConfig(**train)


def test_one_cpu_process_trains_exactly_as_configured(cfg):
    s = hardware.schedule(cfg, Placement(torch.device("cpu"), None))
    assert (s.batch_size, s.num_workers, s.lr, s.warmup_iters, s.ema_decay) == (8, 1, 0.002, 60, 0.99)


def test_gpus_scale_lr_warmup_and_average_with_the_global_batch(cfg):
    s = hardware.schedule(cfg, Placement(torch.device("cuda", 0), torch.bfloat16, rank=0, world_size=2))
    # global batch 2 x 32 = 64 = 8 x the configured 8: AdamW's lr x sqrt(8), warm-up over as many images,
    # same average span in images
    assert (s.batch_size, s.num_workers) == (32, 6)
    assert s.lr == pytest.approx(0.002 * 8**0.5) and s.warmup_iters == 8 and s.ema_decay == pytest.approx(0.99**8)
    assert 1 / (1 - s.ema_decay) * 64 == pytest.approx(1 / (1 - 0.99) * 8, rel=0.05)


def test_cpu_processes_scale_too(cfg):
    s = hardware.schedule(cfg, Placement(torch.device("cpu"), None, rank=1, world_size=2))
    assert s.batch_size == 8 and s.lr == pytest.approx(0.002 * 2**0.5) and s.warmup_iters == 30


def test_sgd_scales_its_lr_linearly(cfg):
    sgd = cfg.model_copy(update={"optimizer": "sgd", "lr": 0.02})
    s = hardware.schedule(sgd, Placement(torch.device("cuda", 0), torch.bfloat16, rank=0, world_size=2))
    assert s.lr == pytest.approx(0.02 * 8)


def test_single_process_agreement_needs_no_process_group():
    single = Placement(torch.device("cpu"), None)
    assert hardware.all_true(True, single) and not hardware.all_true(False, single)
    assert hardware.mean_over_processes({"loss": 2.0}, single) == {"loss": 2.0}


def test_the_backbone_lr_share_must_be_a_share(cfg):
    with pytest.raises(ValueError, match="backbone_lr_scale"):
        TrainConfig.model_validate({**cfg.model_dump(), "backbone_lr_scale": 0})
    with pytest.raises(ValueError, match="backbone_lr_scale"):
        TrainConfig.model_validate({**cfg.model_dump(), "backbone_lr_scale": 1.5})


class LoaderBuilt(Exception):
    """Raised in place of building the training loader: what it was given is all these tests look at."""


@pytest.mark.parametrize(("device", "workers", "pinned"), [("cuda", 3, True), ("cpu", 1, False)])
def test_the_training_loader_gets_the_placements_workers_and_pinned_memory(monkeypatch, tmp_path, tiny_params, tiny_splits, tiny_dataset,
                                                                            taxonomy, device, workers, pinned):
    """On a GPU the loader decodes and augments in train.cuda_num_workers processes (kept across epochs) into pinned
    memory, so that copies to the GPU overlap the steps; on the CPU it works as configured. The GPU test trains with
    no workers and is skipped without a GPU, so the loader's arguments are checked here, for a CUDA placement on
    any machine: nothing before the loader touches the device."""
    from pipeline import train

    params = tiny_params[0]
    params = params.model_copy(update={"train": params.train.model_copy(update={"num_workers": 1, "cuda_num_workers": 3,
                                                                                "batch_size": 2, "cuda_batch_size": 5})})
    given = {}

    def capture(dataset, **kwargs):
        given.update(kwargs)
        raise LoaderBuilt

    monkeypatch.setattr(torch.utils.data, "DataLoader", capture)
    placement = Placement(torch.device("cuda", 0), torch.bfloat16) if device == "cuda" else Placement(torch.device("cpu"), None)
    with pytest.raises(LoaderBuilt):
        train._train(params, taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "out", placement)
    assert (given["num_workers"], given["pin_memory"], given["persistent_workers"]) == (workers, pinned, workers > 0)
    assert given["batch_size"] == (5 if device == "cuda" else 2)
