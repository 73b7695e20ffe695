"""The training loop: outputs, resumption, and stopping on a non-finite loss."""

import json

import pytest
import torch

from pipeline import train as train_module


def test_one_epoch_writes_model_checkpoint_and_run(tiny_trained):
    bundle = torch.load(tiny_trained / "model.pt", weights_only=False)
    assert bundle["class_names"][0] == "plastic_bag" and bundle["state_dict"]
    ckpt = torch.load(tiny_trained / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 1 and {"model", "optimizer", "scheduler", "fingerprint"} <= set(ckpt)
    summary = json.loads((tiny_trained / "summary.json").read_text())
    assert summary["history"][0]["epoch"] == 1 and summary["history"][0]["loss"] > 0


def test_resumes_from_checkpoint_and_continues_the_run(tmp_path, tiny_trained, tiny_splits, tiny_dataset, tiny_params, taxonomy, capsys):
    import shutil

    out = tmp_path / "train"
    shutil.copytree(tiny_trained, out)
    params = tiny_params[0]
    # Same configuration: nothing left to do, the finished run is reused.
    summary = train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, out)
    assert "resuming from" in capsys.readouterr().out
    assert [h["epoch"] for h in summary["history"]] == [1]
    first_run = json.loads((tiny_trained / "run.json").read_text())["run_id"]
    assert json.loads((out / "run.json").read_text())["run_id"] == first_run


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path, tiny_trained, tiny_splits, tiny_dataset, tiny_params, taxonomy, capsys):
    import shutil

    out = tmp_path / "train"
    shutil.copytree(tiny_trained, out)
    params = tiny_params[0].model_copy(update={"train": tiny_params[0].train.model_copy(update={"lr": 0.0011})})
    train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, out)
    assert "starting afresh" in capsys.readouterr().out


def test_a_checkpoint_trained_on_other_pixels_under_the_same_names_is_not_resumed(
    tmp_path, tiny_trained, tiny_splits, tiny_dataset, tiny_params, taxonomy, capsys
):
    """A regenerated or re-encoded dataset keeps its file names and split files; only the pixels say it changed.
    Resuming would hand back the weights trained on the old images (DVC reruns the stage, the checkpoint is no out)."""
    import shutil

    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    out = tmp_path / "train"
    shutil.copytree(tiny_trained, out)
    params = tiny_params[0]
    train_module.train(params, taxonomy.class_names, tiny_splits, data, out)
    assert "resuming from" in capsys.readouterr().out, "the same pixels in another folder are the same data"

    shutil.copytree(tiny_trained, out, dirs_exist_ok=True)
    for name in ("train.json", "val.json"):
        first = json.loads((tiny_splits / name).read_text())["images"][0]["file_name"]
        path = data / "images" / first
        with Image.open(path) as image:
            changed = image.convert("RGB")
        changed.paste((255, 0, 255), (0, 0, 16, 16))
        changed.save(path, format=Image.open(tiny_dataset / "images" / first).format)
        train_module.train(params, taxonomy.class_names, tiny_splits, data, out)
        assert "starting afresh" in capsys.readouterr().out, f"a changed {name} image must not resume the old run"
        shutil.copytree(tiny_dataset, data, dirs_exist_ok=True)  # undo, so the next split is tested on its own
        shutil.copytree(tiny_trained, out, dirs_exist_ok=True)


