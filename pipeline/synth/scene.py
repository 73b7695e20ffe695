"""Drawing one truck-camera view into an open biowaste bin.

The picture is built in layers: an organic background (peel, leaves, grass,
coffee grounds), contaminants drawn as sprites with an alpha mask, organic
matter dropped over some of them, then the camera's degradations. Each
contaminant's box is taken from the pixels of it that stay visible, so boxes
are exact by construction.

All randomness comes from the `numpy.random.Generator` passed in, so a scene is
a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Rng = np.random.Generator

ORGANIC_COLOURS = np.array(
    [
        (74, 52, 33), (96, 68, 40), (58, 42, 28), (120, 84, 46),  # soil, rotten matter
        (84, 110, 44), (58, 86, 36), (112, 132, 52), (40, 64, 30),  # leaves, grass
        (196, 120, 40), (214, 150, 56), (170, 92, 34),  # orange and apple peel
        (200, 180, 90), (150, 130, 60),  # banana peel, straw
        (34, 26, 20), (50, 38, 30),  # coffee grounds
    ],
    dtype=np.float32,
)


@dataclass
class Sprite:
    rgb: np.ndarray  # HxWx3 float32 0..255
    alpha: np.ndarray  # HxW float32 0..1


def _smooth_noise(rng: Rng, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (size, size)."""
    small = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _blob_polygon(rng: Rng, radius: float, vertices: int, jitter: float) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radii = radius * (1 + rng.uniform(-jitter, jitter, vertices))
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def organic_background(rng: Rng, size: int) -> np.ndarray:
    base = ORGANIC_COLOURS[rng.integers(0, 4)]
    tone = _smooth_noise(rng, size, 6)[..., None]
    img = base * (0.6 + 0.7 * tone) * np.ones((size, size, 3), np.float32)
    # Dense clutter: many small organic pieces, the hard negatives of this domain.
    for _ in range(int(rng.integers(90, 160))):
        colour = ORGANIC_COLOURS[rng.integers(0, len(ORGANIC_COLOURS))] * rng.uniform(0.7, 1.15)
        centre = rng.uniform(0, size, 2)
        kind = rng.random()
        if kind < 0.5:  # leaves and peel: irregular blobs
            poly = _blob_polygon(rng, rng.uniform(0.015, 0.06) * size, int(rng.integers(5, 9)), 0.45)
            pts = (poly * [1.0, rng.uniform(0.35, 1.0)]) @ _rotation(rng.uniform(0, np.pi)).T + centre
            cv2.fillPoly(img, [np.round(pts * 4).astype(np.int32)], colour.tolist(), cv2.LINE_AA, shift=2)
        elif kind < 0.8:  # grass and stalks: thin strokes
            direction = rng.uniform(-1, 1, 2)
            end = centre + direction * rng.uniform(0.03, 0.12) * size
            cv2.line(img, _pt(centre), _pt(end), colour.tolist(), int(rng.integers(1, 3)), cv2.LINE_AA)
        else:  # coffee grounds, soil crumbs
            cv2.circle(img, _pt(centre), int(rng.integers(1, 4)), colour.tolist(), -1, cv2.LINE_AA)
    grain = rng.normal(0, 6, (size, size, 1)).astype(np.float32)
    return (img + grain).clip(0, 255)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]], np.float32)


def _canvas(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)


def _cylinder_shading(w: int, h: int, ambient: float = 0.55) -> np.ndarray:
    """Horizontal shading of a cylinder seen from the side, with a specular band."""
    x = np.linspace(-1, 1, w, dtype=np.float32)
    shade = ambient + (1 - ambient) * np.sqrt(np.clip(1 - x**2, 0, 1))
    spec = np.exp(-((x + 0.45) ** 2) / 0.01) * 0.8
    return np.tile((shade + spec)[None, :], (h, 1))[..., None]


