"""Register the exported model in the MLflow model registry and point an alias at it.

    python -m pipeline.register --card models/model_card.json --alias champion

Deliberately a separate, explicit command: `dvc repro` logs runs but never
changes what the registry calls the champion. Aliases (MLflow 3) replace the
deprecated stages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.export import PROVENANCE_FILE
from pipeline.tracking import REGISTERED_MODEL, configure


def register(card_path: Path, alias: str, name: str = REGISTERED_MODEL) -> str:
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{card_path} not found: run `make run` (dvc repro) to export a model first") from None
    provenance_path = card_path.parent / PROVENANCE_FILE
    try:
        provenance = json.loads(provenance_path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{provenance_path} not found: export the model again (`dvc repro`) to log it to MLflow") from None
    logged = provenance.get("mlflow")
    if not logged:
        raise SystemExit(f"{provenance_path} names no MLflow run: the export stage did not log the model")
    mlflow = configure()
    from mlflow import MlflowClient

    version = mlflow.register_model(logged["model_uri"], name)
    client = MlflowClient()
    for key in ("version", "dataset_md5", "architecture"):
        client.set_model_version_tag(name, version.version, key, str(card.get(key)))
    client.set_model_version_tag(name, version.version, "git_commit", str(provenance.get("git_commit")))
    if "evaluation" in card:
        client.set_model_version_tag(name, version.version, "test_map_50", str(card["evaluation"]["map_50"]))
    client.set_registered_model_alias(name, alias, version.version)
    return version.version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, default=Path("models/model_card.json"))
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--name", default=REGISTERED_MODEL)
    args = parser.parse_args(argv)
    version = register(args.card, args.alias, args.name)
    print(f"registered {args.name} version {version} as @{args.alias}")


if __name__ == "__main__":
    main()
