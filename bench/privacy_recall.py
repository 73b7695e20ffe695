"""Recall, false blurs and cost of the privacy step's finders, on frames built offline; prints two tables.

    python -m bench.privacy_recall [--frames 40] [--lfw 100] [--waste 200] [--detection-side 640] [--covered 0.8] [--person-covered 0.5]
                                   [--assets DIR] [--only TEXT]

    quick check: python -m bench.privacy_recall --frames 2 --lfw 2 --waste 2

1. Recall: synthetic bin scenes (bench/privacy_scenes.py) at 1280 x 960 with
   one thing planted, or nothing:
   - a plate, `--frames` per width;
   - Grace Hopper's face, `--frames` per height (also tilted 15 degrees, and
     with 40 % of its width beyond the frame's edge);
   - the first `--lfw` of scikit-image's 100 LFW faces, each once per height,
     upscaled bicubic from 25 x 25 grayscale and pasted as RGB; the first
     `--lfw` of its 100 LFW non-faces, pasted the same way into the same
     scenes at the same places (a paired control: only the patch differs);
   - the cameraman and the astronaut, `--frames` random places per height
     (a share of the frame height), wholly inside the frame; and, where the
     ultralytics package is installed (the `bench` extra) or `--assets` names
     a folder holding its bus.jpg, that photo's two walkers (whole and
     upright), each pasted with a tenth of their height of street around
     them (the height is the pasted photo's, the person about 5/6 of it).
   A planted face or plate counts as found when at least `--covered` of its
   area lies in regions the privacy step blurred; a person when at least
   `--person-covered` of the person's box does (the "head" column: the
   person's head box by `--covered`). The filter runs exactly as the service
   runs it (serve/privacy.py, default finders, no mask). False-blur rate:
   frames with any blur at all, for rows where nothing to hide was planted.
   Rows that need scikit-image or matplotlib are left out without them.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from bench.privacy_scenes import (FRAME, Planted, bin_scene, face_crop, lfw_crops, person_photos, plant_face, plant_person,
                                  plant_plate, plant_square, ultralytics_assets, waste_photos)
from serve.people_finders import FaceFinder, PersonFinder
from serve.plate_finder import PlateFinder
from serve.privacy import PrivacyFilter, default_finders

PLATE_WIDTHS = (80, 120, 180, 260, 360)  # pixels of a 1280-pixel frame
FACE_HEIGHTS = (40, 80, 120, 160, 320)
FACE_VARIANTS = (("face", 0.0, 0.0), ("face tilted 15 deg", 15.0, 0.0), ("face 40 % beyond the edge", 0.0, 0.4))
LFW_HEIGHTS = (60, 90, 120, 160, 240)  # pixels of a 960-pixel-high frame; the crops are 25 px, so every one is upscaled
PERSON_SHARES = (40, 60, 80, 100)  # pasted photo's height (the person's box, with any context around it), % of the frame height
FULL_HD = (1920, 1080)
LFW_SEEDS, PERSON_SEEDS = 7_000_000, 9_000_000  # scene seeds apart from the plate and Grace Hopper rows' 1000 * size + k


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


@dataclass
class Case:
    kind: str
    size: str
    frames: int
    seed: Callable[[int], int]
    # Plants into the frame (in place) what frame k gets: (the thing to hide, or None for nothing; the head of a person, or None).
    plant: Callable[[np.ndarray, np.random.Generator, int], tuple[Planted | None, Planted | None]]
    person: bool = False


def cases(frames: int, lfw: int, assets: Path | None = None) -> list[Case]:
    out = [Case("plate", f"{w} wide", frames, lambda k, w=w: 1000 * w + k, lambda f, r, k, w=w: (plant_plate(f, r, w), None))
           for w in PLATE_WIDTHS]
    face = face_crop()
    if face is not None:
        out += [Case(f"{name} (Grace Hopper)", f"{h} high", frames, lambda k, h=h: 1000 * h + k,
                     lambda f, r, k, h=h, a=angle, c=cut: (plant_face(f, face, r, h, angle=a, cut=c), None))
                for name, angle, cut in FACE_VARIANTS for h in FACE_HEIGHTS if name == "face" or h >= 120]
    crops = lfw_crops()
    if crops is not None:
        faces, non_faces = (c[:min(lfw, 100)] for c in crops)
        # Face k and non-face k share a seed: same scene, same place, only the patch differs.
        out += [Case("LFW face", f"{h} high", len(faces), lambda k, h=h: LFW_SEEDS + 1000 * h + k,
                     lambda f, r, k, h=h: (plant_square(f, faces[k], r, h, "face"), None)) for h in LFW_HEIGHTS]
        out += [Case("LFW non-face", f"{h} high", len(non_faces), lambda k, h=h: LFW_SEEDS + 1000 * h + k,
                     lambda f, r, k, h=h: _nothing_to_hide(plant_square(f, non_faces[k], r, h, "non-face"))) for h in LFW_HEIGHTS]
    for n, photo in enumerate(person_photos(assets)):
        out += [Case(photo.name, f"{share} % of frame ({round(share / 100 * FRAME[1])} px)", frames,
                     lambda k, n=n, s=share: PERSON_SEEDS + 100_000 * n + 1000 * s + k,
                     lambda f, r, k, p=photo, s=share: plant_person(f, p, r, round(s / 100 * FRAME[1])), person=True)
                for share in PERSON_SHARES]
    out.append(Case("nothing", "", frames, lambda k: k, lambda f, r, k: (None, None)))
    return out


def _nothing_to_hide(_: Planted) -> tuple[None, None]:
    """A non-face was planted: any blur in the frame is a false one."""
    return None, None


def recall_rows(frames: int, lfw: int, detection_side: int, covered: float, person_covered: float, assets: Path | None = None,
                only: str | None = None) -> list[dict]:  # fmt: skip
    privacy = PrivacyFilter(None, detection_side)
    rows = []
    for case in cases(frames, lfw, assets):
        if only is not None and only not in case.kind:
            continue
        found, head_found, blurred, times = 0, 0, 0, []
        for k in range(case.frames):
            seed = case.seed(k)
            rng = np.random.default_rng(seed)
            frame = bin_scene(seed)
            planted, head = case.plant(frame, rng, k)
            started = time.perf_counter()
            _, regions, _ = privacy.protect(frame, "bench")
            times.append(time.perf_counter() - started)
            blurred += bool(regions)
            if planted is not None:
                found += covered_share(planted.box, regions) >= (person_covered if case.person else covered)
            if case.person:
                head_found += covered_share(head.box, regions) >= covered
        n = case.frames
        rows.append({"kind": case.kind, "size": case.size, "frames": n,
                     "recall": found / n if case.kind not in ("nothing", "LFW non-face") else None,
                     "head": head_found / n if case.person else None,
                     "false_blur": blurred / n if case.kind in ("nothing", "LFW non-face") else None,
                     "ms": 1000 * statistics.median(times)})
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
    parser.add_argument("--frames", type=int, default=40, help="frames per plate width, Grace Hopper face height, person height")
    parser.add_argument("--lfw", type=int, default=100, help="LFW faces and non-faces per height (at most 100)")
    parser.add_argument("--waste", type=int, default=200, help="real waste photos for the false-blur rate (TrashNet++ valid)")
    parser.add_argument("--detection-side", type=int, default=640)
    parser.add_argument("--covered", type=float, default=0.8, help="share of a planted face or plate that must be blurred to count as found")
    parser.add_argument("--person-covered", type=float, default=0.5, help="share of a planted person's box that must be blurred to count as found")
    parser.add_argument("--assets", type=Path, default=ultralytics_assets(),
                        help="folder with Ultralytics' bus.jpg (default: the installed ultralytics package's; unset: rows left out)")
    parser.add_argument("--only", default=None, metavar="TEXT",
                        help="only the recall rows whose thing planted contains TEXT (e.g. walker), and no false-blur table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = recall_rows(args.frames, args.lfw, args.detection_side, args.covered, args.person_covered, args.assets, args.only)
    waste = waste_photos(args.waste) if args.only is None else []
    scenes = [bin_scene(seed) for seed in range(args.frames)] if args.only is None else []
    blur_rows = false_blur_rows(waste, scenes, args.detection_side) if args.only is None else []

    print(f"\nbinsight privacy recall ({os.cpu_count()} cores; frames {FRAME[0]} x {FRAME[1]}, detection side {args.detection_side}, "
          f"default finders, found = >= {args.covered:.0%} of a face or plate blurred, >= {args.person_covered:.0%} of a person's box; "
          f"{time.perf_counter() - started:.0f} s in all)\n")
    print("| planted | size (px) | frames | recall | head blurred | false-blur rate | ms per frame (p50) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = ["" if r[key] is None else f"{r[key]:.0%}" for key in ("recall", "head", "false_blur")]
        print(f"| {r['kind']} | {r['size']} | {r['frames']} | {' | '.join(cells)} | {r['ms']:.1f} |")

    if args.only is not None:
        return
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
