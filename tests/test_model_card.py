"""The model card: one typed definition, written by export and read by the service; an invalid card is named, field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import load_params, load_taxonomy
from pipeline.inspection import InspectionSpec
from pipeline.model_card import (
    CARD_FILE,
    SCHEMA_VERSION,
    Evaluation,
    InputSpec,
    InspectionSection,
    ModelCard,
    ModelCardError,
    Parity,
    Thresholds,
    parse_card,
    read_card,
)

REPO = Path(__file__).resolve().parents[1]

# The keys export wrote before the card was typed: every one is still there, with the same layout.
LAYOUT_BEFORE = {"name", "version", "architecture", "class_names", "input", "outputs", "thresholds", "fractions",
                 "inspection", "dataset_md5", "opset", "evaluation", "parity"}


@pytest.fixture
def card() -> ModelCard:
    params, taxonomy = load_params(REPO / "configs/params.yaml"), load_taxonomy(REPO / "configs/classes.yaml")
    return ModelCard(
        version="0123456789ab",
        architecture="fcos/mobilenet_v3_small",
        class_names=taxonomy.class_names,
        input=InputSpec(min_size=320, max_size=320),
        thresholds=Thresholds(box_score=0.05, nms_iou=0.5, verdict=0.26),
        fractions=taxonomy.fractions,
        inspection=InspectionSection.from_spec(InspectionSpec.from_params(params.verdict)),
        dataset_md5="d41d8cd98f00b204e9800998ecf8427e",
        opset=17,
        evaluation=Evaluation(map=0.3, map_50=0.55, verdict={"threshold": 0.26, "precision": 0.9}, gated={"count": 3}),
        parity=Parity(images=8, rtol=1e-3),
    )


def written(card: ModelCard, tmp_path, edit=None):
    """The card's file, after `edit(dict)` changed its JSON."""
    data = json.loads(card.to_json())
    if edit:
        edit(data)
    path = tmp_path / CARD_FILE
    path.write_text(json.dumps(data))
    return path


def test_card_file_round_trip_and_layout(card, tmp_path):
    path = tmp_path / CARD_FILE
    path.write_text(card.to_json())
    assert read_card(path) == card
    data = json.loads(path.read_text())
    assert set(data) == LAYOUT_BEFORE | {"schema_version"} and data["schema_version"] == SCHEMA_VERSION
    # pipeline/inspection.py reads the same section it always did.
    assert InspectionSpec.from_card(data) == card.inspection.to_spec()


def test_onnx_metadata_round_trip_leaves_parity_to_the_file(card):
    meta = card.onnx_metadata()
    assert "parity" not in meta and all(isinstance(v, str) for v in meta.values())
    assert meta["version"] == card.version and json.loads(meta["class_names"]) == card.class_names
    assert ModelCard.from_onnx_metadata(meta) == card.model_copy(update={"parity": None})


def test_a_card_from_before_schema_version_reads_as_version_1(card, tmp_path):
    assert read_card(written(card, tmp_path, lambda d: d.pop("schema_version"))).schema_version == 1


@pytest.mark.parametrize(
    "edit, names",
    [
        (lambda d: d["thresholds"].pop("verdict"), ["field 'thresholds.verdict' is missing", "export the model again"]),
        (lambda d: d.pop("inspection"), ["field 'inspection' is missing"]),
        (lambda d: d["inspection"]["quality"].update(max_saturated=3), ["field 'inspection.quality.max_saturated'", "(found 3)"]),
        (lambda d: d.update(class_names="can"), ["field 'class_names'"]),
        (lambda d: d["input"].update(min_size="large"), ["field 'input.min_size'", '"large"']),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), ["field 'schema_version'", f"schema version {SCHEMA_VERSION + 1}"]),
        (lambda d: d.update(colour="red"), ["field 'colour' is not a model card field"]),
        (lambda d: d["fractions"].update(paper=["banana"]), ["fractions.paper names classes not in class_names: ['banana']"]),
    ],
)
def test_an_invalid_card_is_named_by_file_and_field(card, tmp_path, edit, names):
    path = written(card, tmp_path, edit)
    with pytest.raises(ModelCardError) as err:
        read_card(path)
    message = str(err.value)
    assert message.startswith(f"{path}: invalid model card: ") and "\n" not in message
    for name in names:
        assert name in message


def test_unreadable_cards_are_named(tmp_path):
    with pytest.raises(ModelCardError, match=f"{tmp_path / CARD_FILE}: no model card"):
        read_card(tmp_path / CARD_FILE)
    with pytest.raises(ModelCardError, match="x.json: invalid model card: not valid JSON"):
        parse_card("{", "x.json")
    with pytest.raises(ModelCardError, match="x.json: invalid model card: not a JSON object"):
        parse_card("[]", "x.json")


def test_the_service_refuses_an_invalid_card_naming_file_and_field(card, tmp_path):
    from serve.detector import Detector, ModelMissingError

    (tmp_path / "model.onnx").write_bytes(b"not read: the card is checked first")
    path = written(card, tmp_path, lambda d: d["thresholds"].pop("verdict"))
    with pytest.raises(ModelMissingError) as err:
        Detector(tmp_path, threads=1, workers=1)
    assert str(path) in str(err.value) and "thresholds.verdict" in str(err.value)
