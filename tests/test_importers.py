"""Importers: both YOLO layouts and COCO into the canonical dataset; every broken input reported by file and line; all or nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.coco import ANNOTATIONS_FILE, IMAGES_DIR
from pipeline.config import load_taxonomy
from pipeline.importers import ImportRejected, NameCollision, import_coco, import_yolo, merge
from pipeline.validate import Problem, format_report, validate
from tests.conftest import REPO, SHARED
from tests.import_helpers import GOOD, H, NAMES, W, jpeg, snapshot, yolo


def annotations(data: Path) -> dict:
    return json.loads((data / ANNOTATIONS_FILE).read_text())


def assert_valid(data: Path, taxonomy) -> None:
    assert validate(annotations(data), data, taxonomy.class_names, set(taxonomy.fractions), 0.0) == []


@pytest.mark.parametrize("layout", ["split_first", "images_first"])
@pytest.mark.parametrize("names", [NAMES, dict(enumerate(NAMES))], ids=["names_list", "names_dict"])
def test_yolo_layouts_become_the_canonical_dataset(tmp_path, taxonomy, layout, names):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD, "b": "1 0.5 0.5 0.1 0.2"}, "valid": {"a": ""}}, layout, names)
    result = import_yolo(source, tmp_path / "data", taxonomy)

    assert (result.images_found, result.images_added, result.boxes_added, result.problems) == (3, 3, 3, [])
    assert result.boxes_per_class == {"plastic_bag": 1, "can": 1, "glass": 1}
    coco = annotations(tmp_path / "data")
    by_name = {im["file_name"]: im for im in coco["images"]}
    assert sorted(by_name) == ["train/a.jpg", "train/b.jpg", "valid/a.jpg"]  # equal names in two splits do not collide
    a = by_name["train/a.jpg"]
    rel = "train/images/a.jpg" if layout == "split_first" else "images/train/a.jpg"
    assert a["source"] == {"format": "yolo", "split": "train", "path": rel, "sha256": hashlib.sha256((source / rel).read_bytes()).hexdigest()}
    assert (a["width"], a["height"], a["capture"]) == (W, H, {"fraction": "biowaste"})
    assert (tmp_path / "data" / IMAGES_DIR / "train/a.jpg").read_bytes() == (source / rel).read_bytes()  # copied unchanged
    boxes = sorted((ann["category_id"], ann["bbox"]) for ann in coco["annotations"] if ann["image_id"] == a["id"])
    # cx cy w h normalised -> [x, y, w, h] pixels; category ids are configs/classes.yaml's 1..K
    assert boxes == [(1, [16.0, 12.0, 32.0, 24.0]), (4, [8.0, 6.0, 16.0, 12.0])]
    assert [ann["id"] for ann in coco["annotations"]] == [1, 2, 3]
    assert_valid(tmp_path / "data", taxonomy)


def test_polygon_label_becomes_its_enclosing_box(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": "1 0.25 0.5 0.5 0.25 0.75 0.5 0.5 0.75\n"}})
    import_yolo(source, tmp_path / "data", taxonomy)
    [ann] = annotations(tmp_path / "data")["annotations"]
    assert ann["bbox"] == [16.0, 12.0, 32.0, 24.0]


def test_image_without_label_file_and_empty_label_file_are_background(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD, "no_label": None, "empty": "\n"}})
    result = import_yolo(source, tmp_path / "data", taxonomy)
    assert (result.images_added, result.background_images, result.problems) == (3, 2, [])
    assert len(annotations(tmp_path / "data")["annotations"]) == 2


BROKEN_LABELS = {
    "four numbers": ("0 0.5 0.5 0.2", "malformed_label"),
    "six numbers": ("0 0.5 0.5 0.2 0.2 0.9", "malformed_label"),
    "not numbers": ("zero 0.5 0.5 0.2 0.2", "malformed_label"),
    "class index too high": ("3 0.5 0.5 0.2 0.2", "class_out_of_range"),
    "class index not an integer": ("1.5 0.5 0.5 0.2 0.2", "class_out_of_range"),
    "box outside the image": ("0 0.9 0.5 0.4 0.2", "box_outside_image"),
    "zero width": ("0 0.5 0.5 0 0.2", "degenerate_box"),
    "negative height": ("0 0.5 0.5 0.2 -0.1", "degenerate_box"),
    "not finite": ("0 0.5 nan 0.2 0.2", "degenerate_box"),
    "polygon not finite": ("0 0.1 0.1 0.5 nan 0.3 0.4", "degenerate_box"),
}


@pytest.mark.parametrize("case", BROKEN_LABELS)
def test_each_broken_label_line_is_reported_by_file_and_line_and_its_image_skipped(tmp_path, taxonomy, case):
    line, kind = BROKEN_LABELS[case]
    source = yolo(tmp_path / "src", {"train": {"bad": f"1 0.5 0.5 0.2 0.2\n\n{line}\n", "good": GOOD}})
    result = import_yolo(source, tmp_path / "data", taxonomy)
    [problem] = result.problems
    assert (problem.kind, problem.file, problem.line) == (kind, "train/labels/bad.txt", 3)
    assert (result.images_added, result.skipped) == (1, 1)
    assert [im["file_name"] for im in annotations(tmp_path / "data")["images"]] == ["train/good.jpg"]


def test_unknown_source_class_is_a_problem_at_its_line(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": "3 0.5 0.5 0.2 0.2\n", "b": GOOD}}, names=[*NAMES, "tyre"])
    result = import_yolo(source, tmp_path / "data", taxonomy)
    [problem] = result.problems
    assert (problem.kind, problem.file, problem.line) == ("unknown_category", "train/labels/a.txt", 1)
    assert "'tyre'" in problem.detail and "--map" in problem.detail


def test_broken_image_files(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"empty": GOOD, "garbage": GOOD, "truncated": GOOD, "good": GOOD}})
    images = source / "train/images"
    (images / "empty.jpg").write_bytes(b"")
    (images / "garbage.jpg").write_text("this is not a JPEG")
    whole = (images / "truncated.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    result = import_yolo(source, tmp_path / "data", taxonomy)
    found = {(p.kind, p.file, p.line) for p in result.problems}
    assert found == {
        ("empty_image", "train/images/empty.jpg", None),
        ("unreadable_image", "train/images/garbage.jpg", None),
        ("truncated_image", "train/images/truncated.jpg", None),
    }
    assert (result.images_added, result.skipped) == (1, 3)


def test_label_file_without_image(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"good": GOOD}})
    (source / "train/labels/orphan.txt").write_text(GOOD)
    (source / "train/labels/classes.txt").write_text("Plastic Bag\ncan\nglass\n")  # LabelImg's class list: not a label file
    result = import_yolo(source, tmp_path / "data", taxonomy)
    [problem] = result.problems
    assert (problem.kind, problem.file, problem.line) == ("missing_image", "train/labels/orphan.txt", None)
    assert (result.images_added, result.skipped) == (1, 1)


def test_duplicate_image_in_the_source_keeps_the_labelled_copy(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a_unlabelled": "", "b_labelled": GOOD}})
    shutil.copyfile(source / "train/images/b_labelled.jpg", source / "train/images/a_unlabelled.jpg")
    result = import_yolo(source, tmp_path / "data", taxonomy)
    [problem] = result.problems
    assert (problem.kind, problem.file) == ("duplicate_image", "train/images/a_unlabelled.jpg")
    assert "train/images/b_labelled.jpg" in problem.detail
    assert (result.images_added, result.boxes_added, result.skipped) == (1, 2, 1)


def test_strict_import_with_a_problem_writes_nothing(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"bad": "0 0.5 0.5 0.2\n", "good": GOOD}})
    data = tmp_path / "data"
    import_yolo(yolo(tmp_path / "other", {"train": {"x": GOOD}}), data, taxonomy)
    before = snapshot(data)
    with pytest.raises(ImportRejected) as err:
        import_yolo(source, data, taxonomy, strict=True)
    assert [p.kind for p in err.value.result.problems] == ["malformed_label"]
    assert snapshot(data) == before


def test_importing_twice_adds_nothing_the_second_time(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD, "b": ""}})
    data = tmp_path / "data"
    import_yolo(source, data, taxonomy)
    before = snapshot(data)
    again = import_yolo(source, data, taxonomy)
    assert (again.images_added, again.already_present, again.boxes_added) == (0, 2, 0)
    assert snapshot(data) == before


def test_merge_into_an_existing_dataset_appends_with_fresh_ids(tmp_path, taxonomy, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    old = annotations(data)
    result = import_yolo(yolo(tmp_path / "src", {"train": {"a": GOOD}}), data, taxonomy, fraction="paper")
    assert result.images_added == 1
    new = annotations(data)
    assert new["images"][: len(old["images"])] == old["images"] and new["annotations"][: len(old["annotations"])] == old["annotations"]
    [added] = new["images"][len(old["images"]):]
    assert added["id"] == max(im["id"] for im in old["images"]) + 1 and added["capture"] == {"fraction": "paper"}
    assert new["annotations"][-1]["id"] == max(a["id"] for a in old["annotations"]) + 2
    assert_valid(data, taxonomy)


def test_an_image_already_in_the_dataset_under_another_name_is_not_added(tmp_path, taxonomy, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    existing = annotations(data)["images"][0]["file_name"]
    source = yolo(tmp_path / "src", {"train": {"copy": "", "new": GOOD}})
    shutil.copyfile(data / IMAGES_DIR / existing, source / "train/images/copy.jpg")
    result = import_yolo(source, data, taxonomy)
    assert (result.images_added, result.already_present) == (1, 1)


def test_a_different_image_under_a_taken_name_refuses_the_import(tmp_path, taxonomy):
    data = tmp_path / "data"
    source = yolo(tmp_path / "src", {"train": {"a": GOOD, "b": GOOD}})
    import_yolo(source, data, taxonomy)
    before = snapshot(data)
    jpeg(source / "train/images/a.jpg", 200)  # new content, same name
    jpeg(source / "train/images/c.jpg", 201)
    with pytest.raises(NameCollision, match="train/a.jpg"):
        import_yolo(source, data, taxonomy)
    assert snapshot(data) == before


@pytest.mark.parametrize("fail_at", ["second_move", "annotations"])
def test_a_failure_midway_leaves_the_dataset_exactly_as_it_was(tmp_path, taxonomy, monkeypatch, fail_at):
    data = tmp_path / "data"
    import_yolo(yolo(tmp_path / "first", {"train": {"x": GOOD}}), data, taxonomy)
    before = snapshot(data)
    source = yolo(tmp_path / "src", {"valid": {"a": GOOD, "b": GOOD, "c": ""}})

    real_replace, calls = merge.os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    def failing_write(path, payload):
        raise OSError("disk full")

    if fail_at == "second_move":
        monkeypatch.setattr(merge.os, "replace", failing_replace)
    else:
        monkeypatch.setattr(merge, "write_json_atomic", failing_write)
    with pytest.raises(OSError, match="disk full"):
        import_yolo(source, data, taxonomy)
    assert snapshot(data) == before
    assert not (data / IMAGES_DIR / "valid").exists()  # the folder the import made is gone too
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_class_map_renames_and_drops(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}}, names=["bag", "tin", "Glass"])
    result = import_yolo(source, tmp_path / "data", taxonomy, mapping={"bag": "plastic_bag", "glass": None})
    assert result.boxes_per_class == {"plastic_bag": 1} and result.boxes_dropped == {"Glass": 1}
    assert result.images_added == 1 and result.problems == []


def test_class_map_key_that_no_source_class_has_is_refused_before_anything_is_written(tmp_path, taxonomy):
    # 'Glas: null' was meant to drop the glass boxes: ignoring the typo would import them
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}})
    with pytest.raises(ValueError, match=r"key\(s\) 'Glas' match no class of .*data.yaml \(its classes: Plastic Bag, can, glass\)"):
        import_yolo(source, tmp_path / "data", taxonomy, mapping={"Glas": None, "can": "can"})
    json_path, images = label_studio_export(tmp_path / "ls")
    with pytest.raises(ValueError, match=r"'Plastic Botle', 'tin' match no class of .*result.json \(its classes: can, Plastic Bottle\)"):
        import_coco(json_path, images, tmp_path / "data", taxonomy, mapping={"Plastic Botle": None, "tin": "can", "CAN": "can"})
    assert not (tmp_path / "data").exists()
    # spelled otherwise but the same name once normalised, as the lookup compares them: accepted
    result = import_coco(json_path, images, tmp_path / "data", taxonomy, mapping={"plastic-bottle": None})
    assert result.boxes_dropped == {"Plastic Bottle": 1}


def test_the_map_key_refusal_names_the_yaml_it_read(tmp_path, taxonomy):
    """A data.yaml given by its own name (`custom.yaml`): the error must point there, not at a data.yaml that is not."""
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}})
    custom = source / "custom.yaml"
    (source / "data.yaml").rename(custom)
    with pytest.raises(ValueError, match=r"'Glas' match no class of .*custom\.yaml"):
        import_yolo(custom, tmp_path / "data", taxonomy, mapping={"Glas": None})


def test_class_map_to_an_unknown_class_is_refused(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}})
    with pytest.raises(ValueError, match="'can' maps to 'tin', which is not a class"):
        import_yolo(source, tmp_path / "data", taxonomy, mapping={"can": "tin"})
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("data_yaml, message", [
    ({"nc": 2}, "has no `names`"),
    ({"names": ["a", "b"], "nc": 3}, "nc is 3 but `names` lists 2"),
    ({"names": {"zero": "a"}}, "keys must be class indices"),
])
def test_bad_data_yaml(tmp_path, taxonomy, data_yaml, message):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}})
    (source / "data.yaml").write_text(yaml.safe_dump(data_yaml))
    with pytest.raises(ValueError, match=message):
        import_yolo(source, tmp_path / "data", taxonomy)


def test_bad_layouts(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": GOOD}})
    shutil.rmtree(source / "train/labels")
    with pytest.raises(ValueError, match="train/labels not found"):
        import_yolo(source, tmp_path / "data", taxonomy)
    shutil.rmtree(source / "train")
    with pytest.raises(ValueError, match="no YOLO layout found"):
        import_yolo(source, tmp_path / "data", taxonomy)
    with pytest.raises(FileNotFoundError, match="not found"):
        import_yolo(tmp_path / "nowhere", tmp_path / "data", taxonomy)
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(ValueError, match="YOLO dataset .*a.txt is a file; give the dataset's folder or its data.yaml"):
        import_yolo(tmp_path / "a.txt", tmp_path / "data", taxonomy)
    with pytest.raises(ValueError, match="unknown waste fraction 'compost'"):
        import_yolo(source, tmp_path / "data", taxonomy, fraction="compost")


def test_report_shows_file_and_line():
    text = format_report([Problem("malformed_label", "train/labels/a.txt", "4 numbers", line=3)])
    assert "train/labels/a.txt:3: 4 numbers" in text and "malformed_label (1)" in text


def test_report_shows_the_ids_that_locate_a_coco_entry():
    text = format_report([
        Problem("degenerate_box", "a.jpg", "bbox 'oops' is not four numbers", image_id=3, annotation_id=9),
        Problem("missing_file", "b.jpg", "not found", image_id="b-1"),
        Problem("orphan_annotation", "result.json", "refers to image id 99", annotation_id=7),
        # Label Studio: the line is the task's position, the image id its task id, which the detail names
        Problem("rotated_box", "project.json", "task 12: rotated", image_id=12, annotation_id=40, line=2),
    ]).splitlines()
    assert "    a.jpg: bbox 'oops' is not four numbers (image id 3, annotation id 9)" in text
    assert "    b.jpg: not found (image id b-1)" in text
    assert "    result.json: refers to image id 99 (annotation id 7)" in text
    assert "    project.json:2: task 12: rotated (annotation id 40)" in text


def test_exif_rotated_image_is_described_and_boxed_upright(tmp_path, taxonomy):
    source = yolo(tmp_path / "src", {"train": {"a": "0 0.25 0.5 0.5 1.0\n"}})
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 48x64, displayed 64x48
    Image.new("RGB", (H, W), (10, 20, 30)).save(source / "train/images/a.jpg", exif=exif)
    import_yolo(source, tmp_path / "data", taxonomy)
    coco = annotations(tmp_path / "data")
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (W, H)
    assert coco["annotations"][0]["bbox"] == [0.0, 0.0, 32.0, 48.0]
    assert_valid(tmp_path / "data", taxonomy)


# --- COCO ---------------------------------------------------------------------------------------------------------


def label_studio_export(root: Path) -> tuple[Path, Path]:
    """A COCO file as Label Studio writes it: ids from 0, file_name under images/, categories numbered its own way."""
    jpeg(root / "images/one.jpg", 1)
    jpeg(root / "images/two.jpg", 2)
    doc = {
        "images": [{"id": 0, "file_name": "images/one.jpg", "width": W, "height": H},
                   {"id": 1, "file_name": "/data/upload/7/two.jpg", "width": W, "height": H}],
        "categories": [{"id": 0, "name": "can"}, {"id": 5, "name": "Plastic Bottle"}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 5, "bbox": [1, 2, 30, 20]},
                        {"id": 1, "image_id": 0, "category_id": 0, "bbox": [40, 10, 24, 38]}],
    }
    (root / "result.json").write_text(json.dumps(doc))
    return root / "result.json", root


def test_coco_export_with_ids_from_zero(tmp_path, taxonomy):
    json_path, images = label_studio_export(tmp_path / "ls")
    result = import_coco(json_path, images, tmp_path / "data", taxonomy, split="train")
    assert (result.images_added, result.boxes_added, result.background_images, result.problems) == (2, 2, 1, [])
    coco = annotations(tmp_path / "data")
    assert [im["file_name"] for im in coco["images"]] == ["train/images/one.jpg", "train/images/two.jpg"]
    assert coco["images"][0]["source"]["format"] == "coco" and coco["images"][0]["source"]["split"] == "train"
    # canonical ids: images and annotations from 1, categories by name in configs/classes.yaml order
    assert [(a["id"], a["image_id"], a["category_id"], a["bbox"]) for a in coco["annotations"]] == [
        (1, 1, 2, [1.0, 2.0, 30.0, 20.0]), (2, 1, 3, [40.0, 10.0, 24.0, 38.0])]
    assert_valid(tmp_path / "data", taxonomy)


def test_broken_coco_entries(tmp_path, taxonomy):
    json_path, images = label_studio_export(tmp_path / "ls")
    doc = json.loads(json_path.read_text())
    for shade, name in enumerate(["three", "four", "five"], start=3):
        jpeg(images / f"images/{name}.jpg", shade)
    jpeg(images / "outside.jpg", 9)
    doc["images"] += [{"id": 2, "file_name": "images/missing.jpg"},
                      {"id": 3, "file_name": "images/three.jpg", "width": 100, "height": H},
                      {"id": 4, "file_name": "images/four.jpg"},
                      {"id": 5, "file_name": "images/five.jpg"},
                      {"id": 6, "file_name": "../outside.jpg"},  # never read from outside IMAGES
                      {"id": 1, "file_name": "images/two.jpg"}]  # id 1 twice: its annotations are ambiguous
    doc["annotations"] += [{"id": 7, "image_id": 99, "category_id": 0, "bbox": [1, 1, 5, 5]},
                           {"id": 8, "image_id": 5, "category_id": 42, "bbox": [1, 1, 5, 5]},
                           {"id": 9, "image_id": 4, "category_id": 0, "bbox": [60, 1, 10, 5]}]
    json_path.write_text(json.dumps(doc))
    result = import_coco(json_path, images / "images", tmp_path / "data", taxonomy)  # file_names found by base name
    found = {(p.kind, p.file, p.annotation_id) for p in result.problems}
    assert found == {
        ("orphan_annotation", "result.json", 7),
        ("unknown_category", "five.jpg", 8),
        ("missing_file", "images/missing.jpg", None),
        ("missing_file", "../outside.jpg", None),
        ("size_mismatch", "three.jpg", None),
        ("box_outside_image", "four.jpg", 9),
        ("duplicate_image_id", "/data/upload/7/two.jpg", None),
        ("duplicate_image_id", "images/two.jpg", None),
    }
    assert [im["file_name"] for im in annotations(tmp_path / "data")["images"]] == ["one.jpg"]


def test_coco_file_errors(tmp_path, taxonomy):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        import_coco(tmp_path / "bad.json", tmp_path, tmp_path / "data", taxonomy)
    (tmp_path / "partial.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(ValueError, match="partial.json: the annotation file has no 'annotations' list"):
        import_coco(tmp_path / "partial.json", tmp_path, tmp_path / "data", taxonomy)
    with pytest.raises(FileNotFoundError, match="none.json not found"):
        import_coco(tmp_path / "none.json", tmp_path, tmp_path / "data", taxonomy)
    with pytest.raises(ValueError, match="COCO file .* is a folder, expected a JSON file"):
        import_coco(tmp_path, tmp_path, tmp_path / "data", taxonomy)
    json_path, _ = label_studio_export(tmp_path / "ls")
    with pytest.raises(ValueError, match="image folder .*result.json is a file"):
        import_coco(json_path, json_path, tmp_path / "data", taxonomy)


@pytest.mark.parametrize("where, value", [("images", [0]), ("annotations", {"id": 0}), ("categories", None), ("categories", True)])
def test_coco_ids_must_be_numbers_or_strings(tmp_path, taxonomy, where, value):
    """A list or object as an id stopped the scan with a TypeError (unhashable); null or true would match by accident."""
    json_path, images = label_studio_export(tmp_path / "ls")
    doc = json.loads(json_path.read_text())
    doc[where][-1]["id"] = value
    json_path.write_text(json.dumps(doc))
    index = len(doc[where]) - 1
    with pytest.raises(ValueError, match=rf"result.json: {where}\[{index}\].id must be a number or string, not {re.escape(json.dumps(value))}$"):
        import_coco(json_path, images, tmp_path / "data", taxonomy)
    assert not (tmp_path / "data").exists()


def test_an_existing_dataset_with_a_broken_id_is_refused_by_name(tmp_path, taxonomy):
    data = tmp_path / "data"
    import_yolo(yolo(tmp_path / "first", {"train": {"x": GOOD}}), data, taxonomy)
    doc = annotations(data)
    doc["annotations"][1]["category_id"] = [4]
    (data / ANNOTATIONS_FILE).write_text(json.dumps(doc))
    before = snapshot(data)
    with pytest.raises(ValueError, match=r"annotations\[1\].category_id must be a number or string, not \[4\]; fix it"):
        import_yolo(yolo(tmp_path / "src", {"train": {"a": GOOD}}), data, taxonomy)
    assert snapshot(data) == before


# --- TrashNet++ (real photos, ../shared) ---------------------------------------------------------------------------

TRASHNETPP = SHARED / "data/trashnetpp"
RECIPE = REPO / "configs/recipes/trashnetpp"


@pytest.mark.skipif(not TRASHNETPP.is_dir(), reason=f"{TRASHNETPP} absent")
def test_trashnetpp_imports_whole(tmp_path):
    taxonomy = load_taxonomy(RECIPE / "classes.yaml")
    mapping = yaml.safe_load((RECIPE / "import.yaml").read_text())
    result = import_yolo(TRASHNETPP, tmp_path / "data", taxonomy, mapping=mapping)

    label_files = sorted(TRASHNETPP.glob("*/labels/*.txt"))
    label_lines = sum(1 for f in label_files for line in f.read_text().splitlines() if line.strip())
    assert result.images_found == len(label_files) == 2348
    # eight photos occur twice, once with an empty label file: the labelled copy is kept, so no box is lost
    assert [p.kind for p in result.problems] == ["duplicate_image"] * 8
    assert result.images_added == 2348 - 8
    assert result.boxes_added == label_lines
    assert result.background_images == sum(1 for f in label_files if not f.read_text().strip()) - 8
    coco = annotations(tmp_path / "data")
    assert len(coco["categories"]) == 7 and len(coco["annotations"]) == label_lines
    assert {im["source"]["split"] for im in coco["images"]} == {"train", "valid"}