def plastic_bag(rng: Rng, length: int) -> Sprite:
    s = length
    rgb, alpha = _canvas(s, s)
    palette = [(235, 235, 230), (70, 130, 200), (30, 30, 34), (230, 210, 60), (120, 180, 90), (200, 60, 60)]
    colour = np.array(palette[rng.integers(0, len(palette))], np.float32)
    poly = _blob_polygon(rng, s * 0.45, int(rng.integers(8, 15)), 0.3) * [1.0, rng.uniform(0.55, 1.0)] + s / 2
    mask = np.zeros((s, s), np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 255, cv2.LINE_AA)
    rgb[:] = colour
    # Crumples: bright and dark creases across the film.
    for _ in range(int(rng.integers(5, 12))):
        a, b = rng.uniform(0, s, 2), rng.uniform(0, s, 2)
        tint = colour * rng.choice([0.6, 1.35])
        cv2.line(rgb, _pt(a), _pt(b), tint.clip(0, 255).tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)
    if rng.random() < 0.3:  # "compostable" bags carry a printed grid
        step = max(3, s // 10)
        rgb[::step, :] *= 0.7
        rgb[:, ::step] *= 0.7
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0)
    alpha[:] = mask / 255.0 * rng.uniform(0.8, 0.95)
    return Sprite(rgb.clip(0, 255), alpha)


