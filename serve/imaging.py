"""Decoding uploaded images safely: every way an upload can be broken has its own error.

The service decodes bytes from the internet, so it checks the format by its
magic bytes (not the client's word), refuses decompression bombs before any
pixel is decoded, and decodes fully so that a truncated JPEG is caught here
rather than half-stored. The photo is rotated upright by its EXIF
orientation, as pipeline/imageio.py reads the training data. What becomes of
the pixels next (downscale, quality gate, verdict) is pipeline/inspection.py,
shared with the evaluation.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


class ImageRejected(ValueError):
    """An upload that is not a usable image; `code` names the problem for API clients."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def sniff_format(data: bytes) -> str | None:
    return next((fmt for magic, fmt in MAGIC.items() if data.startswith(magic)), None)


def declared_png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, read without decoding anything."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def decode_image(data: bytes, max_pixels: int) -> tuple[np.ndarray, str]:
    """RGB uint8 [H, W, 3] and the format name, or ImageRejected saying why not."""
    if not data:
        raise ImageRejected("empty_image", "the image part is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected("unsupported_image_format", "the upload is not a JPEG or PNG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                width, height = im.size
                if width == 0 or height == 0:
                    raise ImageRejected("invalid_image_size", f"the image is {width}x{height} pixels")
                if width * height > max_pixels:
                    raise ImageRejected("image_too_large", f"the image is {width}x{height} pixels; at most {max_pixels} pixels are accepted")
                im.load()  # decodes everything: a truncated file fails here
                ImageOps.exif_transpose(im, in_place=True)  # in place: a copy would cost a tenth of the decode
                rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except ImageRejected:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageRejected("image_too_large", str(err)) from None
    except (UnidentifiedImageError, SyntaxError) as err:
        if 0 in (declared_png_size(data) or (1, 1)):
            raise ImageRejected("invalid_image_size", "the image declares a width or height of 0 pixels") from None
        raise ImageRejected("unreadable_image", f"the {fmt} image cannot be decoded: {err}") from None
    except (OSError, ValueError) as err:
        code = "truncated_image" if "truncated" in str(err).lower() else "unreadable_image"
        raise ImageRejected(code, f"the {fmt} image cannot be decoded: {err}") from None
    return rgb, fmt

