"""What the Label Studio tests share: settings with the backend's keys, a detector that sees the true boxes,
a small synthetic COCO dataset, the app with the ML backend router, and Label Studio's export made from predictions.

Used by tests/test_labelstudio.py (Label Studio faked) and tests/integration/test_labelstudio_live.py (a real one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import SecretStr

from pipeline.inspection import Detection, InspectionSpec
from pipeline.policy import FractionPolicy
from serve.settings import ServeSettings

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["plastic_bag", "plastic_bottle", "can", "glass", "cardboard"]
USER, KEY = "labelstudio", "ls-backend-key-0123456789"


class LabelStudioSettings(ServeSettings):
    """ServeSettings with the ML backend's settings (serve/settings.py declares the same once they are wired)."""

    labelstudio_key: SecretStr | None = None
    labelstudio_user: str = "labelstudio"
    labelstudio_url: str | None = None
    labelstudio_token: SecretStr | None = None


def settings(tmp_path: Path, **overrides) -> LabelStudioSettings:
    values = dict(model_dir=tmp_path / "no-model", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", image_dir=tmp_path / "images",
                  labelstudio_key=KEY, labelstudio_user=USER, _env_file=None)
    return LabelStudioSettings(**{**values, **overrides})


def make_app(config: ServeSettings, detector):
    """The service with a given detector and the Label Studio router, as serve/app.py will include it."""
    from serve.app import create_app
    from serve.routers.labelstudio import router

    app = create_app(config, detector=detector)
    if not any(getattr(route, "path", "").startswith("/labelstudio") for route in app.routes):
        app.include_router(router)
    return app


class TruthDetector:
    """Sees exactly the boxes it is told for an image of a given size (x0, y0, x1, y1 in the photo's pixels), score 0.9."""

    version = "truth-1"
    ready = True

    def __init__(self, truth: dict[tuple[int, int], list[tuple[str, tuple[float, float, float, float]]]] | None = None):
        from pipeline.config import load_params, load_taxonomy

        taxonomy = load_taxonomy(REPO / "configs/classes.yaml")
        self.class_names = taxonomy.class_names
        self.policy = FractionPolicy.from_mapping(taxonomy.fractions, 0.5)
        self.spec = InspectionSpec.from_params(load_params(REPO / "configs/params.yaml").verdict)
        self.truth = truth or {}
        self.seen: list[tuple[int, int]] = []  # (width, height) of each photo, as the service saw it upright

    def warm_up(self) -> None:
        pass

    def detect(self, rgb: np.ndarray, scale: float = 1.0, min_score: float | None = None) -> list[Detection]:
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        self.seen.append(size)
        return [Detection(label, 0.9, box) for label, box in self.truth.get(size, [])] + [Detection("can", 0.05, (0.0, 0.0, 5.0, 5.0))]


@dataclass
class Synthetic:
    """A small COCO dataset: images/<name>.png of distinct sizes and their boxes."""

    root: Path
    coco: dict

    @property
    def images(self) -> Path:
        return self.root / "images"

    def truth(self) -> dict[tuple[int, int], list[tuple[str, tuple[float, float, float, float]]]]:
        names = {c["id"]: c["name"] for c in self.coco["categories"]}
        out: dict = {}
        for info in self.coco["images"]:
            anns = [a for a in self.coco["annotations"] if a["image_id"] == info["id"]]
            out[(info["width"], info["height"])] = [
                (names[a["category_id"]], (a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3])) for a in anns
            ]
        return out

    def boxes(self) -> dict[str, list[tuple[str, list[float]]]]:
        """file name -> sorted (class, [x, y, w, h])."""
        names = {c["id"]: c["name"] for c in self.coco["categories"]}
        return {
            info["file_name"]: sorted((names[a["category_id"]], a["bbox"]) for a in self.coco["annotations"] if a["image_id"] == info["id"])
            for info in self.coco["images"]
        }


def synthetic_dataset(root: Path) -> Synthetic:
    """Four textured PNGs, each of its own size; boxes of several classes, one at the border, one image without any."""
    specs = [
        ("bin_a.png", (320, 240), [("can", [40.5, 60.25, 80.0, 100.0]), ("cardboard", [180.0, 50.0, 110.0, 150.0])]),
        ("bin_b.png", (300, 400), [("plastic_bag", [0.0, 0.0, 150.0, 120.0]), ("glass", [200.0, 300.0, 100.0, 100.0])]),
        ("bin_c.png", (257, 193), [("plastic_bottle", [17.0, 23.0, 31.0, 77.0])]),
        ("bin_d.png", (211, 150), []),
    ]
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True, exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    for image_id, (name, (w, h), boxes) in enumerate(specs, start=1):
        blocks = rng.integers(40, 220, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        pixels = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:h, :w]
        Image.fromarray(pixels).save(root / "images" / name)
        coco["images"].append({"id": image_id, "file_name": name, "width": w, "height": h})
        for label, bbox in boxes:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                        "category_id": CLASSES.index(label) + 1, "bbox": bbox})
    (root / "annotations.json").write_text(json.dumps(coco))
    return Synthetic(root, coco)


def export_from_predictions(tasks: list[dict], predictions: list[dict], annotation_id: int = 100) -> list[dict]:
    """Label Studio's JSON export of tasks whose predictions a labeller accepted as they were.

    The shape is what Label Studio 1.23 writes for "Export -> JSON" (a list of
    tasks, each with its annotations and their regions, beside the data).
    """
    out = []
    for task, prediction in zip(tasks, predictions, strict=True):
        result = [{**region, "origin": "prediction"} for region in prediction["result"]]
        for region in result:
            region.pop("score", None)
        annotation_id += 1
        out.append({
            "id": task["id"],
            "annotations": [{
                "id": annotation_id, "completed_by": 1, "result": result, "was_cancelled": False, "ground_truth": False,
                "created_at": "2026-05-04T06:12:00.123456Z", "updated_at": "2026-05-04T06:12:30.654321Z", "draft_created_at": None,
                "lead_time": 12.5, "prediction": {**prediction, "id": annotation_id + 1000}, "result_count": len(result),
                "unique_id": f"u-{annotation_id}", "import_id": None, "last_action": "prediction", "bulk_created": False,
                "task": task["id"], "project": 1, "updated_by": 1, "parent_prediction": annotation_id + 1000,
                "parent_annotation": None, "last_created_by": None,
            }],
            "file_upload": task["data"]["image"].rsplit("/", 1)[-1], "drafts": [], "predictions": [annotation_id + 1000],
            "data": task["data"], "meta": {}, "created_at": "2026-05-04T06:00:00.000000Z", "updated_at": "2026-05-04T06:12:30.700000Z",
            "allow_skip": True, "inner_id": task["id"], "total_annotations": 1, "cancelled_annotations": 0, "total_predictions": 1, "comment_count": 0,
            "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": 1, "updated_by": 1, "comment_authors": [],
        })
    return out
