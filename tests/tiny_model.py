"""A tiny model folder for smoke tests of a service install: model.onnx and model_card.json, as `export` writes them.

    .venv/bin/python tests/tiny_model.py build/serve-check/model

Runs in the full venv (torch): a small synthetic dataset, its splits, an
untrained detector of the default architecture at 128 px, and the export stage
itself (parity check, metadata, card) with a fixed verdict threshold. Seconds,
no training and no MLflow. It also leaves `photo.jpg`, one bin photo of that
dataset, beside the model for a request. `make check-serve-install` uses it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def build(out: Path) -> dict:
    import torch

    from pipeline.config import Params, load_taxonomy
    from pipeline.export import export
    from pipeline.model import build_model
    from pipeline.prepare import prepare
    from pipeline.synth.generate import generate

    raw = yaml.safe_load((REPO / "configs/params.yaml").read_text())
    raw["synth"].update(num_bins=8, image_size=128, captures_per_bin=[1, 1])
    raw["prepare"].update(val_share=0.25, test_share=0.25)
    raw["model"].update(min_size=128, max_size=128, fpn_channels=32, backbone_weights=None, backbone_weights_sha256=None)
    raw["verdict"].update(threshold_mode="fixed")
    raw["export"].update(parity_images=1)
    raw["train"]["cpu_numerics"] = "native"  # may run inside a test process whose kernels are fixed already
    params = Params.model_validate(raw)
    taxonomy = load_taxonomy(REPO / "configs/classes.yaml")

    with tempfile.TemporaryDirectory(prefix="binsight-tiny-") as tmp:
        work = Path(tmp)
        generate(params.synth, taxonomy, work / "data")
        prepare(work / "data", work / "splits", work / "data_report.json", params.prepare, taxonomy)
        torch.manual_seed(0)
        model = build_model(params.model, len(taxonomy.class_names)).eval()
        bundle = {"state_dict": model.state_dict(), "model_config": params.model.model_dump(), "class_names": taxonomy.class_names, "epoch": 0}
        torch.save(bundle, work / "model.pt")
        card = export(work / "model.pt", work / "splits", work / "data", out, work / "none.dvc", None, params, taxonomy)
        shutil.copyfile(sorted((work / "data" / "images").rglob("*.jpg"))[0], out / "photo.jpg")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for model.onnx, model_card.json and photo.jpg")
    args = parser.parse_args(argv)
    card = build(args.out)
    print(f"tiny model {card['version']} in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
