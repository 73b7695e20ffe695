"""Recall of the privacy step's finders on frames built offline; prints a table.

    python -m bench.privacy_recall [--frames 60] [--detection-side 640] [--covered 0.8]

Each frame is a synthetic bin scene (bench/privacy_scenes.py) at 1280 x 960
with one plate or one face planted, or nothing (for the false-blur rate).
A planted region counts as found when at least `--covered` of its area lies
in regions the privacy step blurred. The filter runs exactly as the service
runs it (serve/privacy.py, no mask), and its time per frame is measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from bench.privacy_scenes import FRAME, bin_scene, face_crop, plant_face, plant_plate
from serve.privacy import PrivacyFilter

PLATE_WIDTHS = (80, 120, 180, 260, 360)  # pixels of a 1280-pixel frame
FACE_HEIGHTS = (40, 80, 160, 320)


def covered_share(box, regions: list[dict]) -> float:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    inside = np.zeros((FRAME[1], FRAME[0]), bool)
    for r in regions:
        a, b, c, d = r["box"]
        inside[b:d, a:c] = True
    return float(inside[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 0.0


def run(frames: int, detection_side: int, covered: float) -> list[dict]:
    privacy = PrivacyFilter(None, detection_side)
    face = face_crop()
    rows = []
    for kind, sizes in (("plate", PLATE_WIDTHS), ("face", FACE_HEIGHTS), ("nothing", (0,))):
        if kind == "face" and face is None:
            continue
        for size in sizes:
            found, blurred_empty, times = 0, 0, []
            for k in range(frames):
                seed = 1000 * size + k
                rng = np.random.default_rng(seed)
                frame = bin_scene(seed)
                planted = None
                if kind == "plate":
                    planted = plant_plate(frame, rng, size)
                elif kind == "face":
                    planted = plant_face(frame, face, rng, size)
                started = time.perf_counter()
                _, regions, _ = privacy.protect(frame, "bench")
                times.append(time.perf_counter() - started)
                if planted is None:
                    blurred_empty += bool(regions)
                else:
                    found += covered_share(planted.box, regions) >= covered
            rows.append({"kind": kind, "size": size, "frames": frames, "recall": None if kind == "nothing" else found / frames,
                         "false_blur": blurred_empty / frames if kind == "nothing" else None, "ms": 1000 * statistics.median(times)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per kind and size")
    parser.add_argument("--detection-side", type=int, default=640)
    parser.add_argument("--covered", type=float, default=0.8, help="share of a planted region that must be blurred to count as found")
    args = parser.parse_args(argv)
    rows = run(args.frames, args.detection_side, args.covered)
    print(f"\nbinsight privacy recall ({os.cpu_count()} cores; frames {FRAME[0]} x {FRAME[1]}, detection side {args.detection_side}, "
          f"found = >= {args.covered:.0%} of the region blurred)\n")
    print("| planted | size (px) | frames | recall | false-blur rate | ms per frame (p50) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        size = "" if r["kind"] == "nothing" else (f"{r['size']} wide" if r["kind"] == "plate" else f"{r['size']} high")
        recall = "" if r["recall"] is None else f"{r['recall']:.0%}"
        false_blur = "" if r["false_blur"] is None else f"{r['false_blur']:.0%}"
        print(f"| {r['kind']} | {size} | {r['frames']} | {recall} | {false_blur} | {r['ms']:.1f} |")


if __name__ == "__main__":
    main()
