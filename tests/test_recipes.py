"""Every recipe under configs/recipes/ loads, and differs from the default only where it says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params, load_taxonomy
from tests.conftest import REPO

RECIPES = sorted(p for p in (REPO / "configs" / "recipes").iterdir() if p.is_dir())


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_files_load_and_name_only_known_classes(recipe: Path):
    load_params(recipe / "params.yaml")
    taxonomy = load_taxonomy(recipe / "classes.yaml")
    mapping = yaml.safe_load((recipe / "import.yaml").read_text())
    unknown = {v for v in mapping.values() if v is not None} - set(taxonomy.class_names)
    assert not unknown, f"{recipe.name}/import.yaml maps to classes not in its classes.yaml: {unknown}"
    assert set(taxonomy.fractions) == set(load_taxonomy(REPO / "configs/classes.yaml").fractions)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_differs_from_the_default_only_on_lines_marked_recipe(recipe: Path):
    default = yaml.safe_load((REPO / "configs/params.yaml").read_text())
    own = yaml.safe_load((recipe / "params.yaml").read_text())
    marked, section = set(), None
    for line in (recipe / "params.yaml").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            section = line.split(":")[0]
        elif "# recipe:" in line:
            marked.add(f"{section}.{line.split(':')[0].strip()}")
    differing = {
        f"{section}.{key}" for section in default for key in default[section] if own[section].get(key) != default[section][key]
    }
    assert differing <= marked, f"{recipe.name} differs from configs/params.yaml in unmarked keys {differing - marked}"
    assert set(own) == set(default) and all(set(own[s]) == set(default[s]) for s in default)