def test_non_finite_loss_stops_training(monkeypatch, tmp_path, tiny_splits, tiny_dataset, tiny_params, taxonomy, mlflow_store):
    real_build = train_module.build_model

    def nan_model(cfg, num_classes):
        model = real_build(cfg, num_classes)
        forward = model.forward

        def poisoned(images, targets=None):
            out = forward(images, targets)
            if model.training:
                out = {k: v * float("nan") for k, v in out.items()}
            return out

        model.forward = poisoned
        return model

    monkeypatch.setattr(train_module, "build_model", nan_model)
    with pytest.raises(train_module.NonFiniteLossError, match="non-finite loss at epoch 1, step 0"):
        train_module.train(tiny_params[0], taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_a_weights_file_other_than_the_pinned_one_is_one_line_and_no_training(
    tmp_path, tiny_splits, tiny_dataset, tiny_params, mlflow_store
):
    import yaml

    from tests.conftest import REPO, random_mobilenet_v2_file, tiny_params_dict

    weights = random_mobilenet_v2_file(tmp_path / "mobilenet_v2.pth", seed=1)
    raw = tiny_params_dict()
    raw["model"].update(backbone="mobilenet_v2", backbone_weights=str(weights), backbone_weights_sha256="0" * 64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    argv = ["--splits", str(tiny_splits), "--data", str(tiny_dataset), "--out", str(tmp_path / "out"),
            "--metrics", str(tmp_path / "train.json"), "--params", str(tmp_path / "params.yaml"),
            "--classes", str(REPO / "configs/classes.yaml")]
    with pytest.raises(SystemExit, match=f"^training cannot start: {weights} has SHA-256 [0-9a-f]{{64}}, but .* pins 0{{64}}"):
        train_module.main(argv)
    assert not (tmp_path / "out" / "checkpoint.pt").exists() and not (tmp_path / "train.json").exists()


def test_warmup_then_cosine():
    f = train_module.warmup_cosine(10, 110)
    assert f(0) < 0.01 and f(5) == pytest.approx(0.5, abs=0.01) and f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-9)


def on_cpu(params, **train):
    """`params` training on the CPU (whatever the machine has), with `train` keys replaced."""
    return params.model_copy(update={"train": params.train.model_copy(update={"device": "cpu", **train})})


@pytest.mark.parametrize("loading", ["in the training process", "by 2 workers, with mosaics"])
def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(
    monkeypatch, tmp_path, tiny_splits, tiny_dataset, tiny_params, taxonomy, mlflow_store, loading
):
    params = on_cpu(tiny_params[0], epochs=2)
    if loading != "in the training process":  # as a GPU trains: workers restart on resume, mosaics draw partners
        params = on_cpu(params, num_workers=2)
        params = params.model_copy(update={"augment": params.augment.model_copy(update={"mosaic_probability": 1.0, "mosaic_off_last_epochs": 0})})
    train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "straight")

    real_save = train_module.save_checkpoint

    def save_then_crash(path, **state):
        real_save(path, **state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "resumed")
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    summary = train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "resumed")
    assert [h["epoch"] for h in summary["history"]] == [1, 2]

    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert resumed["epoch"] == straight["epoch"] == 2
    for part in ("model", "average"):
        assert straight[part].keys() == resumed[part].keys()
        different = [k for k in straight[part] if not torch.equal(straight[part][k], resumed[part][k])]
        assert not different, f"{part}: {len(different)} tensors differ, e.g. {different[:3]}"
    assert straight["history"] == resumed["history"]


def test_trains_on_the_cpu_where_auto_finds_no_gpu(monkeypatch, tmp_path, tiny_splits, tiny_dataset, tiny_params, taxonomy, mlflow_store, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = tiny_params[0].model_copy(update={"train": tiny_params[0].train.model_copy(update={"device": "auto"})})
    train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "out")
    assert "training on cpu x1, fp32, batch 4 per process" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_in_bf16_and_writes_a_cpu_model(tmp_path, tiny_splits, tiny_dataset, tiny_params, taxonomy, mlflow_store, capsys):
    params = tiny_params[0].model_copy(update={"train": tiny_params[0].train.model_copy(update={"device": "cuda", "epochs": 2})})
    summary = train_module.train(params, taxonomy.class_names, tiny_splits, tiny_dataset, tmp_path / "out")
    assert "training on cuda x1, bf16" in capsys.readouterr().out
    assert all(h["loss"] > 0 and h["loss"] < float("inf") for h in summary["history"])
    # Saved tensors load back on the device they were saved from: evaluation and export run on the CPU.
    bundle = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    ckpt = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)
    for state in (bundle["state_dict"], ckpt["model"], ckpt["average"]):
        assert all(v.device.type == "cpu" and v.is_contiguous() for v in state.values())


def test_the_backbone_learns_at_its_share_of_the_lr_through_the_schedule():
    """train.backbone_lr_scale (pipeline/train.py): the feature extractor's group at lr x scale, the FPN and head at lr,
    and the warm-up/cosine schedule scales both alike; at 1, one group as before."""
    from pipeline.config import load_params
    from pipeline.model import build_model
    from pipeline.train import BACKBONE_BODY, make_optimizer, warmup_cosine

    params = load_params()
    cfg, model = params.train, build_model(params.model, 3)
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    whole = make_optimizer(model, cfg, 0.004)
    assert len(whole.param_groups) == 1 and len(whole.param_groups[0]["params"]) == len(trainable)

    slow = make_optimizer(model, cfg.model_copy(update={"backbone_lr_scale": 0.1}), 0.004)
    rest, body = slow.param_groups  # the FPN and head first: the logs read group 0's lr as the recipe's
    assert {names[id(p)].startswith(BACKBONE_BODY) for p in body["params"]} == {True}
    assert {names[id(p)].startswith(BACKBONE_BODY) for p in rest["params"]} == {False}
    assert len(body["params"]) + len(rest["params"]) == len(trainable) and any("fpn" in names[id(p)] for p in rest["params"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(slow, warmup_cosine(10, 100))
    for _ in range(10):
        slow.step()
        scheduler.step()
    assert body["lr"] == pytest.approx(0.0004) and rest["lr"] == pytest.approx(0.004)  # warm-up over: the peak of each

    with pytest.raises(ValueError, match="backbone_lr_scale 0.1 needs trainable parameters both under 'backbone.body.'"):
        make_optimizer(torch.nn.ModuleDict({"wrapped": model}), cfg.model_copy(update={"backbone_lr_scale": 0.1}), 0.004)
