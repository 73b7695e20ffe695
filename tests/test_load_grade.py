"""The per-load grade against the biowaste ordinance (serve/load_grade.py); every share worked out by hand.

Photos are 100 x 100 px (10 000 px²) unless said otherwise; a load's shares are
its contaminant box area over its visible waste area.
"""

from datetime import date

import numpy as np
import pytest
import yaml

from pipeline.config import load_taxonomy
from serve.db import make_engine, make_sessionmaker
from serve.load_grade import Limits, grade_loads, load_materials, policy_from_files, union_area
from serve.statistics import StatsFilter
from tests.conftest import REPO
from tests.serve_helpers import migrated
from tests.stats_helpers import TZ, add_all, box, inspection

MATERIALS = REPO / "serve/defaults/materials.yaml"


@pytest.fixture
def sessions(database_url):
    engine = make_engine(migrated(database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def policy():
    return {f: frozenset(c) for f, c in load_taxonomy(REPO / "configs/classes.yaml").fractions.items()}


def test_union_area_counts_overlaps_once_and_clips_to_the_photo():
    assert union_area([], 100, 100) == 0.0
    assert union_area([[0, 0, 20, 10], [10, 0, 30, 10]], 100, 100) == 300.0  # 200 + 200 - the shared 10 x 10
    assert union_area([[0, 0, 50, 50], [10, 10, 20, 20]], 100, 100) == 2500.0  # the inner box adds nothing
    assert union_area([[90, 90, 130, 140]], 100, 100) == 100.0  # only its 10 x 10 inside the photo
    assert union_area([[5, 5, 5, 40], [60, 70, 50, 80], [-20, -20, -1, -1]], 100, 100) == 0.0  # degenerate, inverted, outside
    assert union_area([[0, 0, 100, 100], [0, 0, 100, 100]], 100, 100) == 10000.0


def test_union_area_agrees_with_counting_pixels():
    rng = np.random.default_rng(3)
    for _ in range(50):
        boxes = []
        for _ in range(rng.integers(1, 8)):
            x0, y0 = rng.integers(-10, 60, 2)
            w, h = rng.integers(1, 50, 2)
            boxes.append([int(x0), int(y0), int(x0 + w), int(y0 + h)])
        pixels = np.zeros((60, 80), bool)  # height 60, width 80
        for x0, y0, x1, y1 in boxes:
            pixels[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        assert union_area(boxes, 80, 60) == pixels.sum()


def loads_of_a_day(sessions) -> None:
    add_all(sessions, [
        # T1, tour 1: a bag and a can overlapping by 10 x 10 -> 300 px², of which the bag's 200 plastic; a clean photo; an
        # inconclusive one (left out). A plastic bottle below the verdict threshold (not flagged) does not count.
        inspection("2026-11-16T07:00:00+01:00", "contaminated", truck="T1", tour="1", detections=[
            box("plastic_bag", 0, 0, 20, 10), box("can", 10, 0, 30, 10), box("plastic_bottle", 50, 50, 60, 60, 0.4, contaminant=False)]),
        inspection("2026-11-16T07:01:00+01:00", "clean", truck="T1", tour="1"),
        inspection("2026-11-16T07:02:00+01:00", "inconclusive", truck="T1", tour="1", detections=[box("can", 0, 0, 100, 100)]),
        # T1, tour 2: a 200 x 100 photo, half of it hopper (10 000 px² visible); glass reaching out of the frame: 10 x 50 inside.
        inspection("2026-11-16T09:00:00+01:00", "contaminated", truck="T1", tour="2", width=200, height=100, visible_share=0.5,
                   detections=[box("glass", 190, 0, 260, 50)]),
        # T2, no tour: a reviewer confirmed and corrected: a bag of 15 x 10 and cardboard inside it -> 150, all of it plastic.
        # The model's big can is not what the reviewer left, so it does not count.
        inspection("2026-11-16T23:30:00+01:00", "contaminated", "confirmed", truck="T2", detections=[box("can", 0, 0, 100, 100)],
                   reviewed=[box("plastic_bag", 0, 0, 15, 10, origin=0), box("cardboard", 0, 0, 10, 10)]),
        # T2 at 00:30 on the 17th in Berlin (still the 16th in UTC): another load. The finding was rejected: the model's can
        # the reviewer left on screen is dropped, the bottle the reviewer drew (5 x 10 = 50) counts.
        inspection("2026-11-17T00:30:00+01:00", "contaminated", "rejected", truck="T2", detections=[box("can", 0, 0, 50, 50)],
                   reviewed=[box("can", 0, 0, 50, 50, origin=0), box("plastic_bottle", 0, 0, 10, 5)]),
        # T3: only an inconclusive photo.
        inspection("2026-11-16T07:00:00+01:00", "inconclusive", truck="T3"),
        # T4: a class serve/defaults/materials.yaml does not name: foreign matter, not plastic, and named.
        inspection("2026-11-16T07:00:00+01:00", "contaminated", truck="T4", detections=[box("mystery", 0, 0, 10, 10)]),
        # The paper bin has no load grade.
        inspection("2026-11-16T07:03:00+01:00", "contaminated", truck="T1", tour="1", fraction="paper", detections=[box("glass", 0, 0, 100, 100)]),
    ])  # fmt: skip


def test_each_load_gets_its_shares_and_grade(sessions, policy):
    loads_of_a_day(sessions)
    graded = grade_loads(sessions, StatsFilter(), TZ, "biowaste", policy, load_materials(MATERIALS))
    by_key = {(g.truck_id, g.day, g.tour_id): g for g in graded}
    assert [(g.truck_id, g.day.day, g.tour_label) for g in graded] == [
        ("T2", 17, "whole day"), ("T1", 16, "1"), ("T1", 16, "2"), ("T2", 16, "whole day"), ("T3", 16, "whole day"), ("T4", 16, "whole day"),
    ]  # fmt: skip

    tour1 = by_key[("T1", date(2026, 11, 16), "1")]
    assert (tour1.images, tour1.excluded, tour1.visible_area) == (2, 1, 20000.0)
    assert tour1.foreign_share == pytest.approx(300 / 20000)  # 1.5 %
    assert tour1.plastics_share == pytest.approx(200 / 20000)  # 1.0 %: at the limit, which "at most 1 %" allows
    assert tour1.grade == "within limits" and tour1.over == []

    tour2 = by_key[("T1", date(2026, 11, 16), "2")]
    assert tour2.visible_area == 10000.0 and tour2.foreign_share == pytest.approx(500 / 10000)  # 5 %
    assert tour2.plastics_share == 0.0 and tour2.grade == "over limit" and tour2.over == ["foreign matter"]

    reviewed = by_key[("T2", date(2026, 11, 16), None)]
    assert reviewed.foreign_share == pytest.approx(150 / 10000) and reviewed.plastics_share == pytest.approx(150 / 10000)
    assert reviewed.grade == "over limit" and reviewed.over == ["plastics"]  # 1.5 % plastics, 1.5 % in all

    rejected = by_key[("T2", date(2026, 11, 17), None)]
    assert rejected.foreign_share == pytest.approx(50 / 10000) and rejected.plastics_share == pytest.approx(50 / 10000)
    assert rejected.grade == "within limits"

    only_inconclusive = by_key[("T3", date(2026, 11, 16), None)]
    assert (only_inconclusive.images, only_inconclusive.excluded, only_inconclusive.grade) == (0, 1, "not graded")
    assert only_inconclusive.foreign_share is None

    unmapped = by_key[("T4", date(2026, 11, 16), None)]
    assert unmapped.foreign_share == pytest.approx(0.01) and unmapped.plastics_share == 0.0
    assert unmapped.unmapped_classes == {"mystery"}


def test_limits_are_configurable_and_the_filter_selects_days(sessions, policy):
    loads_of_a_day(sessions)
    strict = grade_loads(sessions, StatsFilter(date(2026, 11, 16), date(2026, 11, 16)), TZ, "biowaste", policy,
                         load_materials(MATERIALS), Limits(foreign_pct=1.0, plastics_pct=0.5))  # fmt: skip
    assert {g.day for g in strict} == {date(2026, 11, 16)}  # the 00:30 load of the 17th is outside
    tour1 = next(g for g in strict if g.tour_id == "1")
    assert tour1.over == ["foreign matter", "plastics"]  # 1.5 % > 1 %, 1.0 % > 0.5 %
    assert grade_loads(sessions, StatsFilter(fraction="paper"), TZ, "biowaste", policy, {}) == []


def test_a_graded_fraction_the_policy_does_not_know_is_refused(sessions, policy):
    with pytest.raises(ValueError, match=r"the fraction policy knows no 'bio' \(BINSIGHT_LOAD_GRADE_FRACTION\)"):
        grade_loads(sessions, StatsFilter(), TZ, "bio", policy, {})


def test_every_recipes_classes_have_a_material_and_the_plastic_ones_are_plastic():
    materials = load_materials(MATERIALS)
    for classes in [REPO / "configs/classes.yaml", *sorted((REPO / "configs/recipes").glob("*/classes*.yaml"))]:
        names = load_taxonomy(classes).class_names
        assert set(names) <= set(materials), f"{classes}: no material for {sorted(set(names) - set(materials))}"
    assert {c for c, m in materials.items() if m == "plastic"} == {"plastic_bag", "plastic_bottle", "plastics"}


def test_a_bad_materials_file_is_said_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read the class materials .*none.yaml: No such file or directory"):
        load_materials(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"materials": {"can": "tin"}}))
    with pytest.raises(ValueError, match=r"unknown materials \['tin'\]"):
        load_materials(bad)
    bad.write_text("materials: [can]\n")
    with pytest.raises(ValueError, match="must hold `materials:`"):
        load_materials(bad)


def test_the_policy_comes_from_the_class_list_or_says_where_the_card_is_missing(tmp_path):
    assert policy_from_files(REPO / "configs/classes.yaml", tmp_path)["paper"] == frozenset({"plastic_bag", "plastic_bottle", "can", "glass"})
    with pytest.raises(ValueError, match=r"no model card .*or give the class list with --classes"):
        policy_from_files(None, tmp_path)
    (tmp_path / "classes.yaml").write_text("classes: [{name: can\n")  # a typo in --classes: one line, not a YAML traceback
    with pytest.raises(ValueError, match=r"classes.yaml is not valid YAML: .* \(line 2, column 1\)$"):
        policy_from_files(tmp_path / "classes.yaml", tmp_path)

