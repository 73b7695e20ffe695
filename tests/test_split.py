import json
from collections import Counter

from pipeline.split import group_split


def test_no_bin_in_two_splits(tiny_splits):
    owners = {}
    for split in ("train", "val", "test"):
        for im in json.loads((tiny_splits / f"{split}.json").read_text())["images"]:
            bin_id = im["capture"]["bin_id"]
            assert owners.setdefault(bin_id, split) == split, f"bin {bin_id} is in {owners[bin_id]} and {split}"


def test_split_is_group_pure_and_stratified_on_a_larger_problem():
    import numpy as np

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "rare"]
    groups, labels = {}, {}
    image_id = 0
    for g in range(300):
        for _ in range(int(rng.integers(1, 4))):
            image_id += 1
            groups[image_id] = f"bin{g}"
            labels[image_id] = list(rng.choice(classes[:3], size=int(rng.integers(0, 3))))
            if rng.random() < 0.05:
                labels[image_id].append("rare")
    shares = {"train": 0.7, "val": 0.1, "test": 0.2}
    splits = group_split(groups, labels, shares, seed=3)

    assert sorted(i for s in splits.values() for i in s) == sorted(groups)
    for s, ids in splits.items():
        for t, other in splits.items():
            if s < t:
                assert not {groups[i] for i in ids} & {groups[i] for i in other}
    totals = Counter(label for ls in labels.values() for label in (ls or ["clean"]))
    for s, ids in splits.items():
        counts = Counter(label for i in ids for label in (labels[i] or ["clean"]))
        for label, total in totals.items():
            assert abs(counts[label] / total - shares[s]) < 0.06, (s, label, counts[label], total)


def test_split_is_deterministic():
    groups = {i: f"g{i // 2}" for i in range(40)}
    labels = {i: ["x"] if i % 3 else [] for i in range(40)}
    shares = {"train": 0.6, "val": 0.2, "test": 0.2}
    assert group_split(groups, labels, shares, 1) == group_split(groups, labels, shares, 1)
