"""Detector construction: a torchvision detection head on a small FPN backbone.

The default, FCOS (anchor-free, one stage) on MobileNetV3-Small, is what
learns furthest within the main job's ~10 minutes of training from scratch
on 2 CPU cores; BENCHMARKS.md has the step times (`python -m bench.model_speed`)
and the learning curves of the alternatives:
- MobileNetV3-Large learns a little more per epoch but each step costs 2.3x;
- binsight's compact_cnn steps fastest but learns slowest (small receptive field);
- Faster R-CNN costs 2-4x per step for its region sampling and box head.
With pretrained weights (`model.backbone_weights`), the larger backbones are
the better choice. The FPN takes the stride-16 and stride-32 stages plus a
pooled stride-64 level: contaminants in a bin photo are rarely smaller than
1/10 of the frame, and a stride-8 level would double the head's cost.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from pipeline.backbones import COMPACT_STAGES, compact_features
from pipeline.config import ModelConfig
from pipeline.fcos_batched import BatchedFCOS, BatchedFCOSHead
from pipeline.filehash import file_sha256


def _pretrained_enum(cfg: ModelConfig):
    """A torchvision weights enum for a weights name, or None for no/local weights."""
    name = cfg.backbone_weights
    if name is None or cfg.local_backbone_weights is not None:
        return None
    weights = torchvision.models.get_model_weights(cfg.backbone)
    try:
        return weights.DEFAULT if name == "DEFAULT" else weights[name]
    except KeyError:
        known = ["DEFAULT", *(w.name for w in weights)]
        raise ValueError(f"unknown weights {name!r} for {cfg.backbone}; use one of {known} or a file path") from None


class BackboneWeightsError(ValueError):
    """A local backbone weights file that is missing, not the pinned one, or does not fit the backbone:
    a user's setting to fix, reported as one line (pipeline/train.py)."""


