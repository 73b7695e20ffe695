"""Reading dataset images upright: the one place that decides how a file becomes pixels.

Cameras and phones store many JPEGs sideways with an EXIF orientation tag;
viewers, labelling tools (Label Studio, CVAT, Ultralytics) and binsight's
service all rotate by that tag before anything else. Training, validation,
evaluation and evidence drawing must see the same upright picture, or boxes
labelled on the displayed image land on the wrong pixels. Pillow only, no
torch: the data tools and the service use it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def open_upright(source) -> Image.Image:
    """The image rotated/flipped by its EXIF orientation, fully decoded, in RGB."""
    with Image.open(source) as im:
        im.load()  # decodes everything: a truncated file fails here, not later
        upright = ImageOps.exif_transpose(im)
        return upright.convert("RGB") if upright.mode != "RGB" else upright.copy()


def read_rgb(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3], upright; a writable copy (torch.from_numpy needs one)."""
    return np.array(open_upright(path))


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed: swapped for EXIF orientations 5-8 (90/270 degrees)."""
    orientation = image.getexif().get(0x0112, 1)
    w, h = image.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
