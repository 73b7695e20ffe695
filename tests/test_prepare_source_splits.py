"""prepare keeps the splits an imported dataset brings, and groups images without a bin alone."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.prepare import prepare


def imported_copy(tiny_dataset, tmp_path, split_of, drop_bins: bool = True):
    """The tiny dataset as an importer would write it: a source split per image, no bin RFID."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    coco = json.loads((data / "annotations.json").read_text())
    for im in coco["images"]:
        im["source"] = {"format": "yolo", "split": split_of(im["id"])}
        if drop_bins:
            im["capture"] = {"fraction": im["capture"]["fraction"]}
    (data / "annotations.json").write_text(json.dumps(coco))
    return data, coco


def split_ids(out):
    return {s: {im["id"] for im in json.loads((out / f"{s}.json").read_text())["images"]} for s in ("train", "val", "test")}


def test_train_and_valid_source_valid_is_the_test_split_and_val_is_carved_from_train(tmp_path, tiny_dataset, tiny_params, taxonomy):
    data, coco = imported_copy(tiny_dataset, tmp_path, lambda i: "valid" if i % 4 == 0 else "train")
    report = prepare(data, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
    got = split_ids(tmp_path / "splits")
    source_valid = {im["id"] for im in coco["images"] if im["id"] % 4 == 0}
    assert got["test"] == source_valid
    assert got["val"] and not got["val"] & source_valid and not got["train"] & source_valid
    assert got["train"] | got["val"] == {im["id"] for im in coco["images"]} - source_valid
    share = len(got["val"]) / (len(got["train"]) + len(got["val"]))
    assert abs(share - tiny_params[0].prepare.val_share) < 0.12
    assert "source splits kept" in report["split_rule"]
    # The carve is seeded: the same run again gives the same val split.
    prepare(data, tmp_path / "again", tmp_path / "report2.json", tiny_params[0].prepare, taxonomy)
    assert split_ids(tmp_path / "again") == got


def test_three_source_splits_are_kept_as_they_are(tmp_path, tiny_dataset, tiny_params, taxonomy):
    names = ("train", "train", "val", "test")
    data, coco = imported_copy(tiny_dataset, tmp_path, lambda i: names[i % 4])
    prepare(data, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
    got = split_ids(tmp_path / "splits")
    for split, role in (("train", "train"), ("val", "val"), ("test", "test")):
        assert got[split] == {im["id"] for im in coco["images"] if names[im["id"] % 4] == role}


def test_source_splits_can_be_ignored(tmp_path, tiny_dataset, tiny_params, taxonomy):
    data, coco = imported_copy(tiny_dataset, tmp_path, lambda i: "valid" if i % 4 == 0 else "train")
    cfg = tiny_params[0].prepare.model_copy(update={"respect_source_splits": False})
    report = prepare(data, tmp_path / "splits", tmp_path / "report.json", cfg, taxonomy)
    got = split_ids(tmp_path / "splits")
    assert got["test"] != {im["id"] for im in coco["images"] if im["id"] % 4 == 0}
    assert "shares" in report["split_rule"]
    # Without bins every image is its own group: the split still covers every image once.
    assert sorted(i for ids in got.values() for i in ids) == sorted(im["id"] for im in coco["images"])


def test_a_source_with_only_a_train_split_is_refused_with_the_way_out(tmp_path, tiny_dataset, tiny_params, taxonomy):
    data, _ = imported_copy(tiny_dataset, tmp_path, lambda i: "train")
    with pytest.raises(SystemExit, match="respect_source_splits: false"):
        prepare(data, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)


def test_mixed_sources_without_split_everywhere_fall_back_to_bin_shares(tmp_path, tiny_dataset, tiny_params, taxonomy):
    # Truck captures added to an import have no source split: one rule for all, the bins one.
    data, _ = imported_copy(tiny_dataset, tmp_path, lambda i: "valid" if i % 4 == 0 else "train", drop_bins=False)
    coco = json.loads((data / "annotations.json").read_text())
    del coco["images"][0]["source"]
    (data / "annotations.json").write_text(json.dumps(coco))
    report = prepare(data, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
    assert "shares" in report["split_rule"]


def test_unknown_source_split_names_fall_back_to_shares_with_a_warning(tmp_path, tiny_dataset, tiny_params, taxonomy, capsys):
    data, _ = imported_copy(tiny_dataset, tmp_path, lambda i: "train2017" if i % 4 else "val2017")
    report = prepare(data, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
    assert "shares" in report["split_rule"] and "train2017" in capsys.readouterr().err


def test_an_empty_split_is_refused_in_one_line(tmp_path, tiny_dataset, tiny_params, taxonomy):
    # One training photo cannot be carved into train and val.
    data, coco = imported_copy(tiny_dataset, tmp_path, lambda i: "valid")
    coco["images"][0]["source"]["split"] = "train"
    (data / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(SystemExit, match=r"the (train|val) split\(s\) would be empty"):
        prepare(data, tmp_path / "splits", tmp_path / "report.json", tiny_params[0].prepare, taxonomy)
