"""The inference size and quality gate the service applies: the model card's, unless overridden.

The gate itself is `pipeline.inspection.quality_issue`, the code the
evaluation measures. Its thresholds live in configs/params.yaml
(`verdict.quality.*`), and export copies them into the model card, so the
service gates with the numbers the reported precision and recall were
measured with. A BINSIGHT_QUALITY_* setting (or BINSIGHT_INFERENCE_MAX_SIDE)
replaces the card's value, e.g. for one city's cameras; the model's measured
figures no longer strictly hold then, which is why overriding is explicit.
"""

from __future__ import annotations

from pydantic import ValidationError

from pipeline.config import QualityConfig
from pipeline.inspection import InspectionSpec
from serve.settings import ServeSettings


def overrides(settings: ServeSettings) -> dict[str, float]:
    """The gate thresholds the settings replace, by QualityConfig key."""
    found = {key: getattr(settings, f"quality_{key}") for key in QualityConfig.model_fields}
    return {key: value for key, value in found.items() if value is not None}


def effective_spec(card_spec: InspectionSpec, settings: ServeSettings) -> InspectionSpec:
    """The card's inference size and gate with the settings' overrides applied (validated like params)."""
    replaced = overrides(settings)
    try:
        gate = QualityConfig.model_validate({**card_spec.gate.model_dump(), **replaced}) if replaced else card_spec.gate
    except ValidationError as err:
        names = ", ".join(f"BINSIGHT_QUALITY_{key.upper()}" for key in replaced)
        raise ValueError(f"invalid quality gate override ({names}): {err}") from None
    max_side = card_spec.max_side if settings.inference_max_side is None else settings.inference_max_side
    return InspectionSpec(max_side, gate)


def departure_warning(card_spec: InspectionSpec, served: InspectionSpec) -> str | None:
    """What an operator must know when the served gate or inference size is not the one the evaluation measured:
    the card's precision and recall no longer describe the verdicts. None when they are the same."""
    changed = [f"inference_max_side {card_spec.max_side} -> {served.max_side}"] if served.max_side != card_spec.max_side else []
    measured, used = card_spec.gate.model_dump(), served.gate.model_dump()
    changed += [f"quality.{key} {measured[key]} -> {used[key]}" for key in measured if used[key] != measured[key]]
    if not changed:
        return None
    return ("serving with settings the evaluation did not measure (" + ", ".join(changed) + "): the model card's "
            "verdict precision and recall do not describe these verdicts; re-run evaluate with them in params.yaml to measure them")
