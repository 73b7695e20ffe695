"""Typed pipeline configuration: every key of configs/params.yaml, declared once.

Each stage loads the whole file but reads only its own sections; dvc.yaml lists
exactly those sections as the stage's params, so changing `train.*` never
re-runs `prepare`. `python -m pipeline.config` prints the key reference.

This module must not import torch: the service and the data tools use it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.yamlfile import YamlFileError, read_yaml

DEFAULT_PARAMS = Path("configs/params.yaml")
DEFAULT_CLASSES = Path("configs/classes.yaml")


class Section(BaseModel):
    # Unknown keys are typos that would otherwise be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynthConfig(Section):
    """The deterministic generator of the embedded default dataset."""

    seed: int = Field(description="Random seed; the same seed gives byte-identical images.")
    num_bins: int = Field(gt=0, description="Number of distinct bins (RFID tags) photographed.")
    captures_per_bin: tuple[int, int] = Field(
        description="Inclusive range of captures per bin (bins are emptied repeatedly)."
    )
    image_size: int = Field(ge=64, le=2048, description="Side of the square camera image, pixels.")
    clean_share: float = Field(ge=0, le=1, description="Share of captures with no contaminant.")
    objects_per_image: tuple[int, int] = Field(
        description="Inclusive range of contaminants in a contaminated capture."
    )
    scale: tuple[float, float] = Field(
        description="Range of an object's longer side as a share of the image side."
    )
    occlusion_max: float = Field(
        ge=0, lt=1, description="Largest share of an object that organic matter may cover."
    )
    degradation_probability: float = Field(
        ge=0, le=1, description="Probability that a capture suffers one or two camera degradations."
    )
    jpeg_quality: tuple[int, int] = Field(description="Range of JPEG quality the camera encodes with.")


class PrepareConfig(Section):
    """Validation and splitting of the dataset."""

    seed: int = Field(description="Seed of the group-stratified split.")
    val_share: float = Field(gt=0, lt=0.5, description="Share of bins in the validation split.")
    test_share: float = Field(gt=0, lt=0.5, description="Share of bins in the held-out test split.")
    drop_invalid: bool = Field(
        description="Drop invalid images/annotations (still reported) instead of failing."
    )
    min_box_size: float = Field(
        ge=0, description="Boxes narrower or lower than this many pixels are degenerate."
    )
    respect_source_splits: bool = Field(
        default=True,
        description=(
            "When every image carries an imported source split (binsight import), keep it: the source's "
            "test split, or its valid split when it has no test split, becomes the held-out test split; "
            "val_share of the source's train bins become val. test_share is then unused."
        ),
    )


class ModelConfig(Section):
    """The detector."""

    architecture: Literal["fcos", "fasterrcnn"] = Field(
        description="Detection head on an FPN (pipeline/model.py gives the measured trade-offs)."
    )
    backbone: Literal["compact_cnn", "mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v2"] = Field(
        description="Backbone: binsight's compact_cnn (from scratch) or a torchvision MobileNet (for pretrained weights)."
    )
    backbone_weights: str | None = Field(
        description=(
            "Pretrained backbone: null (train from scratch), a torchvision weights name "
            "such as 'IMAGENET1K_V1' or 'DEFAULT' (downloaded by torchvision), or a path "
            "to a local state_dict file."
        )
    )
    backbone_weights_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description=(
            "SHA-256 of the local `backbone_weights` file (`sha256sum FILE`; case and surrounding spaces "
            "do not matter), or null: not checked. The file's path is a value in the recipe's params, so "
            "dvc.yaml cannot list the file as a dependency and `dvc status` does not see it replaced; the "
            "pin, a parameter, makes a new file a parameter change that reruns training, and a training run "
            "refuses a file other than the pinned one. (The default lets model.pt files written before this "
            "key existed load.)"
        ),
    )
    fpn_channels: int = Field(ge=16, description="Channels of the feature pyramid and the detection head.")
    head_convs: int = Field(ge=1, description="3x3 convolutions in each FCOS head branch (fcos only).")
    pixel_mean: tuple[float, float, float] = Field(
        description="Per-channel mean subtracted from RGB in 0..1; must match the pretrained weights."
    )
    pixel_std: tuple[float, float, float] = Field(description="Per-channel divisor after the mean, likewise.")
    min_size: int = Field(ge=32, description="Shorter image side the detector resizes to, pixels.")
    max_size: int = Field(ge=32, description="Upper bound of the longer side after resizing, pixels.")
    box_score_thresh: float = Field(
        ge=0, le=1, description="Detections below this score are never returned (keep low for mAP)."
    )
    box_nms_thresh: float = Field(gt=0, le=1, description="IoU of per-class non-maximum suppression.")
    detections_per_img: int = Field(gt=0, description="Most detections returned per image.")

    @property
    def local_backbone_weights(self) -> Path | None:
        """`backbone_weights` when it names a file rather than torchvision weights (a path or a .pth/.pt name)."""
        name = self.backbone_weights
        if name is not None and (name.endswith((".pth", ".pt")) or "/" in name):
            return Path(name)
        return None

    @field_validator("backbone_weights_sha256", mode="before")
    @classmethod
    def _pin_as_sha256sum_prints_it(cls, value):
        # Windows' Get-FileHash and certutil print upper case.
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pin_needs_a_local_file(self) -> "ModelConfig":
        if self.backbone_weights_sha256 is not None and self.local_backbone_weights is None:
            raise ValueError(
                f"backbone_weights_sha256 pins a local weights file, but backbone_weights is {self.backbone_weights!r}; "
                "set model.backbone_weights_sha256 to null (torchvision checks its own downloads)"
            )
        return self


class AugmentConfig(Section):
    """Training augmentation (albumentations)."""

    preset: str = Field(description="Named preset from pipeline/augment.py; unknown names fail.")
    degradation_probability: float = Field(
        ge=0, le=1, description="Probability of applying one camera degradation to a sample."
    )
    mosaic_probability: float = Field(
        ge=0, le=1,
        description="Probability that a training sample is a mosaic of four photos (itself and three others, "
        "pipeline/augment.py); 0: never, and the mosaic is left out of the pipeline altogether.",
    )
    mosaic_off_last_epochs: int = Field(
        ge=0,
        description="Epochs at the end trained without mosaics, so that the selected weights have last seen "
        "whole photos, as the service does (Ultralytics' close_mosaic).",
    )


class TrainConfig(Section):
    """The training loop."""

    seed: int = Field(description="Seed of weights initialisation, shuffling and augmentation.")
    epochs: int = Field(gt=0, description="Number of passes over the training split.")
    batch_size: int = Field(gt=0, description="Images per optimisation step.")
    optimizer: Literal["sgd", "adamw"] = Field(description="Optimiser.")
    lr: float = Field(gt=0, description="Peak learning rate, reached after warm-up; cosine decay after.")
    momentum: float = Field(ge=0, lt=1, description="SGD momentum (ignored by adamw).")
    weight_decay: float = Field(ge=0, description="L2 weight decay.")
    backbone_lr_scale: float = Field(
        gt=0, le=1,
        description=(
            "The backbone's learning rate as a share of lr (the FPN and head keep lr): below 1 keeps pretrained "
            "(ImageNet) features from being overwritten by the large early updates of the new layers; 1 when "
            "training from scratch."
        ),
    )
    warmup_iters: int = Field(ge=0, description="Iterations of linear learning-rate warm-up.")
    ema_decay: float = Field(
        ge=0, lt=1, description="Decay of the weight average that is evaluated and exported; it spans ~1/(1-decay) steps."
    )
    num_workers: int = Field(ge=0, description="DataLoader worker processes on the CPU (0: load in the main one).")
    threads: int = Field(ge=1, description="Torch intra-op CPU threads, per process (fixed: the thread count changes float sums).")
    cpu_numerics: Literal["portable", "native"] = Field(
        description=(
            "CPU kernels of training, evaluation and export. portable: the same kernels on every x86 CPU with AVX2 "
            "(torch's at AVX2, MKL's vendor-neutral COMPATIBLE branch, oneDNN off, OpenCV's baseline code), so dvc.lock "
            "repeats on machines of one kind; slower training steps (pipeline/hardware.py says how much, and what "
            "still differs between CPU vendors). native: the fastest kernels for this CPU; bit-exact only on the same "
            "CPU model."
        )
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        description="Where to train: auto (CUDA when torch sees a GPU, else CPU), cpu, or cuda (fails without one)."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        description="auto: bf16 autocast on CUDA, fp32 on the CPU (exactly reproducible); or force fp32 / bf16."
    )
    cuda_batch_size: int = Field(
        gt=0,
        description=(
            "Images per step per GPU. Learning rate, warm-up and weight average follow the global batch "
            "(per-process batch x processes), k = global / batch_size: lr x sqrt(k) for adamw, x k for sgd "
            "(pipeline/hardware.py)."
        ),
    )
    cuda_num_workers: int = Field(ge=0, description="DataLoader worker processes per GPU (memory is pinned).")
    checkpoint_every: int = Field(ge=1, description="Write a resumable checkpoint every N epochs.")


class QualityConfig(Section):
    """The quality gate: an unusable photo gets the verdict `inconclusive`, never `clean`.

    Statistics of a 160-319 px copy of the upright photo (pipeline/inspection.py).
    The evaluation measures with these numbers and export writes them into the
    model card, which the service reads: the gate that is measured is the gate
    that is served. BINSIGHT_QUALITY_* settings override them for one city's cameras.
    """

    min_brightness: float = Field(ge=0, le=255, description="Mean luminance (0-255) below which a photo is too dark.")
    max_brightness: float = Field(ge=0, le=255, description="Mean luminance (0-255) above which a photo is overexposed (unless it is foggy).")
    max_saturated: float = Field(ge=0, le=1, description="Share of blown-out pixels (>= 250) above which a photo is overexposed.")
    min_contrast: float = Field(ge=0, description="Luminance standard deviation below which the lens is covered.")
    min_sharpness: float = Field(
        ge=0, description="Variance of the Laplacian below which a photo is too blurred; sharp bin photos give hundreds."
    )
    fog_min_veil: float = Field(
        ge=0, le=255,
        description=(
            "Median dark channel (per-pixel minimum of R, G, B, then minimum over 15 px patches; 0-255) at or above "
            "which a veil lies over more than half of the view: fog and steam lift even the darkest pixels."
        ),
    )
    fog_max_detail: float = Field(
        ge=0, description="A veiled photo whose 90th percentile of local (9x9 px) luminance standard deviation is at or below this is foggy."
    )
    fog_max_sharpness: float = Field(
        ge=0, description="A veiled photo whose Laplacian variance is at or below this is foggy (fog and steam soften detail before they hide it)."
    )


class VerdictConfig(Section):
    """How a photo becomes a per-bin verdict: downscale, quality gate, detections, fraction policy, threshold."""

    threshold_mode: Literal["target_precision", "fixed"] = Field(
        description=(
            "target_precision: evaluate chooses the lowest threshold whose verdict precision on the validation "
            "split reaches target_precision (export puts it in the model card); fixed: `threshold` as given."
        )
    )
    target_precision: float = Field(
        gt=0, le=1,
        description="Verdict precision the threshold is chosen for: a false accusation of a household costs more than a miss.",
    )
    threshold: float = Field(
        gt=0, le=1,
        description=(
            "A contaminant detection at or above this score flags the bin. Used as given in fixed mode, and in "
            "target_precision mode only when the validation split gives no basis for a choice (evaluate says so)."
        ),
    )
    inference_max_side: int = Field(
        ge=64, description="Photos are downscaled so their longer side is at most this before detection, pixels."
    )
    quality: QualityConfig


class EvaluateConfig(Section):
    """Evaluation on the held-out test split."""

    grid_images: int = Field(ge=0, description="Test images drawn with predictions in the plot grid.")


class ExportConfig(Section):
    """ONNX export."""

    opset: int = Field(ge=17, description="ONNX opset version.")
    parity_images: int = Field(ge=1, description="Validation images compared between ONNX Runtime and PyTorch.")
    parity_rtol: float = Field(gt=0, description="Relative tolerance of box coordinates in the parity check.")


class Params(Section):
    """All sections of configs/params.yaml."""

    synth: SynthConfig
    prepare: PrepareConfig
    model: ModelConfig
    augment: AugmentConfig
    train: TrainConfig
    verdict: VerdictConfig
    evaluate: EvaluateConfig
    export: ExportConfig


class ClassSpec(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Class id used in data, models and the API.")
    group: str = Field(description="Taxonomy group (domain.md), for reports.")


class Taxonomy(Section):
    """configs/classes.yaml: the class list and which classes are contaminants per fraction."""

    classes: list[ClassSpec] = Field(min_length=1)
    fractions: dict[str, list[str]] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_known(self) -> "Taxonomy":
        names = self.class_names
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate class names in {names}")
        for fraction, contaminants in self.fractions.items():
            unknown = sorted(set(contaminants) - set(names))
            if unknown:
                raise ValueError(f"fraction {fraction!r} lists unknown classes {unknown}")
        return self

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]


def _read_yaml(path: Path) -> dict:
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise SystemExit(f"config file not found: {path}") from None
    except YamlFileError as err:  # a user's typo: one line naming the file and the spot, not a traceback
        raise SystemExit(f"config file {err}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"config file {path} must hold a mapping at the top level")
    return data


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    return Params.model_validate(_read_yaml(Path(path)))


def load_taxonomy(path: Path | str = DEFAULT_CLASSES) -> Taxonomy:
    return Taxonomy.model_validate(_read_yaml(Path(path)))


def add_config_arguments(parser) -> None:
    """--params and --classes, which every stage's command line takes."""
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="stage parameters (YAML)")
    parser.add_argument("--classes", type=Path, default=DEFAULT_CLASSES, help="class list and fraction policy (YAML)")


def reference() -> str:
    """A plain-text reference of every key, generated from the declarations above."""
    lines = []
    for section, field in Params.model_fields.items():
        model = field.annotation
        lines.append(f"{section}:  {model.__doc__.strip()}")
        lines += _key_lines(section, model)
    return "\n".join(lines)


def _key_lines(prefix: str, model: type[BaseModel]) -> list[str]:
    lines = []
    for key, spec in model.model_fields.items():
        if isinstance(spec.annotation, type) and issubclass(spec.annotation, Section):  # a nested section
            lines.append(f"  {prefix}.{key}: {spec.annotation.__doc__.strip().splitlines()[0]}")
            lines += _key_lines(f"{prefix}.{key}", spec.annotation)
        else:
            lines.append(f"  {prefix}.{key}: {spec.description}")
    return lines


if __name__ == "__main__":
    print(reference())
