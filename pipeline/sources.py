"""The pipeline source files a stage runs: the closure of its module's imports within `pipeline`.

The training checkpoint's fingerprint hashes these files, and a test checks
that dvc.yaml lists them as the stage's deps, so that neither goes stale when
a module starts importing another. The imports are read from the source
(ast), not from `sys.modules`: the answer must not depend on what else the
process happened to import, and an import inside a function runs too.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "pipeline"
ROOT = Path(__file__).resolve().parent.parent  # holds pipeline/


def module_file(name: str) -> Path | None:
    """The file of module `name` (a module or a package), or None if it is not in the repository."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, name: str) -> set[str]:
    """Absolute names of what `path` (module `name`) imports, modules and `from` targets alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            found.add(module)
            # `from pipeline import augment` imports the module pipeline.augment.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def stage_sources(module: str) -> list[str]:
    """Repository-relative paths (pipeline/...) of every pipeline file that importing `module` runs,
    including the `__init__.py` of each package on the way, sorted."""
    seen: set[str] = set()
    pending = [module]
    files: set[Path] = set()
    while pending:
        name = pending.pop()
        if name in seen or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue  # an attribute (`from pipeline.x import function`), not a module
        files.add(path)
        parent = name.rpartition(".")[0]
        if parent:
            pending.append(parent)  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        pending.extend(_imported_names(path, name))
    return sorted(p.relative_to(ROOT).as_posix() for p in files)


def digest(paths: list[str]) -> str:
    """SHA-256 of the files' names and contents (repository-relative paths)."""
    h = hashlib.sha256()
    for rel in sorted(paths):
        h.update(rel.encode() + b"\0")
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()
