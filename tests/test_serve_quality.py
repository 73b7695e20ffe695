"""The service gates with the model card's numbers; BINSIGHT_ settings override them only when set."""

import pytest

from pipeline.config import QualityConfig, load_params
from pipeline.inspection import InspectionSpec
from serve.quality import effective_spec
from serve.settings import ServeSettings
from tests.conftest import REPO

CARD_SPEC = InspectionSpec.from_params(load_params(REPO / "configs/params.yaml").verdict)


def test_without_overrides_the_card_holds(monkeypatch):
    for key in QualityConfig.model_fields:
        monkeypatch.delenv(f"BINSIGHT_QUALITY_{key.upper()}", raising=False)
    monkeypatch.delenv("BINSIGHT_INFERENCE_MAX_SIDE", raising=False)
    assert effective_spec(CARD_SPEC, ServeSettings(_env_file=None)) == CARD_SPEC


def test_environment_overrides_one_threshold(monkeypatch):
    monkeypatch.setenv("BINSIGHT_QUALITY_FOG_MIN_VEIL", "60")
    monkeypatch.setenv("BINSIGHT_INFERENCE_MAX_SIDE", "512")
    monkeypatch.setenv("BINSIGHT_QUALITY_MIN_CONTRAST", "")  # empty: unset
    spec = effective_spec(CARD_SPEC, ServeSettings(_env_file=None))
    assert spec.gate.fog_min_veil == 60 and spec.max_side == 512
    assert spec.gate.model_copy(update={"fog_min_veil": CARD_SPEC.gate.fog_min_veil}) == CARD_SPEC.gate


def test_invalid_override_is_named():
    with pytest.raises(ValueError, match="BINSIGHT_QUALITY_MAX_SATURATED"):
        effective_spec(CARD_SPEC, ServeSettings(quality_max_saturated=3.0, _env_file=None))


def test_every_gate_threshold_has_an_override_and_no_more():
    overrides = {name.removeprefix("quality_") for name in ServeSettings.model_fields if name.startswith("quality_")}
    assert overrides == set(QualityConfig.model_fields)
