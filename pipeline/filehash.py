"""SHA-256 of a file's content, read in blocks: how binsight pins and compares files
(imported images, local backbone weights). No torch: the data tools use it too."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
