"""Group-stratified splitting: all captures of one bin land in one split.

Captures of the same bin share the bin, its surroundings and often the same
contaminants; spreading them over train and test would measure recall of
bins already seen. Within that rule the split keeps each class's share of
boxes (and the share of clean captures) close to the target in every split.
scikit-learn's StratifiedGroupKFold handles one label per sample, whereas a
bin carries several classes, so this is a greedy multi-label variant of
iterative stratification (Sechidis et al., 2011) over groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

CLEAN = "__clean__"


def group_split(
    image_groups: Mapping[int, str],
    image_labels: Mapping[int, Sequence[str]],
    shares: Mapping[str, float],
    seed: int,
) -> dict[str, set[int]]:
    """Assign image ids to splits by group; `shares` sum to 1."""
    groups: dict[str, list[int]] = defaultdict(list)
    for image_id, group in image_groups.items():
        groups[group].append(image_id)
    counts: dict[str, dict[str, int]] = {}
    for group, ids in groups.items():
        c: dict[str, int] = defaultdict(int)
        for i in ids:
            for label in image_labels.get(i) or [CLEAN]:
                c[label] += 1
        counts[group] = c
    totals: dict[str, int] = defaultdict(int)
    for c in counts.values():
        for label, n in c.items():
            totals[label] += n
    total_images = len(image_groups)

    rng = np.random.default_rng(seed)
    order = sorted(groups)
    rng.shuffle(order)
    # Groups holding the rarest labels go first, while every split still has room.
    order.sort(key=lambda g: min(totals[label] for label in counts[g]))

    assigned: dict[str, dict[str, int]] = {s: defaultdict(int) for s in shares}
    assigned_images = {s: 0 for s in shares}
    result: dict[str, set[int]] = {s: set() for s in shares}
    for group in order:
        def need(split: str) -> float:
            # Relative deficits: the share of its target each split still lacks,
            # for this group's labels (weighted by their counts) and for images.
            def lack(target: float, have: float) -> float:
                return (target - have) / target if target > 0 else -1.0

            label_need = sum(
                n * lack(shares[split] * totals[label], assigned[split][label]) for label, n in counts[group].items()
            ) / sum(counts[group].values())
            return label_need + lack(shares[split] * total_images, assigned_images[split])

        best = max(shares, key=need)
        result[best].update(groups[group])
        assigned_images[best] += len(groups[group])
        for label, n in counts[group].items():
            assigned[best][label] += n
    return result
