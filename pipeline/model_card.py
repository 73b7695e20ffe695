"""The model card: one typed definition that export writes and the service reads.

    card = ModelCard(...)                      pipeline/export.py builds it from the trained model, params, taxonomy, metrics
    card.model_dump_json()                     -> models/model_card.json
    card.onnx_metadata()                       -> the same fields in models/model.onnx's metadata (one key per field)
    read_card(Path("models/model_card.json"))  serve/detector.py: a ModelCard, or ModelCardError naming the file and field

Every field is declared and documented here once. `schema_version` says which
layout a card has; a reader refuses a version it does not know instead of
guessing. A card written before the field existed has the layout of version 1.

This module is read by the service and a truck's computer, which are installed
without the training stack: it imports pydantic, the standard library and
pipeline.config (pydantic and PyYAML), nothing else. tests/test_install_profiles.py
checks that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config import QualityConfig

CARD_FILE = "model_card.json"
SCHEMA_VERSION = 1
"""The layout this binsight writes and reads. Raise it when a field changes meaning or a reader must know a new one."""

REEXPORT_HINT = "export the model again with this binsight (`make run`)"


class ModelCardError(ValueError):
    """A card that is missing, unreadable or not a valid card of this schema; the message names the file and the field."""


class _Section(BaseModel):
    # An unknown key is a typo or a card of another layout: refused, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Section):
    """The graph's one input: a decoded photo, resized and normalised inside the graph."""

    name: str = Field("image", description="Name of the ONNX input.")
    format: str = Field("RGB uint8 [height, width, 3]", description="What the input holds: one decoded RGB photo of any size.")
    min_size: int = Field(ge=1, description="Shorter side, in pixels, the graph resizes to (model.min_size); warm-up runs a square of this side.")
    max_size: int = Field(ge=1, description="Longest side, in pixels, the graph resizes to at most (model.max_size).")


class OutputSpec(_Section):
    """The graph's outputs, N detections each (descriptions for a reader of the card)."""

    boxes: str = Field("float32 [N, 4] xyxy pixels", description="Boxes in pixels of the input image.")
    labels: str = Field(
        "int64 [N] 1..K (class_names[label - 1]); 0 is background, to be dropped",
        description="Class of each box: 1..K index class_names (1-based); 0 is the background class.",
    )
    scores: str = Field("float32 [N]", description="Confidence of each box, 0-1.")


class Thresholds(_Section):
    """Score and overlap thresholds: inside the graph (box_score, nms_iou) and of the verdict."""

    box_score: float = Field(ge=0, le=1, description="Boxes scoring below this are dropped in the graph (model.box_score_thresh); the service's default minimum score.")
    nms_iou: float = Field(gt=0, le=1, description="IoU of the per-class non-maximum suppression in the graph (model.box_nms_thresh).")
    verdict: float = Field(
        ge=0, le=1,
        description=(
            "A contaminant detection at or above this score flags the bin: the threshold the evaluation chose "
            "(verdict.threshold_mode target_precision) or verdict.threshold (fixed)."
        ),
    )


class InspectionSection(_Section):
    """The numbers of the path around the detector (pipeline/inspection.py `InspectionSpec`), as the evaluation measured them."""

    max_side: int = Field(ge=64, description="Photos are downscaled to this longer side, in pixels, before detection (verdict.inference_max_side).")
    quality: QualityConfig = Field(description="The quality gate's thresholds (verdict.quality; each key documented in pipeline/config.py).")

    @classmethod
    def from_spec(cls, spec) -> "InspectionSection":
        """From a pipeline.inspection.InspectionSpec."""
        return cls(max_side=spec.max_side, quality=spec.gate)

    def to_spec(self):
        """As a pipeline.inspection.InspectionSpec (imported here: it pulls in numpy, OpenCV and Pillow)."""
        from pipeline.inspection import InspectionSpec

        return InspectionSpec(self.max_side, self.quality)


class Evaluation(_Section):
    """The test-split figures of this model (reports/metrics.json), quoted for a reader and the MLflow registry."""

    split: str = Field("test", description="The split these figures were measured on.")
    map: float = Field(description="COCO mAP@[.5:.95] of the detections.")
    map_50: float = Field(description="COCO mAP@.5 of the detections.")
    verdict: dict[str, Any] = Field(description="Per-bin verdict figures: precision, recall, threshold and how it was chosen (pipeline/evaluate.py).")
    gated: dict[str, Any] = Field(description="Photos the quality gate set aside (count, share, by issue): the service answers `inconclusive` for them.")


class Parity(_Section):
    """The export's check that ONNX Runtime reproduces PyTorch (written to the card file only: it runs on the finished graph)."""

    images: int = Field(ge=1, description="Validation images compared.")
    rtol: float = Field(gt=0, description="Relative tolerance of scores and box coordinates.")
    result: str = Field("identical detections", description="What the comparison found.")


