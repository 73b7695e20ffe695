"""The notices' configuration (serve/defaults/notices/escalation.yaml): escalation rules, sender, names, the letter.

Every key is declared once here, with its meaning; the YAML file's comments
say the same for the people who edit it. `load_notice_config` reads and
checks the file; a mistake is a `NoticeConfigError` whose one line names the
file and the key, so the service refuses to start (and the commands stop)
with that line instead of writing a wrong letter later.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.yamlfile import YamlFileError, read_yaml


class NoticeConfigError(ValueError):
    """The notices' configuration cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    # Unknown keys are typos that would otherwise be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sender(_Section):
    """Who writes the letters: printed at their top and bottom."""

    name: str = Field(min_length=1, description="The organisation, e.g. the city's waste department.")
    address: list[str] = Field(min_length=1, description="Postal address, one line each.")
    contact: str = Field(min_length=1, description="How residents ask or appeal (telephone, e-mail).")
    signature: str = Field(min_length=1, description="The closing line above the sender's name.")


class Level(_Section):
    """One step of a fraction's escalation."""

    action: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Short key stored with each notice (e.g. warning).")
    title: str = Field(min_length=1, description="The step's name in the letter and the pages (e.g. Verwarnung).")
    text: str = Field(min_length=1, description="The letter's paragraph for this step: what follows for the household.")


class FractionRules(_Section):
    """Escalation and letter text for one waste fraction."""

    name: str = Field(min_length=1, description="The bin as residents know it (e.g. Biotonne).")
    window_days: int = Field(gt=0, description="Days without a notice after which the bin's record resets to level 1.")
    belongs: list[str] = Field(min_length=1, description="What belongs in this bin, listed in the letter.")
    levels: list[Level] = Field(min_length=1, description="The escalation's steps in order; findings beyond the last stay at the last.")

    @model_validator(mode="after")
    def _actions_are_unique(self) -> "FractionRules":
        actions = [level.action for level in self.levels]
        if len(set(actions)) != len(actions):
            raise ValueError(f"levels name the same action twice: {actions}")
        return self


class NoticeConfig(_Section):
    """serve/defaults/notices/escalation.yaml."""

    letter_template: Path = Field(description="The letter's Jinja2 template (German), relative to the configuration file.")
    crop_margin: float = Field(0.15, ge=0, le=1, description="Margin around each evidence crop, share of its box's larger side.")
    crop_max_share: float = Field(0.25, gt=0, le=1, description="Most of the frame one evidence crop may show, share of its area "
                                  "(a larger margin is narrowed; a box larger than this is shown as the box itself).")  # fmt: skip
    pdf_font: Path | None = Field(
        None, description="TrueType font of the PDF, relative to the configuration file; null: built-in Helvetica (Latin-1)."
    )
    timezone: str = Field("Europe/Berlin", description="IANA time zone of the dates printed in letters (times are stored in UTC).")
    sender: Sender
    contaminant_names: dict[str, str] = Field(description="German name of each detector class, as letters name them.")
    fractions: dict[str, FractionRules] = Field(description="Rules per waste fraction; a fraction not listed gets no notices.")

    @model_validator(mode="after")
    def _timezone_exists(self) -> "NoticeConfig":
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def rules(self, fraction: str) -> FractionRules | None:
        return self.fractions.get(fraction)

    def german_name(self, class_name: str) -> str:
        """The class's name in a letter; an unnamed class keeps its id, readable (a letter is still better than none)."""
        return self.contaminant_names.get(class_name, class_name.replace("_", " "))

    def level_title(self, fraction: str, action: str) -> str:
        rules = self.rules(fraction)
        titles = {level.action: level.title for level in rules.levels} if rules else {}
        return titles.get(action, action)


def _key(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_notice_config(path: Path | str) -> NoticeConfig:
    """The configuration at `path`, with its template and font paths made absolute; NoticeConfigError on any mistake."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise NoticeConfigError(f"{path}: no such file (BINSIGHT_NOTICES_CONFIG names the notices' configuration)") from None
    except OSError as err:
        raise NoticeConfigError(f"{path}: cannot be read: {err.strerror}") from None
    except YamlFileError as err:
        raise NoticeConfigError(f"{path}: {err.detail}") from None
    if not isinstance(data, dict):
        raise NoticeConfigError(f"{path}: must hold a mapping at the top level")
    try:
        config = NoticeConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise NoticeConfigError(f"{path}: {_key(first['loc'])}: {first['msg']}{more}") from None
    template = path.parent / config.letter_template
    if not template.is_file():
        raise NoticeConfigError(f"{path}: letter_template: no file {template}")
    font = path.parent / config.pdf_font if config.pdf_font is not None else None
    if font is not None and not font.is_file():
        raise NoticeConfigError(f"{path}: pdf_font: no file {font}")
    return config.model_copy(update={"letter_template": template.resolve(), "pdf_font": font.resolve() if font else None})