def load_local_backbone_weights(backbone: BackboneWithFPN, path: Path, expected_sha256: str | None = None) -> None:
    """Load an ImageNet classification state_dict (torchvision key names) into the FPN body,
    refusing a file other than the pinned one (`model.backbone_weights_sha256`)."""
    if not path.is_file():
        raise BackboneWeightsError(f"backbone weights file not found: {path}")
    if expected_sha256 is None:
        print(f"warning: backbone weights {path} are not pinned; set model.backbone_weights_sha256: {file_sha256(path)}",
              file=sys.stderr)
    elif (actual := file_sha256(path)) != expected_sha256:
        raise BackboneWeightsError(
            f"{path} has SHA-256 {actual}, but model.backbone_weights_sha256 pins {expected_sha256}: the file differs "
            "from the pinned one (set the new hash if the new file is meant)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError) as err:  # truncated, not a torch file, not tensors only
        raise BackboneWeightsError(f"{path} is not a readable torch state_dict: {err}") from None
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path} holds a {type(state).__name__}, not a state_dict")
    body = {
        k.removeprefix("features."): v
        for k, v in state.items()
        if isinstance(k, str) and k.startswith("features.") and isinstance(v, torch.Tensor)
    }
    if not body:
        raise BackboneWeightsError(f"{path} holds no 'features.*' tensors; is it a torchvision MobileNet state_dict?")
    own = backbone.body.state_dict()
    # The FPN body keeps only the layers up to the last returned stage; later
    # layers in the file are left out on purpose.
    usable = {k: v for k, v in body.items() if k in own}
    shapes = [k for k, v in usable.items() if v.shape != own[k].shape]
    if shapes:
        raise BackboneWeightsError(f"{path} does not fit {len(shapes)} tensors of the backbone, e.g. {shapes[:3]}")
    missing = sorted(set(own) - set(usable))
    if missing:
        raise BackboneWeightsError(f"{path} lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
    backbone.body.load_state_dict(usable)


def _stage_ends(features: nn.Sequential) -> list[int]:
    """Indices of the last layer before each stride-2 block, and of the last layer."""
    starts = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
    return [i - 1 for i in starts] + [len(features) - 1]


def build_backbone(cfg: ModelConfig, load_weights: bool = True) -> BackboneWithFPN:
    """The backbone with its FPN; `load_weights=False` builds a pretrained one's architecture (frozen batch
    norm included) without reading or downloading the weights, for a model whose trained weights come next."""
    if cfg.backbone == "compact_cnn":
        if cfg.backbone_weights is not None:
            raise ValueError("compact_cnn has no pretrained weights; set model.backbone_weights to null")
        features = compact_features()
        last = len(COMPACT_STAGES) - 1
        return BackboneWithFPN(
            features,
            return_layers={str(last - 1): "0", str(last): "1"},
            in_channels_list=[c for c, _ in COMPACT_STAGES[-2:]],
            out_channels=cfg.fpn_channels,
            extra_blocks=LastLevelMaxPool(),
        )
    weights = _pretrained_enum(cfg) if load_weights else None
    # Any pretrained backbone, named for torchvision or loaded from a file,
    # keeps its batch-norm statistics and affine terms frozen; only a backbone
    # trained from scratch learns them. torchvision's detection models do the
    # same (fasterrcnn_mobilenet_v3_large_fpn, fcos_resnet50_fpn): detection
    # batches of a few images give noisy statistics that would overwrite the
    # ones estimated on far more images. The local MobileNetV2 file's README
    # says its statistics were re-estimated on waste photos, so freezing keeps
    # exactly that. Before, the two routes differed (file: trainable nn.BatchNorm2d).
    pretrained = cfg.backbone_weights is not None
    norm_layer = torchvision.ops.misc.FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    classifier = torchvision.models.get_model(cfg.backbone, weights=weights, norm_layer=norm_layer)
    features = classifier.features
    ends = _stage_ends(features)
    returned = [ends[-2], ends[-1]]  # outputs at stride 16 and 32
    with torch.no_grad():
        channels = [features[: i + 1](torch.zeros(1, 3, 64, 64)).shape[1] for i in returned]
    backbone = BackboneWithFPN(
        features,
        return_layers={str(i): str(k) for k, i in enumerate(returned)},
        in_channels_list=channels,
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    if load_weights and cfg.local_backbone_weights is not None:
        load_local_backbone_weights(backbone, cfg.local_backbone_weights, cfg.backbone_weights_sha256)
    return backbone


def build_model(cfg: ModelConfig, num_classes: int, load_weights: bool = True) -> nn.Module:
    """A detector for `num_classes` foreground classes (labels 1..num_classes)."""
    backbone = build_backbone(cfg, load_weights)
    common = dict(
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        image_mean=list(cfg.pixel_mean),
        image_std=list(cfg.pixel_std),
    )
    levels = 3  # two returned stages plus the pooled level
    if cfg.architecture == "fcos":
        anchors = AnchorGenerator(tuple((16 * 2**i,) for i in range(levels)), ((1.0,),) * levels)
        # torchvision's FCOS, with the training targets of a batch matched at once (pipeline/fcos_batched.py).
        return BatchedFCOS(
            backbone,
            num_classes=num_classes + 1,
            anchor_generator=anchors,
            head=BatchedFCOSHead(cfg.fpn_channels, 1, num_classes + 1, num_convs=cfg.head_convs),
            score_thresh=cfg.box_score_thresh,
            nms_thresh=cfg.box_nms_thresh,
            detections_per_img=cfg.detections_per_img,
            **common,
        )
    anchors = AnchorGenerator(((32, 64, 128, 256),) * levels, ((0.5, 1.0, 2.0),) * levels)
    return FasterRCNN(
        backbone,
        num_classes=num_classes + 1,
        rpn_anchor_generator=anchors,
        # Fewer sampled proposals than the COCO defaults: a bin photo holds a
        # handful of objects, and this cuts the step time on CPU by two thirds.
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=150,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=128,
        box_score_thresh=cfg.box_score_thresh,
        box_nms_thresh=cfg.box_nms_thresh,
        box_detections_per_img=cfg.detections_per_img,
        **common,
    )
