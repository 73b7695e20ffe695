import pytest

from pipeline.policy import FractionPolicy, UnknownFractionError


@pytest.fixture
def policy(taxonomy):
    return FractionPolicy.from_mapping(taxonomy.fractions, threshold=0.5)


def test_cardboard_contaminates_biowaste_but_not_paper(policy):
    assert policy.judge("biowaste", ["cardboard"], [0.9]).contaminated
    assert not policy.judge("paper", ["cardboard"], [0.9]).contaminated


def test_score_below_threshold_is_not_a_flag_but_counts_as_evidence(policy):
    v = policy.judge("biowaste", ["can", "can"], [0.3, 0.45])
    assert not v.contaminated and v.score == pytest.approx(0.45) and v.contaminant_indices == ()


def test_flags_only_the_contaminants(policy):
    v = policy.judge("packaging", ["can", "glass", "plastic_bag"], [0.9, 0.8, 0.7])
    assert v.contaminated and v.contaminant_indices == (1,) and v.score == pytest.approx(0.8)


def test_unknown_fraction_is_named(policy):
    with pytest.raises(UnknownFractionError, match="'compost'"):
        policy.judge("compost", [], [])


def test_taxonomy_rejects_policy_naming_unknown_class():
    from pydantic import ValidationError

    from pipeline.config import Taxonomy

    with pytest.raises(ValidationError, match="unknown classes"):
        Taxonomy.model_validate({"classes": [{"name": "can", "group": "metal"}], "fractions": {"biowaste": ["can", "tyre"]}})
