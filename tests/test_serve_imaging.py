"""Upload decoding: the format is judged by its bytes, and every failure has its own code."""

import io

import numpy as np
import pytest
from PIL import Image

from serve.imaging import ImageRejected, decode_image


def encoded(fmt: str, size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_jpeg_and_png_decode_to_rgb(fmt):
    rgb, found = decode_image(encoded(fmt), 10_000)
    assert found == fmt and rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


def test_greyscale_png_becomes_rgb():
    rgb, _ = decode_image(encoded("PNG", mode="L"), 10_000)
    assert rgb.shape == (48, 64, 3)


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty_image"),
        (b"GIF89a....", "unsupported_image_format"),
        (encoded("JPEG")[:200], "truncated_image"),
        (encoded("PNG", size=(200, 100)), "image_too_large"),
    ],
)
def test_rejections_name_the_problem(data, code):
    with pytest.raises(ImageRejected) as err:
        decode_image(data, max_pixels=10_000)
    assert err.value.code == code


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 30), 50)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the camera was held on its side
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    rgb, _ = decode_image(buf.getvalue(), 10_000)
    assert rgb.shape == (60, 30, 3)