class ModelCard(_Section):
    """What a model is and how to serve it: classes, input, thresholds, fraction policy, inspection path, provenance of its data.

    The git commit and the MLflow run are not in it: model.onnx and the card are
    DVC outputs whose hashes must repeat for the same commit (models/provenance.json holds them).
    """

    schema_version: int = Field(SCHEMA_VERSION, description=f"Layout of this card; this binsight writes and reads {SCHEMA_VERSION}.")
    name: str = Field("binsight-detector", description="Model name (the MLflow registry's).")
    version: str = Field(min_length=1, description="First 12 hex digits of the SHA-256 of the weights: names these exact weights.")
    architecture: str = Field(min_length=1, description="Detector/backbone, e.g. fcos/mobilenet_v3_small (model.architecture, model.backbone).")
    class_names: list[str] = Field(min_length=1, description="Class names; label k of the graph is class_names[k - 1].")
    input: InputSpec
    outputs: OutputSpec = Field(default_factory=OutputSpec)
    thresholds: Thresholds
    fractions: dict[str, list[str]] = Field(min_length=1, description="Per waste fraction, the classes that are contaminants in it (configs/classes.yaml).")
    inspection: InspectionSection
    dataset_md5: str = Field(description="The md5 DVC records for the training dataset folder ('unknown' outside DVC).")
    opset: int = Field(ge=1, description="ONNX opset of the graph.")
    evaluation: Evaluation | None = Field(None, description="Test figures; absent when exported without an evaluation (fixed threshold).")
    parity: Parity | None = Field(None, description="The parity check's outcome; in model_card.json, not in the ONNX metadata.")

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"schema version {value} is not the one this binsight reads ({SCHEMA_VERSION})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ModelCard":
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names holds duplicates: {self.class_names}")
        for fraction, contaminants in self.fractions.items():
            unknown = sorted(set(contaminants) - set(self.class_names))
            if unknown:
                raise ValueError(f"fractions.{fraction} names classes not in class_names: {unknown}")
        return self

    def to_json(self) -> str:
        """The card file's text: every field set, in declaration order."""
        return self.model_dump_json(indent=1, exclude_none=True) + "\n"

    def onnx_metadata(self) -> dict[str, str]:
        """The fields as ONNX metadata: a string as it is, anything else as JSON. Without `parity` (checked after)."""
        fields = self.model_dump(mode="json", exclude_none=True, exclude={"parity"})
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in fields.items()}

    @classmethod
    def from_onnx_metadata(cls, metadata: dict[str, str], source: str = "the model's metadata") -> "ModelCard":
        """The card a graph carries (onnxruntime's `get_modelmeta().custom_metadata_map`)."""
        fields: dict[str, Any] = {}
        for key, value in metadata.items():
            field = cls.model_fields.get(key)
            if field is not None and field.annotation is str:
                fields[key] = value
                continue
            try:
                fields[key] = json.loads(value)
            except json.JSONDecodeError:
                fields[key] = value  # validation names the field
        try:
            return cls.model_validate(fields)
        except ValidationError as err:
            raise ModelCardError(f"{source}: {describe(err)}") from None


def parse_card(text: str | bytes, source: str) -> ModelCard:
    """A card from its JSON text; ModelCardError names `source` and each invalid field."""
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as err:
        raise ModelCardError(f"{source}: {describe(err)}") from None


def read_card(path: Path) -> ModelCard:
    """The card file at `path`; ModelCardError names the file and, when invalid, each field."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ModelCardError(f"{path}: no model card ({REEXPORT_HINT})") from None
    except OSError as err:
        raise ModelCardError(f"{path}: cannot read the model card: {err.strerror}") from None
    return parse_card(text, str(path))


def describe(err: ValidationError) -> str:
    """One line naming each problem by its field path, e.g. `field 'thresholds.verdict' is missing`."""
    problems = []
    for e in err.errors(include_url=False):
        where = ".".join(str(part) for part in e["loc"])
        if e["type"] == "json_invalid":
            problems.append(f"not valid JSON ({e['msg']})")
        elif e["type"] == "missing":
            problems.append(f"field '{where}' is missing")
        elif e["type"] == "extra_forbidden":
            problems.append(f"field '{where}' is not a model card field")
        elif e["type"] == "model_type" and not where:
            problems.append("not a JSON object")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = f" (found {json.dumps(e['input'])[:80]})" if e["type"] != "value_error" and _jsonable(e["input"]) else ""
            problems.append(f"field '{where}': {msg}{got}" if where else msg)
    outdated = any(e["type"] in ("missing", "extra_forbidden") or e["loc"][:1] == ("schema_version",) for e in err.errors())
    hint = f"; it was exported by another binsight: {REEXPORT_HINT}" if outdated else ""
    return f"invalid model card: {'; '.join(problems)}{hint}"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
