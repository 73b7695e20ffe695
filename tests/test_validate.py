"""Each dataset problem is reported by file and kind; prepare fails unless told to drop bad items."""

import json
import re
import shutil

import pytest

from pipeline.coco import ANNOTATIONS_FILE, IMAGES_DIR
from pipeline.prepare import prepare
from pipeline.validate import DatasetFormatError, validate


@pytest.fixture
def dataset(tmp_path, tiny_dataset):
    folder = tmp_path / "data"
    shutil.copytree(tiny_dataset, folder)
    return folder


def load(folder):
    return json.loads((folder / ANNOTATIONS_FILE).read_text())


def save(folder, coco):
    (folder / ANNOTATIONS_FILE).write_text(json.dumps(coco))


def problems_of(folder, taxonomy, min_box=2.0):
    return validate(load(folder), folder, taxonomy.class_names, set(taxonomy.fractions), min_box)


def first_annotated(coco):
    image_id = coco["annotations"][0]["image_id"]
    return next(im for im in coco["images"] if im["id"] == image_id), coco["annotations"][0]


def test_generated_dataset_is_clean(dataset, taxonomy):
    assert problems_of(dataset, taxonomy) == []


def test_missing_file(dataset, taxonomy):
    name = load(dataset)["images"][0]["file_name"]
    (dataset / IMAGES_DIR / name).unlink()
    [p] = problems_of(dataset, taxonomy)
    assert (p.kind, p.file) == ("missing_file", name)


def test_unreadable_image(dataset, taxonomy):
    name = load(dataset)["images"][0]["file_name"]
    (dataset / IMAGES_DIR / name).write_text("this is not a JPEG")
    [p] = problems_of(dataset, taxonomy)
    assert (p.kind, p.file) == ("unreadable_image", name)


def test_truncated_image(dataset, taxonomy):
    name = load(dataset)["images"][1]["file_name"]
    path = dataset / IMAGES_DIR / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    [p] = problems_of(dataset, taxonomy)
    assert (p.kind, p.file) == ("truncated_image", name)


def test_box_outside_image(dataset, taxonomy):
    coco = load(dataset)
    image, ann = first_annotated(coco)
    ann["bbox"] = [image["width"] - 10, 5, 40, 20]
    save(dataset, coco)
    [p] = problems_of(dataset, taxonomy)
    assert (p.kind, p.file, p.annotation_id) == ("box_outside_image", image["file_name"], ann["id"])


@pytest.mark.parametrize("bbox", [[10, 10, 0, 5], [10, 10, 1.5, 20], [10, 10, float("nan"), 5], [1, 2, 3]])
def test_degenerate_box(dataset, taxonomy, bbox):
    coco = load(dataset)
    image, ann = first_annotated(coco)
    ann["bbox"] = bbox
    save(dataset, coco)
    [p] = problems_of(dataset, taxonomy)
    assert (p.kind, p.file) == ("degenerate_box", image["file_name"])


def test_unknown_category(dataset, taxonomy):
    coco = load(dataset)
    image, ann = first_annotated(coco)
    ann["category_id"] = 99
    save(dataset, coco)
    [p] = problems_of(dataset, taxonomy)
    assert (p.kind, p.file) == ("unknown_category", image["file_name"]) and "99" in p.detail


def test_category_name_outside_class_list(dataset, taxonomy):
    coco = load(dataset)
    coco["categories"].append({"id": 42, "name": "tyre", "supercategory": ""})
    save(dataset, coco)
    [p] = problems_of(dataset, taxonomy)
    assert p.kind == "unknown_category" and "tyre" in p.detail


def test_duplicate_ids(dataset, taxonomy):
    coco = load(dataset)
    coco["images"][1]["id"] = coco["images"][0]["id"]
    coco["annotations"][1]["id"] = coco["annotations"][0]["id"]
    save(dataset, coco)
    kinds = {p.kind for p in problems_of(dataset, taxonomy)}
    assert {"duplicate_image_id", "duplicate_annotation_id"} <= kinds


def test_image_without_metadata(dataset, taxonomy):
    coco = load(dataset)
    del coco["images"][0]["capture"]
    coco["images"][1]["capture"].pop("fraction")
    save(dataset, coco)
    found = {(p.kind, p.file) for p in problems_of(dataset, taxonomy)}
    assert found == {("missing_metadata", coco["images"][0]["file_name"]), ("missing_metadata", coco["images"][1]["file_name"])}


def test_only_the_fraction_is_required(dataset, taxonomy):
    """Third-party datasets have no bin, truck or time: an image with just its fraction is valid."""
    coco = load(dataset)
    coco["images"][0]["capture"] = {"fraction": "biowaste"}
    save(dataset, coco)
    assert problems_of(dataset, taxonomy) == []


