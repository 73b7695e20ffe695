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


def test_what_the_evaluation_did_not_measure_is_named():
    from serve.quality import departure_warning

    assert departure_warning(CARD_SPEC, CARD_SPEC) is None
    served = InspectionSpec(512, CARD_SPEC.gate.model_copy(update={"fog_min_veil": 60.0}))
    warning = departure_warning(CARD_SPEC, served)
    assert f"inference_max_side {CARD_SPEC.max_side} -> 512" in warning and f"quality.fog_min_veil {CARD_SPEC.gate.fog_min_veil} -> 60.0" in warning
    assert "min_contrast" not in warning  # only what differs


@pytest.mark.parametrize("override, logged", [({}, False), ({"quality_fog_min_veil": 60.0}, True)])
def test_the_service_logs_at_start_when_it_serves_an_unmeasured_gate(tmp_path, caplog, override, logged):
    """The card's precision and recall were measured with its gate; an override changes the verdicts they describe."""
    from fastapi.testclient import TestClient

    from serve.app import create_app

    class CardOnly:
        spec = CARD_SPEC

        def warm_up(self):
            pass

    settings = ServeSettings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "images", _env_file=None, **override)
    with caplog.at_level("WARNING", logger="binsight.serve"), TestClient(create_app(settings, detector=CardOnly())):
        pass
    warned = [r.getMessage() for r in caplog.records if "the evaluation did not measure" in r.getMessage()]
    assert bool(warned) == logged
    if logged:
        assert f"quality.fog_min_veil {CARD_SPEC.gate.fog_min_veil} -> 60.0" in warned[0]
