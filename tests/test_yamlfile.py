"""pipeline.yamlfile.read_yaml: what a person's YAML file holds, or one line naming the file and the spot."""

import pytest

from pipeline.yamlfile import YamlFileError, read_yaml


def test_a_valid_file_is_parsed(tmp_path):
    (tmp_path / "ok.yaml").write_text("classes: [{name: Müll}]\n", encoding="utf-8")
    assert read_yaml(tmp_path / "ok.yaml") == {"classes": [{"name": "Müll"}]}


@pytest.mark.parametrize("text, detail", [
    ("a: 1\nb: [unclosed\n", "not valid YAML: expected ',' or ']', but got '<stream end>' (line 3, column 1)"),
    ("a: 1\n  b: 2\n", "not valid YAML: mapping values are not allowed here (line 2, column 4)"),
    ("a: 1\na:\tb\n", "not valid YAML: found character '\\t' that cannot start any token (line 2, column 3)"),
])
def test_a_typo_names_the_file_the_problem_and_its_line_and_column(tmp_path, text, detail):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(YamlFileError) as err:
        read_yaml(tmp_path / "bad.yaml")
    assert err.value.detail == detail and str(err.value) == f"{tmp_path / 'bad.yaml'} is {detail}"
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)


def test_latin1_bytes_name_the_line_and_the_byte_counted_from_the_files_start(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"a: 1\n" * 3000 + "b: M\xfcll\n".encode("latin-1"))  # the byte lies past 8 KiB
    with pytest.raises(YamlFileError, match=r"latin1.yaml is not UTF-8 text \(line 3001, byte 15004 of the file\); save it as UTF-8$"):
        read_yaml(tmp_path / "latin1.yaml")


def test_a_missing_file_or_a_folder_is_left_to_the_caller_to_word(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_yaml(tmp_path / "none.yaml")
    with pytest.raises(IsADirectoryError):
        read_yaml(tmp_path)