def test_invalid_metadata(dataset, taxonomy):
    coco = load(dataset)
    coco["images"][0]["capture"]["fraction"] = "compost"
    coco["images"][1]["capture"]["gps"] = {"lat": 123.0, "lon": 7.0}
    coco["images"][2]["capture"]["captured_at"] = "yesterday"
    coco["images"][3]["capture"]["bin_id"] = ""
    coco["images"][4]["capture"]["truck_id"] = None
    save(dataset, coco)
    problems = problems_of(dataset, taxonomy)
    assert [p.kind for p in problems] == ["invalid_metadata"] * 5
    assert {p.file for p in problems} == {im["file_name"] for im in coco["images"][:5]}


def test_size_mismatch_and_orphan_annotation(dataset, taxonomy):
    coco = load(dataset)
    coco["images"][0]["width"] = 999
    coco["annotations"].append({**coco["annotations"][0], "id": 10_000, "image_id": 77_777})
    save(dataset, coco)
    kinds = sorted(p.kind for p in problems_of(dataset, taxonomy))
    assert "size_mismatch" in kinds and "orphan_annotation" in kinds


def test_broken_document_is_a_format_error(dataset, taxonomy):
    with pytest.raises(DatasetFormatError, match="'annotations'"):
        validate({"images": [], "categories": []}, dataset, taxonomy.class_names, set(taxonomy.fractions), 2.0)


@pytest.mark.parametrize("key, field, value", [("images", "id", [1]), ("annotations", "category_id", {"id": 1}), ("annotations", "image_id", None)])
def test_prepare_names_an_id_that_is_not_a_number_or_string(tmp_path, dataset, taxonomy, tiny_params, key, field, value):
    """A hand-edited annotations.json: a list or object id would stop the checks with a TypeError, null would match by accident."""
    coco = load(dataset)
    coco[key][0][field] = value
    save(dataset, coco)
    with pytest.raises(SystemExit, match=re.escape(f"{key}[0].{field} must be a number or string, not {json.dumps(value)}")) as err:
        prepare(dataset, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
    assert "\n" not in str(err.value) and not (tmp_path / "splits").exists()


def test_prepare_fails_with_the_report_and_writes_no_split(tmp_path, dataset, taxonomy, tiny_params):
    name = load(dataset)["images"][0]["file_name"]
    (dataset / IMAGES_DIR / name).write_bytes(b"\xff\xd8\xff broken")
    out = tmp_path / "splits"
    with pytest.raises(SystemExit) as err:
        prepare(dataset, out, tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
    assert "unreadable_image" in str(err.value) and name in str(err.value) and "drop_invalid" in str(err.value)
    assert not out.exists()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["problems"][0]["file"] == name


def test_prepare_drops_bad_images_when_told_and_still_reports_them(tmp_path, dataset, taxonomy, tiny_params):
    coco = load(dataset)
    bad_image, ann = first_annotated(coco)
    ann["bbox"] = [0, 0, 0, 0]
    save(dataset, coco)
    cfg = tiny_params[0].prepare.model_copy(update={"drop_invalid": True})
    report = prepare(dataset, tmp_path / "splits", tmp_path / "report.json", cfg, taxonomy)
    assert report["dropped_images"] == [bad_image["id"]]
    assert report["problems"][0]["kind"] == "degenerate_box"
    kept = [im["id"] for split in ("train", "val", "test") for im in load_split(tmp_path / "splits", split)["images"]]
    assert bad_image["id"] not in kept and len(kept) == len(coco["images"]) - 1


def load_split(folder, split):
    return json.loads((folder / f"{split}.json").read_text())


def test_sizes_are_checked_upright(dataset, taxonomy):
    """A JPEG stored sideways with an EXIF orientation is described by its displayed size."""
    from PIL import Image

    coco = load(dataset)
    info = coco["images"][0]
    path = dataset / IMAGES_DIR / info["file_name"]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (info["height"], info["width"] + 8)).save(path, exif=exif)
    info["width"], info["height"] = info["width"] + 8, info["height"]
    save(dataset, coco)
    assert [p.kind for p in problems_of(dataset, taxonomy) if p.file == info["file_name"]] == []


def test_the_report_names_an_id_once_and_takes_string_ids_literally():
    """A detail that names the id gets no second copy of it; a string id with regex characters is text, not a pattern."""
    from pipeline.validate import Problem, format_report

    twice = format_report([Problem("duplicate_image_id", "a.jpg", "image id 3 is used 2 times", 3)])
    assert twice.count("image id 3") == 1
    other = format_report([Problem("duplicate_image_id", "a.jpg", "image id 31 is used 2 times", 3)])
    assert "(image id 3)" in other  # 31 is another image
    odd = format_report([Problem("missing_file", "b.jpg", "b.jpg not found", "img(1")])
    assert "(image id img(1)" in odd