def plastic_bottle(rng: Rng, length: int) -> Sprite:
    h = length
    w = max(6, int(h * rng.uniform(0.28, 0.38)))
    rgb, alpha = _canvas(h, w)
    body = np.array([(200, 225, 240), (120, 190, 220), (150, 210, 160), (235, 235, 235)][rng.integers(0, 4)], np.float32)
    neck_h, cap_h = int(h * 0.22), int(h * 0.08)
    shading = _cylinder_shading(w, h)
    rgb[:] = body * shading
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (0, neck_h), (w - 1, h - 1), 255, -1)
    neck_w = max(2, w // 3)
    x0 = (w - neck_w) // 2
    cv2.rectangle(mask, (x0, cap_h), (x0 + neck_w, neck_h), 255, -1)
    cap = np.array([(30, 80, 200), (200, 40, 40), (240, 240, 240), (40, 160, 60)][rng.integers(0, 4)], np.float32)
    rgb[:cap_h, x0 : x0 + neck_w + 1] = cap
    mask[:cap_h, x0 : x0 + neck_w + 1] = 255
    if rng.random() < 0.7:  # a printed label band
        y = int(h * rng.uniform(0.45, 0.6))
        label = rng.uniform(40, 240, 3).astype(np.float32)
        rgb[y : y + int(h * 0.18)] = label * shading[y : y + int(h * 0.18)]
    alpha[:] = mask / 255.0 * 0.92
    return Sprite(rgb.clip(0, 255), alpha)


def can(rng: Rng, length: int) -> Sprite:
    h = length
    w = max(6, int(h * rng.uniform(0.5, 0.62)))
    rgb, alpha = _canvas(h, w)
    colour = np.array([(190, 30, 40), (30, 70, 170), (200, 200, 205), (30, 140, 70), (20, 20, 20)][rng.integers(0, 5)], np.float32)
    shading = _cylinder_shading(w, h, ambient=0.35)
    rgb[:] = colour * shading
    rim = max(2, h // 14)
    rgb[:rim] = 215 * shading[:rim]
    rgb[-rim:] = 215 * shading[-rim:]
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.35:  # crushed: a dented outline
        pts = np.array([[0, 0], [w, 0], [w * rng.uniform(0.7, 1), h / 2], [w, h], [0, h], [w * rng.uniform(0, 0.3), h / 2]])
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    else:
        cv2.rectangle(mask, (0, 0), (w - 1, h - 1), 255, -1)
    alpha[:] = mask / 255.0
    return Sprite(rgb.clip(0, 255), alpha)


def glass(rng: Rng, length: int) -> Sprite:
    h = length
    jar = rng.random() < 0.35
    w = max(6, int(h * (rng.uniform(0.6, 0.8) if jar else rng.uniform(0.3, 0.38))))
    rgb, alpha = _canvas(h, w)
    colour = np.array([(40, 110, 50), (110, 60, 20), (190, 215, 205)][rng.integers(0, 3)], np.float32)
    shading = _cylinder_shading(w, h, ambient=0.45)
    rgb[:] = colour * shading + 90 * (shading > 1.1)  # glass shows hard specular highlights
    mask = np.zeros((h, w), np.uint8)
    if jar:
        lid = max(2, h // 8)
        cv2.rectangle(mask, (0, 0), (w - 1, h - 1), 255, -1)
        rgb[:lid] = np.array([200, 190, 60], np.float32) * shading[:lid]  # metal lid
    else:
        neck_h = int(h * 0.35)
        neck_w = max(2, w // 3)
        x0 = (w - neck_w) // 2
        cv2.rectangle(mask, (0, neck_h), (w - 1, h - 1), 255, -1)
        cv2.rectangle(mask, (x0, 0), (x0 + neck_w, neck_h), 255, -1)
        cv2.ellipse(mask, (w // 2, neck_h), (w // 2, max(1, neck_h // 3)), 0, 180, 360, 255, -1)
    alpha[:] = mask / 255.0 * 0.93
    return Sprite(rgb.clip(0, 255), alpha)


def cardboard(rng: Rng, length: int) -> Sprite:
    h = length
    w = max(6, int(h * rng.uniform(0.55, 0.95)))
    rgb, alpha = _canvas(h, w)
    colour = np.array([(200, 165, 110), (185, 150, 100), (225, 205, 170)][rng.integers(0, 3)], np.float32)
    rgb[:] = colour
    step = max(2, w // 12)
    rgb[:, ::step] *= 0.88  # corrugation
    if rng.random() < 0.6:  # print on the box
        y, x = int(h * rng.uniform(0.1, 0.5)), int(w * rng.uniform(0.1, 0.4))
        cv2.rectangle(rgb, (x, y), (x + w // 3, y + h // 5), rng.uniform(20, 200, 3).tolist(), -1)
    quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32) + rng.uniform(-0.06, 0.06, (4, 2)) * [w, h]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(quad).astype(np.int32)], 255, cv2.LINE_AA)
    alpha[:] = mask / 255.0
    return Sprite(rgb.clip(0, 255), alpha)


SPRITES = {
    "plastic_bag": plastic_bag,
    "plastic_bottle": plastic_bottle,
    "can": can,
    "glass": glass,
    "cardboard": cardboard,
}


def rotate_sprite(sprite: Sprite, angle_deg: float) -> Sprite:
    h, w = sprite.alpha.shape
    side = int(np.ceil(np.hypot(h, w))) + 2
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[:, 2] += [(side - w) / 2, (side - h) / 2]
    rgb = cv2.warpAffine(sprite.rgb, m, (side, side), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(sprite.alpha, m, (side, side), flags=cv2.INTER_LINEAR)
    return Sprite(rgb, alpha)


def paste(img: np.ndarray, owner: np.ndarray, sprite: Sprite, top_left: tuple[int, int], owner_id: int) -> None:
    """Alpha-blend a sprite into img and mark the pixels it dominates in `owner`."""
    size = img.shape[0]
    y, x = top_left
    sh, sw = sprite.alpha.shape
    y0, x0, y1, x1 = max(0, y), max(0, x), min(size, y + sh), min(size, x + sw)
    if y0 >= y1 or x0 >= x1:
        return
    a = sprite.alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    region = img[y0:y1, x0:x1]
    region[:] = region * (1 - a[..., None]) + sprite.rgb[y0 - y : y1 - y, x0 - x : x1 - x] * a[..., None]
    owner[y0:y1, x0:x1][a > 0.5] = owner_id
