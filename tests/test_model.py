"""Detector construction, including pretrained backbones from torchvision names or local files."""

import pytest
import torch
from pydantic import ValidationError

from pipeline.config import ModelConfig
from pipeline.filehash import file_sha256
from pipeline.model import BackboneWeightsError, _pretrained_enum, build_model
from tests.conftest import SHARED, random_mobilenet_v2_file

MOBILENET_V2_FILE = SHARED / "weights" / "mobilenet_v2_imagenet.pth"


def cfg(tiny_params, **update):
    return tiny_params[0].model.model_copy(update=update)


@pytest.mark.parametrize("architecture", ["fcos", "fasterrcnn"])
@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "compact_cnn"])
def test_detectors_train_and_predict_on_empty_and_full_images(tiny_params, architecture, backbone):
    model = build_model(cfg(tiny_params, architecture=architecture, backbone=backbone), num_classes=5)
    images = [torch.rand(3, 128, 128), torch.rand(3, 96, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 10, 60, 50]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}]  # a clean bin
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.inference_mode():
        out = model(images)
    assert out[0]["boxes"].shape[1] == 4 and out[1]["labels"].dtype == torch.int64


def test_torchvision_weight_names_resolve_without_download(tiny_params):
    assert _pretrained_enum(cfg(tiny_params, backbone="mobilenet_v3_large", backbone_weights="DEFAULT")).name.startswith("IMAGENET1K")
    assert _pretrained_enum(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights="IMAGENET1K_V1")).name == "IMAGENET1K_V1"
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET9K'"):
        _pretrained_enum(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights="IMAGENET9K"))


def test_compact_cnn_has_no_pretrained_weights(tiny_params):
    with pytest.raises(ValueError, match="compact_cnn has no pretrained weights"):
        build_model(cfg(tiny_params, backbone="compact_cnn", backbone_weights="DEFAULT"), 5)


def test_missing_local_weights_file_is_named(tiny_params, tmp_path):
    with pytest.raises(BackboneWeightsError, match="backbone weights file not found: .*no-such.pth"):
        build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(tmp_path / "no-such.pth")), 5)


@pytest.mark.parametrize("content", [b"", b"not a torch file", "truncated", "a list", "numbers, not tensors"])
def test_an_unreadable_weights_file_is_named_with_what_is_wrong(tiny_params, tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "truncated":
        random_mobilenet_v2_file(path, seed=1)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "a list":
        torch.save([torch.zeros(1)], path)
    elif content == "numbers, not tensors":
        torch.save({"features.0.0.weight": 1.0}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(BackboneWeightsError, match=f"^{path} (is not a readable torch state_dict|holds a list|holds no 'features)"):
        build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(path)), 5)


@pytest.mark.skipif(not MOBILENET_V2_FILE.is_file(), reason="../shared/weights/mobilenet_v2_imagenet.pth is not present")
def test_local_imagenet_file_loads_into_the_backbone(tiny_params):
    model = build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(MOBILENET_V2_FILE)), 5)
    state = torch.load(MOBILENET_V2_FILE, weights_only=True)
    body = model.backbone.body.state_dict()
    assert torch.equal(body["0.0.weight"], state["features.0.0.weight"])
    assert torch.equal(body["14.conv.0.0.weight"], state["features.14.conv.0.0.weight"])


def batch_norms(model) -> set[type]:
    from torchvision.ops.misc import FrozenBatchNorm2d

    return {type(m) for m in model.backbone.body.modules() if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d))}


def test_local_weights_file_gets_frozen_batch_norm_with_the_files_statistics(tiny_params, tmp_path):
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    reference = torchvision.models.mobilenet_v2()  # random weights: no download
    with torch.no_grad():
        reference.features[1].conv[0][1].running_mean.uniform_(0.2, 0.8)  # statistics a training step would overwrite
    state = reference.state_dict()
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(state, path)
    model = build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(path)), 5)
    assert batch_norms(model) == {FrozenBatchNorm2d}
    body = model.backbone.body
    assert torch.equal(body.state_dict()["1.conv.0.1.running_mean"], state["features.1.conv.0.1.running_mean"])
    model.train()
    model([torch.rand(3, 128, 128)], [{"boxes": torch.tensor([[10.0, 10, 60, 50]]), "labels": torch.tensor([2])}])
    assert torch.equal(body.state_dict()["1.conv.0.1.running_mean"], state["features.1.conv.0.1.running_mean"])


def test_torchvision_weights_get_frozen_batch_norm_too(tiny_params, monkeypatch):
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    real_get_model = torchvision.models.get_model
    asked = {}

    def offline_get_model(name, weights=None, **kwargs):
        asked["weights"] = weights
        return real_get_model(name, weights=None, **kwargs)  # the same network without the download

    monkeypatch.setattr(torchvision.models, "get_model", offline_get_model)
    model = build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights="IMAGENET1K_V1"), 5)
    assert asked["weights"].name == "IMAGENET1K_V1"
    assert batch_norms(model) == {FrozenBatchNorm2d}


def test_backbone_trained_from_scratch_learns_its_batch_norm(tiny_params):
    model = build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=None), 5)
    assert batch_norms(model) == {torch.nn.BatchNorm2d}


