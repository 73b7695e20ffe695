"""Recall, false blurs and cost of the privacy step's finders, on frames built offline; prints two tables.

    python -m bench.privacy_recall [--frames 40] [--waste 200] [--detection-side 640] [--covered 0.8]

1. Recall: synthetic bin scenes (bench/privacy_scenes.py) at 1280 x 960 with
   one plate or one face planted (faces also tilted 15 degrees, and with 40 %
   of their width beyond the frame's edge), or nothing. A planted region
   counts as found when at least `--covered` of its area lies in regions the
   privacy step blurred. The filter runs exactly as the service runs it
   (serve/privacy.py, default finders, no mask).
2. False blurs, per finder and for all default finders together: on real
   waste photos (the first `--waste` TrashNet++ valid photos, scaled to
   1280 x 960; skipped where ../shared/data/trashnetpp is absent) and on the
   synthetic scenes with nothing planted: the share of frames with any blur,
   the share of the frame area blurred, and the time per frame at
   1280 x 960 and 1920 x 1080.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2
import numpy as np

from bench.privacy_scenes import FRAME, bin_scene, face_crop, plant_face, plant_plate, waste_photos
from serve.people_finders import FaceFinder, PersonFinder
from serve.plate_finder import PlateFinder
from serve.privacy import PrivacyFilter, default_finders

PLATE_WIDTHS = (80, 120, 180, 260, 360)  # pixels of a 1280-pixel frame
FACE_HEIGHTS = (40, 80, 120, 160, 320)
FACE_VARIANTS = (("face", 0.0, 0.0), ("face tilted 15 deg", 15.0, 0.0), ("face 40 % beyond the edge", 0.0, 0.4))
FULL_HD = (1920, 1080)


def blurred_mask(regions: list[dict], shape) -> np.ndarray:
    inside = np.zeros(shape[:2], bool)
    for r in regions:
        a, b, c, d = r["box"]
        inside[b:d, a:c] = True
    return inside


def covered_share(box, regions: list[dict]) -> float:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    inside = blurred_mask(regions, (FRAME[1], FRAME[0]))
    return float(inside[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 0.0


def recall_rows(frames: int, detection_side: int, covered: float) -> list[dict]:
    privacy = PrivacyFilter(None, detection_side)
    face = face_crop()
    cases = [("plate", w, 0.0, 0.0) for w in PLATE_WIDTHS]
    if face is not None:
        cases += [(name, h, angle, cut) for name, angle, cut in FACE_VARIANTS for h in FACE_HEIGHTS if name == "face" or h >= 120]
    cases.append(("nothing", 0, 0.0, 0.0))
    rows = []
    for name, size, angle, cut in cases:
        found, blurred_empty, times = 0, 0, []
        for k in range(frames):
            seed = 1000 * size + k
            rng = np.random.default_rng(seed)
            frame = bin_scene(seed)
            planted = None
            if name == "plate":
                planted = plant_plate(frame, rng, size)
            elif name != "nothing":
                planted = plant_face(frame, face, rng, size, angle=angle, cut=cut)
            started = time.perf_counter()
            _, regions, _ = privacy.protect(frame, "bench")
            times.append(time.perf_counter() - started)
            if planted is None:
                blurred_empty += bool(regions)
            else:
                found += covered_share(planted.box, regions) >= covered
        rows.append({"kind": name, "size": size, "frames": frames, "recall": None if planted is None else found / frames,
                     "false_blur": blurred_empty / frames if planted is None else None, "ms": 1000 * statistics.median(times)})
    return rows


def finder_sets() -> list[tuple[str, list]]:
    """Each finder alone, the candidates left out of the defaults, and all default finders together."""
    return [("face (frontal)", [FaceFinder()]), ("face + profiles (not used)", [FaceFinder(profiles=True)]),
            ("person (HOG)", [PersonFinder()]), ("plate", [PlateFinder()]), ("all default finders", default_finders())]


def false_blur_rows(waste: list[np.ndarray], scenes: list[np.ndarray], detection_side: int) -> list[dict]:
    rows = []
    for name, finders in finder_sets():
        privacy = PrivacyFilter(None, detection_side, finders=finders)
        row = {"finders": name}
        for source, frames in (("waste", waste), ("scenes", scenes)):
            hit, area, times = 0, [], []
            for frame in frames:
                started = time.perf_counter()
                _, regions, _ = privacy.protect(frame, "bench")
                times.append(time.perf_counter() - started)
                hit += bool(regions)
                area.append(blurred_mask(regions, frame.shape).mean())
            row[source] = None if not frames else (len(frames), hit / len(frames), float(np.mean(area)))
            if source == "scenes":
                row["ms"] = 1000 * statistics.median(times)
        full_hd = [cv2.resize(f, FULL_HD, interpolation=cv2.INTER_LINEAR) for f in (waste or scenes)[:20]]
        times = []
        for frame in full_hd:
            started = time.perf_counter()
            privacy.protect(frame, "bench")
            times.append(time.perf_counter() - started)
        row["ms_full_hd"] = 1000 * statistics.median(times)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames per planted kind and size")
    parser.add_argument("--waste", type=int, default=200, help="real waste photos for the false-blur rate (TrashNet++ valid)")
    parser.add_argument("--detection-side", type=int, default=640)
    parser.add_argument("--covered", type=float, default=0.8, help="share of a planted region that must be blurred to count as found")
    args = parser.parse_args(argv)
    rows = recall_rows(args.frames, args.detection_side, args.covered)
    waste = waste_photos(args.waste)
    scenes = [bin_scene(seed) for seed in range(args.frames)]
    blur_rows = false_blur_rows(waste, scenes, args.detection_side)

    print(f"\nbinsight privacy recall ({os.cpu_count()} cores; frames {FRAME[0]} x {FRAME[1]}, detection side {args.detection_side}, "
          f"default finders, found = >= {args.covered:.0%} of the region blurred)\n")
    print("| planted | size (px) | frames | recall | false-blur rate | ms per frame (p50) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        size = "" if r["kind"] == "nothing" else (f"{r['size']} wide" if r["kind"] == "plate" else f"{r['size']} high")
        recall = "" if r["recall"] is None else f"{r['recall']:.0%}"
        false_blur = "" if r["false_blur"] is None else f"{r['false_blur']:.0%}"
        print(f"| {r['kind']} | {size} | {r['frames']} | {recall} | {false_blur} | {r['ms']:.1f} |")

    waste_note = f"{len(waste)} TrashNet++ valid photos scaled to 1280 x 960" if waste else "TrashNet++ absent: no real photos"
    print(f"\nFalse blurs with nothing to hide ({waste_note}; {len(scenes)} synthetic scenes)\n")
    print("| finders | real waste photos: frames blurred / area blurred | synthetic scenes: frames blurred / area blurred "
          "| ms per frame 1280 x 960 (p50) | ms per frame 1920 x 1080 (p50) |")
    print("|---|---|---|---|---|")
    for r in blur_rows:
        cells = ["not measured" if r[s] is None else f"{r[s][1]:.1%} / {r[s][2]:.2%}" for s in ("waste", "scenes")]
        print(f"| {r['finders']} | {cells[0]} | {cells[1]} | {r['ms']:.1f} | {r['ms_full_hd']:.1f} |")


if __name__ == "__main__":
    main()
