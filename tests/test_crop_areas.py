"""The parts of a photo a letter shows (serve/crop_areas.py): one area per box or close group, each within the cap."""

import pytest

from serve.crop_areas import MAX_AREAS, MIN_MARGIN_PX, plan_crops

W, H = 1000, 800
CAP = 0.25


def share(area) -> float:
    return (area[2] - area[0]) * (area[3] - area[1]) / (W * H)


def contains(area, box) -> bool:
    return area[0] <= box[0] and area[1] <= box[1] and area[2] >= box[2] and area[3] >= box[3]


def test_boxes_in_opposite_corners_get_one_small_area_each():
    boxes = [[10, 10, 110, 110], [880, 690, 990, 790]]
    plan = plan_crops(boxes, W, H, 0.15, CAP)
    assert len(plan.areas) == 2 and plan.left_out == 0
    assert all(share(a) < 0.05 for a in plan.areas)
    assert contains(plan.areas[1], boxes[0]) and contains(plan.areas[0], boxes[1])  # the larger box first
    assert plan.areas[1] == (0, 0, 125, 125)  # 15 px of margin (15 % of 100), clipped at the photo's edge


def test_boxes_whose_margins_overlap_share_one_area():
    boxes = [[100, 100, 200, 200], [215, 120, 300, 210]]
    [area] = plan_crops(boxes, W, H, 0.15, CAP).areas
    assert contains(area, boxes[0]) and contains(area, boxes[1]) and share(area) <= CAP


def test_close_boxes_stay_apart_when_together_they_would_break_the_cap():
    boxes = [[0, 0, 440, 440], [460, 0, 900, 440]]  # each 24 % of the frame, their margins touch, together 48 %
    areas = plan_crops(boxes, W, H, 0.15, CAP).areas
    assert len(areas) == 2 and all(share(a) <= CAP for a in areas)


def test_a_margin_that_would_break_the_cap_is_narrowed_to_fit():
    box = [300, 200, 700, 620]  # 21 % of the frame; with the full margin (63 px a side) 36 %
    [area] = plan_crops([box], W, H, 0.15, CAP).areas
    assert contains(area, box) and CAP - 0.01 < share(area) <= CAP


def test_a_box_larger_than_the_cap_is_shown_as_the_box_itself():
    box = [100.4, 50.6, 800.2, 600.9]
    [area] = plan_crops([box], W, H, 0.15, CAP).areas
    assert area == (100, 50, 801, 601)


def test_a_tiny_box_gets_the_least_margin():
    [area] = plan_crops([[500, 400, 504, 404]], W, H, 0.15, CAP).areas
    assert area == (500 - MIN_MARGIN_PX, 400 - MIN_MARGIN_PX, 504 + MIN_MARGIN_PX, 404 + MIN_MARGIN_PX)


def test_at_most_three_areas_the_largest_evidence_first_and_the_rest_counted():
    boxes = [[x, 100, x + 20 + x // 20, 140] for x in (0, 200, 400, 600, 800)]
    plan = plan_crops(boxes, W, H, 0.15, CAP)
    assert MAX_AREAS == 3 and len(plan.areas) == 3 and plan.left_out == 2
    assert [contains(a, b) for a, b in zip(plan.areas, boxes[::-1][:3], strict=True)] == [True] * 3
    assert sum(share(a) for a in plan.areas) <= 3 * CAP


@pytest.mark.parametrize("cap", [0.05, 0.25, 1.0])
def test_no_area_breaks_the_cap_unless_it_is_a_bare_box(cap):
    boxes = [[i * 97 % 900, i * 61 % 700, i * 97 % 900 + 40 + i * 7, i * 61 % 700 + 30 + i * 5] for i in range(12)]
    for area in plan_crops(boxes, W, H, 0.3, cap).areas:
        assert share(area) <= cap + 1e-9