def test_a_pinned_weights_file_loads_and_another_file_at_its_path_is_refused(tiny_params, tmp_path):
    path = random_mobilenet_v2_file(tmp_path / "mobilenet_v2.pth", seed=1)
    pin = file_sha256(path)
    pinned = cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(path), backbone_weights_sha256=pin)
    model = build_model(pinned, 5)
    assert torch.equal(model.backbone.body.state_dict()["0.0.weight"], torch.load(path, weights_only=True)["features.0.0.weight"])
    random_mobilenet_v2_file(path, seed=2)  # replaced in place: same path, other weights
    with pytest.raises(BackboneWeightsError, match=f"has SHA-256 {file_sha256(path)}, but model.backbone_weights_sha256 pins {pin}"):
        build_model(pinned, 5)


@pytest.mark.parametrize("weights", [None, "DEFAULT"])
def test_a_pin_without_a_local_weights_file_is_a_config_error(tiny_params, weights):
    raw = {**tiny_params[0].model.model_dump(), "backbone": "mobilenet_v2", "backbone_weights": weights, "backbone_weights_sha256": "0" * 64}
    with pytest.raises(ValidationError, match="backbone_weights_sha256 pins a local weights file"):
        ModelConfig.model_validate(raw)


def test_the_checkpoint_fingerprint_changes_with_the_weights_files_content(tiny_params, tiny_splits, tiny_dataset, tmp_path):
    """A training resumed after the file was replaced would mix two runs; its path alone does not say so."""
    from pipeline.hardware import Placement, schedule
    from pipeline.train import fingerprint

    path = random_mobilenet_v2_file(tmp_path / "mobilenet_v2.pth", seed=1)
    params = tiny_params[0].model_copy(update={"model": cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(path))})
    placement = Placement(torch.device("cpu"), None)

    def current() -> str:
        return fingerprint(params, ["a"], tiny_splits, tiny_dataset, placement, schedule(params.train, placement))

    before = current()
    assert current() == before
    random_mobilenet_v2_file(path, seed=2)
    assert current() != before


def test_an_unpinned_weights_file_is_loaded_with_the_hash_to_pin_it_printed(tiny_params, tmp_path, capsys):
    path = random_mobilenet_v2_file(tmp_path / "mobilenet_v2.pth", seed=1)
    build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(path)), 5)
    assert f"set model.backbone_weights_sha256: {file_sha256(path)}" in capsys.readouterr().err


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "mobilenet_v3_small"])
@pytest.mark.parametrize("bundle_from", ["pinned", "before the pin existed"])
def test_a_trained_bundle_loads_without_its_pretrained_file_and_computes_the_same(tiny_params, tmp_path, bundle_from, backbone):
    """The trained weights are in model.pt; export and evaluation may run where the pretrained file is not, and
    must rebuild the frozen batch norm it trained with: the modules of training, not look-alikes."""
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    from pipeline.trained import load_trained

    torch.manual_seed(1)
    path = tmp_path / f"{backbone}.pth"
    torch.save(torchvision.models.get_model(backbone).state_dict(), path)  # random weights: no download
    model_cfg = cfg(tiny_params, backbone=backbone, backbone_weights=str(path), backbone_weights_sha256=file_sha256(path))
    trained = build_model(model_cfg, 5)
    with torch.no_grad():  # statistics far from (0, 1), so that any other normalisation would show in the scores
        for m in trained.backbone.body.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.running_var.uniform_(1e-4, 1e-2)
    config = model_cfg.model_dump()
    if bundle_from != "pinned":
        del config["backbone_weights_sha256"]
    torch.save({"model_config": config, "class_names": list("abcde"), "state_dict": trained.state_dict()}, tmp_path / "model.pt")
    path.unlink()
    loaded, names, loaded_cfg = load_trained(tmp_path / "model.pt")
    assert names == list("abcde") and loaded_cfg.backbone_weights == str(path)
    assert batch_norms(loaded) == {FrozenBatchNorm2d}
    images = [torch.rand(3, 128, 128)]
    with torch.inference_mode():
        assert torch.equal(loaded(images)[0]["scores"], trained.eval()(images)[0]["scores"])


def test_a_bundle_trained_with_trainable_batch_norm_before_session_8_still_loads(tiny_params, tmp_path):
    """Local weights once trained with BatchNorm2d (num_batches_tracked in the state_dict); such a model.pt
    loads into the frozen batch norm of today and computes the same, in eval mode."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    from pipeline.trained import load_trained

    old = build_model(cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=None), 5).eval()
    assert any(k.endswith("num_batches_tracked") for k in old.state_dict())
    config = cfg(tiny_params, backbone="mobilenet_v2", backbone_weights=str(tmp_path / "gone.pth")).model_dump()
    del config["backbone_weights_sha256"]
    torch.save({"model_config": config, "class_names": list("abcde"), "state_dict": old.state_dict()}, tmp_path / "model.pt")
    loaded, _, _ = load_trained(tmp_path / "model.pt")
    assert batch_norms(loaded) == {FrozenBatchNorm2d}
    images = [torch.rand(3, 128, 128)]
    with torch.inference_mode():
        assert torch.allclose(loaded(images)[0]["scores"], old(images)[0]["scores"], atol=1e-5)
