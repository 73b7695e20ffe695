"""Choosing the verdict threshold for a target precision, on examples worked by hand."""

import pytest

from pipeline.config import load_params
from pipeline.threshold import choose_threshold, lowest_threshold_for_precision
from tests.conftest import REPO

VERDICT = load_params(REPO / "configs/params.yaml").verdict

# Six images by descending score. At threshold t the contaminated verdicts are the scores >= t:
#   t=0.9: TP          -> P 1/1
#   t=0.8: TP TP       -> P 2/2
#   t=0.7: + FP        -> P 2/3
#   t=0.6: + TP        -> P 3/4
#   t=0.4: + TP        -> P 4/5 = 0.8
#   t=0.2: + FP        -> P 4/6
TRUTH = [True, True, False, True, True, False]
SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2]


def test_lowest_threshold_reaching_the_target():
    assert lowest_threshold_for_precision(TRUTH, SCORES, 0.95) == (0.8, True)
    assert lowest_threshold_for_precision(TRUTH, SCORES, 0.75) == (0.4, True)  # 0.8 >= 0.75, the most recall
    assert lowest_threshold_for_precision(TRUTH, SCORES, 0.7) == (0.4, True)


def test_non_monotonic_precision_still_gives_the_lowest_threshold():
    # Precision dips at 0.7 (2/3) and recovers at 0.4 (4/5): for target 0.8 the answer is 0.4, not 0.8.
    assert lowest_threshold_for_precision(TRUTH, SCORES, 0.8) == (0.4, True)


def test_unreachable_target_gives_the_best_precision_and_says_so():
    truth = [False, True, False, True]
    scores = [0.9, 0.8, 0.5, 0.3]  # precisions by threshold: 0.9 -> 0, 0.8 -> 1/2, 0.5 -> 1/3, 0.3 -> 2/4
    assert lowest_threshold_for_precision(truth, scores, 0.95) == (0.3, False)  # 1/2 at 0.8 and 0.3: the lower


def test_images_without_contaminant_detections_are_never_flagged():
    # Score 0 means no contaminant was seen; no threshold may be 0.
    assert lowest_threshold_for_precision([True, False, True], [0.0, 0.0, 0.7], 0.95) == (0.7, True)


@pytest.mark.parametrize("truth, scores", [([False, False], [0.9, 0.5]), ([True, False], [0.0, 0.0]), ([], [])])
def test_no_basis_to_choose_on(truth, scores):
    assert lowest_threshold_for_precision(truth, scores, 0.95) is None
    choice = choose_threshold(VERDICT, truth, scores)
    assert choice.threshold == VERDICT.threshold and choice.target_reached is None and "fallback" in choice.basis


def test_modes():
    chosen = choose_threshold(VERDICT.model_copy(update={"target_precision": 0.95}), TRUTH, SCORES)
    assert (chosen.threshold, chosen.mode, chosen.target_reached) == (0.8, "target_precision", True)
    fixed = choose_threshold(VERDICT.model_copy(update={"threshold_mode": "fixed", "threshold": 0.33}), TRUTH, SCORES)
    assert (fixed.threshold, fixed.mode, fixed.target_reached) == (0.33, "fixed", None)
    missed = choose_threshold(VERDICT.model_copy(update={"target_precision": 1.0}), [False, True], [0.9, 0.5])
    assert missed.target_reached is False and "no threshold reaches" in missed.basis


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 truths for 1 scores"):
        lowest_threshold_for_precision([True, False], [0.5], 0.9)


def test_a_split_of_waste_photos_without_clean_bins_gives_no_basis_for_a_precision():
    """TrashNet++'s validation split has 1 clean photo among the 261 the gate passes: flagging every bin has precision 0.99, so every
    threshold "reaches" 0.95 and the search would return the lowest score as if measured. It must not."""
    truth = [True] * 38 + [False] * 2  # 0.95 contaminated: flagging all already meets the target
    scores = [0.05 + 0.02 * i for i in range(38)] + [0.9, 0.02]
    assert lowest_threshold_for_precision(truth, scores, 0.95) == (0.02, True)  # the search alone: flag every bin
    choice = choose_threshold(VERDICT, truth, scores)
    assert (choice.threshold, choice.target_reached) == (VERDICT.threshold, None)
    assert "only 2 of the 40 validation images with a verdict show a clean bin" in choice.basis and "fallback" in choice.basis

    one_more_clean = [True] * 37 + [False] * 3  # 0.925 < 0.95: flagging all falls short, so the split can tell
    chosen = choose_threshold(VERDICT, one_more_clean, scores[:37] + [0.9, 0.02, 0.01])
    assert (chosen.threshold, chosen.target_reached) == (0.05, True)  # spares the clean bins at 0.02 and 0.01


def test_every_photo_contaminated_is_no_basis_either():
    choice = choose_threshold(VERDICT, [True, True, True], [0.2, 0.5, 0.9])
    assert choice.threshold == VERDICT.threshold and choice.target_reached is None and "only 0 of the 3" in choice.basis
