"""Reading a YAML file a person wrote: a mistake in it is one line naming the file and the spot, never a traceback.

Every configuration binsight reads (parameters, class lists, class maps, a
YOLO data.yaml, the notices, the privacy masks, the class materials) goes
through `read_yaml`, so each names a typo or an editor's Latin-1 the same way.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class YamlFileError(ValueError):
    """The file is not UTF-8 text or not valid YAML: `detail` says which and where; the message is "PATH is DETAIL"."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path} is {detail}")
        self.path, self.detail = path, detail


def read_yaml(path: Path | str) -> object:
    """The parsed document. OSError (not found, a folder, no permission) passes through for the caller to word."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise YamlFileError(path, f"not UTF-8 text (line {line}, byte {err.start} of the file); save it as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(err.problem or err.context or "").split())
        raise YamlFileError(path, f"not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as err:
        raise YamlFileError(path, f"not valid YAML: {' '.join(str(err).split())}") from None
