"""Test frames for the privacy step, built offline: bin scenes with a licence plate or a face planted in them.

- Backgrounds: the synthetic bin scenes of the default dataset's generator
  (pipeline/synth, contaminants included: bottles, cans, cardboard are the
  bright rectangles a plate finder must not take for plates), upscaled to a
  truck camera's 1280 x 960.
- Plates: German-style, rendered with Pillow (black text on white, a black
  frame, the blue EU band with "D"), perspective-warped by a random tilt and
  foreshortening, at several widths.
- Faces: Grace Hopper's portrait from matplotlib's bundled sample data,
  cropped to the head and pasted at several sizes, also tilted and partly
  beyond the frame's edge; and the 100 faces of scikit-image's subset of
  Labeled Faces in the Wild (`skimage.data.lfw_subset()`: 25 x 25 grayscale
  crops of the face alone, inside the wheel, no download), upscaled bicubic
  and pasted as RGB. The subset's other 100 crops are not faces (background
  patches of the same photos): pasted the same way, they test false blurs.
- People: scikit-image's "cameraman" (`camera()`: a man standing, bent
  forward to a camera on a tripod, cut by the photo's left and bottom edges
  above the knees) and "astronaut" (`astronaut()`: head and upper body),
  each cropped to the person's box and pasted at a share of the frame height.
  Without scikit-image (the `test` extra) these are not built.
- Real waste photos for the false-blur rate: TrashNet++ (../shared/data/trashnetpp),
  read where present, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.config import SynthConfig
from pipeline.synth.generate import render_capture

FRAME = (1280, 960)  # width, height of a truck camera frame
SCENE_CLASSES = ["plastic_bag", "plastic_bottle", "can", "glass", "cardboard"]
DISTRICT_CODES = ("HA", "HAM", "DO", "UN", "EN", "SO", "MK", "BO")
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
EU_BLUE = (0, 51, 153)
EU_YELLOW = (255, 204, 0)
PLATE_MM = (520, 110)


@dataclass(frozen=True)
class Planted:
    kind: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


def bin_scene(seed: int) -> np.ndarray:
    """A synthetic bin photo (RGB uint8, FRAME): organic matter with or without contaminants."""
    cfg = SynthConfig(seed=seed, num_bins=1, captures_per_bin=(1, 1), image_size=320, clean_share=0.0,
                      objects_per_image=(2, 5), scale=(0.15, 0.4), occlusion_max=0.3, degradation_probability=0.0, jpeg_quality=(90, 90))
    rgb, _, _ = render_capture(cfg, SCENE_CLASSES, seed, contaminated=seed % 3 != 0)
    return cv2.resize(rgb, FRAME, interpolation=cv2.INTER_CUBIC)


def plate_text(rng: np.random.Generator) -> str:
    district = DISTRICT_CODES[int(rng.integers(len(DISTRICT_CODES)))]
    letters = "".join(LETTERS[int(i)] for i in rng.integers(0, len(LETTERS), int(rng.integers(1, 3))))
    return f"{district}-{letters} {int(rng.integers(1, 9999))}"


def render_plate(text: str, width: int = 520) -> np.ndarray:
    """A German plate as RGB uint8, `width` pixels wide (520 x 110 mm)."""
    scale = width / PLATE_MM[0]
    height = round(PLATE_MM[1] * scale)
    plate = Image.new("RGB", (width, height), (245, 245, 240))
    draw = ImageDraw.Draw(plate)
    border = max(1, round(4 * scale))
    draw.rectangle([0, 0, width - 1, height - 1], outline=(10, 10, 10), width=border)
    band = round(40 * scale)
    draw.rectangle([border, border, band, height - 1 - border], fill=EU_BLUE)
    small = ImageFont.load_default(size=max(6, round(28 * scale)))
    draw.text(((band + border) / 2, height * 0.72), "D", fill=(255, 255, 255), font=small, anchor="mm")
    for k in range(12):  # the ring of EU stars, as dots
        angle = 2 * np.pi * k / 12
        x, y = (band + border) / 2 + 11 * scale * np.cos(angle), height * 0.32 + 11 * scale * np.sin(angle)
        draw.ellipse([x - scale * 1.5, y - scale * 1.5, x + scale * 1.5, y + scale * 1.5], fill=EU_YELLOW)
    font = ImageFont.load_default(size=max(8, round(75 * scale)))
    draw.text((band + (width - band) / 2, height / 2), text, fill=(10, 10, 10), font=font, anchor="mm")
    return np.asarray(plate)


def plant_plate(frame: np.ndarray, rng: np.random.Generator, width: int) -> Planted:
    """Warp a plate of about `width` pixels into the frame at a random place, tilt and foreshortening (in place)."""
    plate = render_plate(plate_text(rng), width)
    h, w = plate.shape[:2]
    tilt = np.deg2rad(rng.uniform(-12, 12))
    shrink = rng.uniform(0.0, 0.25)  # one end farther away than the other
    corners = np.array([[0, 0], [w, shrink * h / 2], [w, h - shrink * h / 2], [0, h]], np.float32)
    rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]], np.float32)
    corners = (corners - [w / 2, h / 2]) @ rotation.T
    extent = corners.max(axis=0) - corners.min(axis=0)
    centre = [rng.uniform(extent[0] / 2 + 2, FRAME[0] - extent[0] / 2 - 2), rng.uniform(extent[1] / 2 + 2, FRAME[1] - extent[1] / 2 - 2)]
    target = (corners + centre).astype(np.float32)
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    transform = cv2.getPerspectiveTransform(source, target)
    warped = cv2.warpPerspective(plate, transform, FRAME, flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(np.full((h, w), 255, np.uint8), transform, FRAME, flags=cv2.INTER_AREA)[..., None] / 255.0
    frame[:] = (frame * (1 - alpha) + warped * alpha).round().astype(np.uint8)
    return Planted("plate", tuple(float(v) for v in (*target.min(axis=0), *target.max(axis=0))))


def face_crop() -> np.ndarray | None:
    """Grace Hopper's head from matplotlib's sample data (RGB uint8), or None where matplotlib is not installed."""
    try:
        from matplotlib import cbook
    except ImportError:
        return None
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        portrait = np.asarray(Image.open(f).convert("RGB"))
    return portrait[30:330, 110:400]  # forehead to chin, ear to ear (the photo is 512 x 600)


def plant_face(frame: np.ndarray, face: np.ndarray, rng: np.random.Generator, height: int, angle: float = 0.0, cut: float = 0.0) -> Planted:
    """Paste the face `height` pixels high at a random place (in place).

    `angle`: degrees the head is turned in the image plane (a tilted head);
    `cut`: share of its width that lies beyond the frame's left or right edge
    (a head partly in view). The planted box is the part inside the frame.
    """
    frame_h, frame_w = frame.shape[:2]
    width = round(face.shape[1] * height / face.shape[0])
    resized = cv2.resize(face, (width, height), interpolation=cv2.INTER_AREA)
    if angle:
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        resized = cv2.warpAffine(resized, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
    y = int(rng.integers(0, frame_h - height))
    if cut:
        hidden = round(cut * width)
        if rng.random() < 0.5:
            frame[y:y + height, :width - hidden] = resized[:, hidden:]
            return Planted("face", (0.0, float(y), float(width - hidden), float(y + height)))
        frame[y:y + height, frame_w - width + hidden:] = resized[:, :width - hidden]
        return Planted("face", (float(frame_w - width + hidden), float(y), float(frame_w), float(y + height)))
    x = int(rng.integers(0, frame_w - width))
    frame[y:y + height, x:x + width] = resized
    return Planted("face", (float(x), float(y), float(x + width), float(y + height)))


TRASHNET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trashnetpp"


def waste_photos(count: int, split: str = "valid") -> list[np.ndarray]:
    """The first `count` TrashNet++ photos of `split` (320 x 320) scaled to FRAME, RGB; [] where the data set is absent."""
    files = sorted((TRASHNET / split / "images").glob("*.jpg"))[:count]
    return [cv2.resize(np.asarray(Image.open(f).convert("RGB")), FRAME, interpolation=cv2.INTER_CUBIC) for f in files]


def lfw_crops() -> tuple[np.ndarray, np.ndarray] | None:
    """scikit-image's LFW subset as uint8: (100 faces, 100 non-faces), each 25 x 25; None without scikit-image.

    The docstring says uint8, but scikit-image 0.26 returns floats in 0-1; both are accepted.
    """
    try:
        from skimage import data
    except ImportError:
        return None
    crops = np.asarray(data.lfw_subset())
    if crops.dtype != np.uint8:
        crops = (np.clip(crops, 0.0, 1.0) * 255).round().astype(np.uint8)
    return crops[:100], crops[100:200]


def plant_square(frame: np.ndarray, gray: np.ndarray, rng: np.random.Generator, height: int, kind: str) -> Planted:
    """Paste a grayscale crop upscaled bicubic to `height` pixels (aspect kept) as RGB at a random place (in place)."""
    frame_h, frame_w = frame.shape[:2]
    width = round(gray.shape[1] * height / gray.shape[0])
    resized = cv2.cvtColor(cv2.resize(gray, (width, height), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
    y, x = int(rng.integers(0, frame_h - height + 1)), int(rng.integers(0, frame_w - width + 1))
    frame[y:y + height, x:x + width] = resized
    return Planted(kind, (float(x), float(y), float(x + width), float(y + height)))


@dataclass(frozen=True)
class PersonPhoto:
    name: str
    rgb: np.ndarray  # the photo cropped around the person
    head: tuple[int, int, int, int]  # the head's box inside `rgb`: x1, y1, x2, y2
    person: tuple[int, int, int, int] | None = None  # the person's box inside `rgb`; None: all of it


# Boxes read off the 512 x 512 photos by eye (x1, y1, x2, y2): the person, and the head (hair to chin, ear to ear).
CAMERAMAN = ((0, 63, 335, 512), (155, 63, 272, 200))  # his coat runs on beyond the photo's left and bottom edges
ASTRONAUT = ((20, 15, 365, 512), (150, 15, 302, 190))  # head and upper body, cut at the waist by the photo


# Ultralytics' sample photo bus.jpg (810 x 1080): two men walking past a bus, whole and upright, the kind of person
# the HOG people finder is built for. It ships in the ultralytics wheel (the `bench` extra; AGPL-3.0): read from the
# installed package, never copied into this repository. Boxes read off the photo by eye: person, head.
BUS_PEOPLE = (("walker, fur coat (Ultralytics bus.jpg)", (48, 395, 246, 905), (100, 398, 160, 478)),
              ("walker, black coat (Ultralytics bus.jpg)", (222, 403, 346, 862), (258, 404, 312, 472)))
BUS_CONTEXT = 0.1  # of the person's height, kept around the person on every side (HOG's window has such a margin)


def ultralytics_assets() -> Path | None:
    """The sample photos folder of the installed ultralytics package, found without importing it; None without it."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return folder if folder.is_dir() else None


