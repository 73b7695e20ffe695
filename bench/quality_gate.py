"""What the quality gate sets aside on real photos, as they are and under fog or steam; prints one table.

    python -m bench.quality_gate [--source ../shared/data/trashnetpp] [--splits valid] [--fog-seeds 5] [--every 1]

    quick check: python -m bench.quality_gate --splits valid --every 20 --fog-seeds 1

Every photo of each TrashNet++ split (`--every K`: each K-th, sorted by name)
goes through the gate the service and the evaluation run
(pipeline.inspection.quality_issue, thresholds from configs/params.yaml), at
its own size:

- as it is (a good gate passes nearly all of these: ordinary photos must not
  become `inconclusive`);
- under albumentations' RandomFog at strong settings (fog_coef 0.7-1.0,
  the test suite's definition), once per `--fog-seeds` seed;
- under a contrast-lowering haze (every pixel 60 % or 70 % of the way to
  white: steam from a warm bin on a cold morning);
- under steam over part of the view: the same 60 % haze over a soft-edged
  patch covering 90 %, 75 % or 60 % of the frame, centred (the gate's known
  limit: the clear rim keeps the edges its detail measures; BENCHMARKS.md).

The table gives, per condition, the share of photos the gate passes and the
share it names each issue (too dark, overexposed, covered, foggy, blurred).
The tests in tests/test_quality_gate.py hold the same rates on a quarter of
the valid split; this is the whole-split figure BENCHMARKS.md quotes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import albumentations as A
import cv2
import numpy as np

from pipeline.config import DEFAULT_PARAMS, QualityConfig, load_params
from pipeline.imageio import read_rgb
from pipeline.inspection import QUALITY_ISSUES, quality_issue

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "trashnetpp"
HAZE_AMOUNTS = (0.6, 0.7)
PARTIAL_STEAM = (0.9, 0.75, 0.6)  # share of the frame under the patch
PARTIAL_STEAM_AMOUNT = 0.6


def haze(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Fog or steam as a veil: every pixel moves `amount` of the way to white, so contrast falls by 1 - amount."""
    return (rgb.astype(np.float32) * (1 - amount) + 255 * amount).round().astype(np.uint8)


def strong_fog(seed: int) -> A.Compose:
    """albumentations' RandomFog at its densest: the fog a gate must catch."""
    return A.Compose([A.RandomFog(fog_coef_range=(0.7, 1.0), alpha_coef=0.1, p=1.0)], seed=seed)


def partial_steam(rgb: np.ndarray, share: float, amount: float = PARTIAL_STEAM_AMOUNT) -> np.ndarray:
    """`haze` over a centred rectangle of `share` of the frame, its edge feathered over 15 % of the longer side
    (steam has no hard edge, and a hard one would itself read as detail)."""
    h, w = rgb.shape[:2]
    side = share ** 0.5
    top, left = int(h * (1 - side) / 2), int(w * (1 - side) / 2)
    mask = np.zeros((h, w), np.float32)
    mask[top : top + int(h * side), left : left + int(w * side)] = 1.0
    kernel = int(max(h, w) * 0.15) | 1
    mask = cv2.GaussianBlur(mask, (kernel, kernel), 0)[..., None] * amount
    return (rgb.astype(np.float32) * (1 - mask) + 255 * mask).round().astype(np.uint8)


class PhotoUnreadable(ValueError):
    pass


def gate_counts(photos: list[Path], gate: QualityConfig, fog_seeds: int) -> dict[str, Counter]:
    """Condition name -> Counter of gate outcomes (None = passed) over `photos`."""
    conditions = ["as taken", *(f"strong RandomFog, seed {s}" for s in range(fog_seeds)),
                  *(f"haze {a:.0%} to white" for a in HAZE_AMOUNTS),
                  *(f"haze {PARTIAL_STEAM_AMOUNT:.0%} over {s:.0%} of the frame" for s in PARTIAL_STEAM)]
    counts = {name: Counter() for name in conditions}
    fogs = [strong_fog(seed) for seed in range(fog_seeds)]
    for path in photos:
        try:
            rgb = read_rgb(path)
        except OSError as err:  # Pillow's errors for a corrupt or truncated file are OSErrors
            raise PhotoUnreadable(f"{path}: not a readable image ({err})") from None
        counts["as taken"][quality_issue(rgb, gate)] += 1
        for seed, fog in enumerate(fogs):
            counts[f"strong RandomFog, seed {seed}"][quality_issue(fog(image=rgb)["image"], gate)] += 1
        for amount in HAZE_AMOUNTS:
            counts[f"haze {amount:.0%} to white"][quality_issue(haze(rgb, amount), gate)] += 1
        for share in PARTIAL_STEAM:
            counts[f"haze {PARTIAL_STEAM_AMOUNT:.0%} over {share:.0%} of the frame"][quality_issue(partial_steam(rgb, share), gate)] += 1
    return counts


def table(split: str, counts: dict[str, Counter]) -> str:
    issues = list(QUALITY_ISSUES)
    lines = [f"| {split} split: condition | photos | passed | " + " | ".join(issues) + " |",
             "|---|---|---|" + "---|" * len(issues)]
    for name, found in counts.items():
        total = sum(found.values())
        share = lambda key: f"{100 * found[key] / total:.1f} %"  # noqa: E731 - one formatting rule for every column
        lines.append(f"| {name} | {total} | {share(None)} | " + " | ".join(share(i) for i in issues) + " |")
    return "\n".join(lines)


def positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="TrashNet++ folder (train/ and valid/)")
    parser.add_argument("--splits", default="valid", help="comma-separated source splits (train takes about 4 x as long)")
    parser.add_argument("--fog-seeds", type=positive, default=5, help="RandomFog draws per photo")
    parser.add_argument("--every", type=positive, default=1, help="take each K-th photo (quick checks)")
    parser.add_argument("--params", type=Path, default=REPO / DEFAULT_PARAMS, help="parameter file holding verdict.quality")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.exit(2, f"bench.quality_gate: error: {args.source} is not a folder (TrashNet++ with train/ and valid/)\n")
    try:
        gate = load_params(args.params).verdict.quality
    except SystemExit as err:  # load_params words a missing or broken file in one line
        parser.exit(2, f"bench.quality_gate: error: {err}\n")
    print(f"gate: {gate.model_dump()}")
    results = {}
    for split in args.splits.split(","):
        photos = sorted((args.source / split / "images").glob("*.jpg"))[:: args.every]
        if not photos:
            parser.exit(2, f"bench.quality_gate: error: no .jpg photos in {args.source / split / 'images'}\n")
        start = time.perf_counter()
        try:
            counts = gate_counts(photos, gate, args.fog_seeds)
        except PhotoUnreadable as err:
            parser.exit(2, f"bench.quality_gate: error: {err}\n")
        print(f"\n{table(split, counts)}\n({len(photos)} photos, {time.perf_counter() - start:.0f} s)")
        results[split] = {name: {str(k): v for k, v in found.items()} for name, found in counts.items()}
    if args.json:
        args.json.write_text(json.dumps({"gate": gate.model_dump(), "splits": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
