"""The evidence picture: the stored photo with the detections drawn on it.

The boxes are in pixels of the upright photo (the service rotates by the
EXIF orientation tag before detecting), so the drawing is made on the upright
photo too. With privacy on, the stored photo is already upright, without the
tag (serve/privacy.py re-encodes the decoded frame); with it off, the stored
upload keeps its bytes, tag included, and is rotated here.
"""

from __future__ import annotations

import io

from PIL import ImageDraw

from pipeline.imageio import open_upright

CONTAMINANT = (230, 30, 30)
OTHER = (240, 200, 0)


def draw_evidence(image_bytes: bytes, detections: list[dict]) -> bytes:
    canvas = open_upright(io.BytesIO(image_bytes))
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    for d in detections:
        colour = CONTAMINANT if d["contaminant"] else OTHER
        x0, y0, x1, y1 = d["box"]
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        draw.text((x0 + width, max(0, y0 - 12)), f"{d['label']} {d['score']:.2f}", fill=colour)
    out = io.BytesIO()
    # Full-resolution colour (no 4:2:0 chroma subsampling): the boxes are thin
    # coloured lines, which subsampling smears into the pixels beside them.
    canvas.save(out, "JPEG", quality=90, subsampling=0)
    return out.getvalue()