def bus_people(assets: Path | None) -> list[PersonPhoto]:
    """The two walkers of bus.jpg, each with some of the street around them; [] where the photo is not at hand."""
    path = None if assets is None else assets / "bus.jpg"
    if path is None or not path.is_file():
        return []
    image = np.asarray(Image.open(path).convert("RGB"))
    photos = []
    for name, (x1, y1, x2, y2), head in BUS_PEOPLE:
        margin = round(BUS_CONTEXT * (y2 - y1))
        cx1, cy1 = max(0, x1 - margin), max(0, y1 - margin)
        cx2, cy2 = min(image.shape[1], x2 + margin), min(image.shape[0], y2 + margin)
        photos.append(PersonPhoto(name, np.ascontiguousarray(image[cy1:cy2, cx1:cx2]),
                                  (head[0] - cx1, head[1] - cy1, head[2] - cx1, head[3] - cy1),
                                  (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)))  # fmt: skip
    return photos


def person_photos(assets: Path | None = None) -> list[PersonPhoto]:
    """The cameraman and the astronaut from scikit-image's data (in its wheel), and bus.jpg's walkers where `assets`
    (Ultralytics' sample photos) holds it; each source left out where it is not installed."""
    photos = []
    try:
        from skimage import data
    except ImportError:
        data = None
    if data is not None:
        for name, image, (person, head) in (("cameraman", cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB), CAMERAMAN),
                                            ("astronaut", data.astronaut()[..., :3], ASTRONAUT)):
            x1, y1, x2, y2 = person
            photos.append(PersonPhoto(name, np.ascontiguousarray(image[y1:y2, x1:x2]), (head[0] - x1, head[1] - y1, head[2] - x1, head[3] - y1)))
    return photos + bus_people(assets)  # after the two above: their rows keep the seeds of earlier tables


def plant_person(frame: np.ndarray, photo: PersonPhoto, rng: np.random.Generator, height: int) -> tuple[Planted, Planted]:
    """Paste the photo `height` pixels high (the person, and the context `photo.person` leaves around them) at a random
    place, wholly inside the frame (in place): (person, head) boxes."""
    frame_h, frame_w = frame.shape[:2]
    scale = height / photo.rgb.shape[0]
    width = round(photo.rgb.shape[1] * scale)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(photo.rgb, (width, height), interpolation=interpolation)
    y, x = int(rng.integers(0, frame_h - height + 1)), int(rng.integers(0, frame_w - width + 1))
    frame[y:y + height, x:x + width] = resized
    hx1, hy1, hx2, hy2 = (v * scale for v in photo.head)
    px1, py1, px2, py2 = (0, 0, photo.rgb.shape[1], photo.rgb.shape[0]) if photo.person is None else photo.person
    return (Planted("person", (x + px1 * scale, y + py1 * scale, x + px2 * scale, y + py2 * scale)),
            Planted("head", (x + hx1, y + hy1, x + hx2, y + hy2)))
