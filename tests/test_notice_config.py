"""The notices' configuration: the shipped one is complete, a mistake is one line naming the file and the key."""

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from serve.app import create_app
from serve.notice_config import NoticeConfigError, load_notice_config
from serve.settings import ServeSettings
from tests.conftest import REPO

SHIPPED = REPO / "serve/defaults/notices/escalation.yaml"


def test_the_shipped_configuration_names_every_class_and_covers_every_fraction_with_contaminants(taxonomy):
    config = load_notice_config(SHIPPED)
    assert set(config.contaminant_names) == set(taxonomy.class_names)
    assert {f for f, classes in taxonomy.fractions.items() if classes} <= set(config.fractions)
    biowaste = config.rules("biowaste")
    assert [level.title for level in biowaste.levels] == ["Information", "Verwarnung", "Nichtleerung und Gebühr"]
    assert config.letter_template.is_file() and config.rules("residual") is None


def broken(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    change(data)
    (tmp_path / "letter.de.html.j2").write_text((SHIPPED.parent / "letter.de.html.j2").read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "escalation.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: d["fractions"]["biowaste"].update(window_days=0), "fractions.biowaste.window_days: Input should be greater than 0"),
    (lambda d: d["fractions"]["paper"].update(levels=[]), "fractions.paper.levels: List should have at least 1 item"),
    (lambda d: d["sender"].update(adress=["typo"]), "sender.adress: Extra inputs are not permitted"),
    (lambda d: d["fractions"]["biowaste"]["levels"][1].update(action="information"), "fractions.biowaste: Value error, levels name the same action twice"),
    (lambda d: d.update(letter_template="missing.j2"), "letter_template: no file"),
    (lambda d: d.update(timezone="Mars/Olympus"), "timezone 'Mars/Olympus' is not an IANA time zone"),
    (lambda d: d.pop("sender"), "sender: Field required"),
])  # fmt: skip
def test_a_mistake_names_the_file_and_the_key(tmp_path, change, message):
    path = broken(tmp_path, change)
    with pytest.raises(NoticeConfigError) as err:
        load_notice_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_yaml_and_a_missing_file_are_one_line_too(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fractions: [unclosed\n")
    with pytest.raises(NoticeConfigError, match=r"bad.yaml: not valid YAML: expected ',' or '\]', but got '<stream end>' \(line 2, column 1\)$"):
        load_notice_config(bad)
    with pytest.raises(NoticeConfigError, match=r"none.yaml: no such file"):
        load_notice_config(tmp_path / "none.yaml")


def test_the_service_does_not_start_on_a_bad_configuration(tmp_path):
    path = broken(tmp_path, lambda d: d["fractions"]["biowaste"].update(window_days=-1))
    settings = ServeSettings(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "img",
                             notices_config=path, _env_file=None)  # fmt: skip
    with pytest.raises(NoticeConfigError, match="window_days"):
        with TestClient(create_app(settings)):
            pass
