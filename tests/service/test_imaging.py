"""Decoding untrusted images: limits, formats, colour modes, EXIF orientation, and the way back."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from modelcard.geometry import crop, letterbox, resize_labels
from service.errors import ServiceError
from service.imaging import check_content_type, decode_image

LIMIT = 10_000_000


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 40, height: int = 30) -> np.ndarray:
    """An RGB image whose pixels say where they are (red = column, green = row)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols * 255 // (width - 1), rows * 255 // (height - 1), np.full_like(rows, 90)], -1).astype(
        np.uint8
    )


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(decode_image(data, LIMIT))


def status_of(call) -> int:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value.status


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_decode_exactly(fmt):
    pixels = gradient()
    options = {"lossless": True} if fmt == "WEBP" else {}
    assert np.array_equal(pixels_of(encode(Image.fromarray(pixels), fmt, **options)), pixels)


def test_jpeg_decodes_close_to_the_original():
    pixels = gradient()
    decoded = pixels_of(encode(Image.fromarray(pixels), "JPEG", quality=95))
    assert decoded.shape == pixels.shape and np.abs(decoded.astype(int) - pixels).mean() < 3


@pytest.mark.parametrize(
    ("make", "expected_first_pixel"),
    [
        (lambda: Image.new("L", (8, 6), 77), (77, 77, 77)),
        (lambda: Image.new("1", (8, 6), 1), (255, 255, 255)),
        (lambda: Image.fromarray(np.full((6, 8), 40000, np.uint16)), (156, 156, 156)),  # 16-bit grey: >> 8
        (lambda: Image.new("RGBA", (8, 6), (200, 100, 50, 255)), (200, 100, 50)),
        (lambda: Image.new("RGBA", (8, 6), (200, 100, 50, 0)), (0, 0, 0)),  # transparent: over black
        (lambda: Image.new("LA", (8, 6), (90, 255)), (90, 90, 90)),
    ],
    ids=["grey", "bilevel", "16-bit", "rgba-opaque", "rgba-transparent", "grey-alpha"],
)
def test_colour_modes_become_rgb(make, expected_first_pixel):
    decoded = pixels_of(encode(make(), "PNG"))
    assert decoded.dtype == np.uint8 and decoded.shape == (6, 8, 3)
    assert tuple(decoded[0, 0]) == expected_first_pixel


def test_palette_with_transparency_and_gif_become_rgb():
    palette = Image.new("P", (8, 6), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert tuple(pixels_of(encode(palette, "GIF"))[0, 0]) == (10, 200, 30)
    palette.info["transparency"] = 1
    assert tuple(pixels_of(encode(palette, "PNG", transparency=1))[0, 0]) == (0, 0, 0)


def test_cmyk_jpeg_is_converted():
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # pure red in CMYK
    red, green, blue = pixels_of(encode(cmyk, "JPEG", quality=95))[3, 3].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied():
    pixels = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise to display
    decoded = pixels_of(encode(Image.fromarray(pixels), "PNG", exif=exif))
    assert decoded.shape == (40, 30, 3)
    assert np.array_equal(decoded, np.rot90(pixels, k=-1))


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    # A valid PNG header announcing 4000x3000, then one row of pixel data and no end: a full decode
    # fails as truncated (400); the header check must refuse it first (413).
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 4000, 3000, 8, 2, 0, 0, 0)
    stream = zlib.compressobj()
    first_row = stream.compress(bytes(1 + 3 * 4000)) + stream.flush(zlib.Z_SYNC_FLUSH)  # unfinished stream
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", first_row)
    assert status_of(lambda: decode_image(data, max_pixels=1_000_000)) == 413
    assert status_of(lambda: decode_image(data, max_pixels=20_000_000)) == 400


def test_decompression_bomb_beyond_pil_limit_is_413():
    huge = Image.new("1", (20000, 20000))  # 400 MP; PIL refuses > 2 * MAX_IMAGE_PIXELS itself
    data = encode(huge, "PNG")
    assert status_of(lambda: decode_image(data, max_pixels=10**12)) == 413


def test_truncated_and_garbage_bodies_are_400():
    jpeg = encode(Image.fromarray(gradient(200, 150)), "JPEG")
    assert status_of(lambda: decode_image(jpeg[: len(jpeg) // 2], LIMIT)) == 400
    assert status_of(lambda: decode_image(b"definitely not an image", LIMIT)) == 400
    assert status_of(lambda: decode_image(b"", LIMIT)) == 400


def test_formats_outside_the_list_are_not_decoded():
    assert status_of(lambda: decode_image(encode(Image.new("RGB", (8, 6)), "ICO"), LIMIT)) == 400


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/PNG", "image/webp; q=1", "image/tiff"])
def test_image_content_types_are_accepted(content_type):
    check_content_type(content_type)


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json", "image/svg+xml",
                                          "application/octet-stream"])
def test_other_content_types_are_415(content_type):
    assert status_of(lambda: check_content_type(content_type)) == 415


@pytest.mark.parametrize("size", [(30, 40), (40, 30), (37, 53), (64, 64), (300, 40), (500, 1200)])
def test_labels_map_back_to_the_original_pixels(size):
    """A label map computed on the letterboxed image comes back at the original size, aligned."""
    height, width = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, width // 2 :] = 255  # right half white
    canvas, placement = letterbox(pixels, (64, 64))
    model_labels = (canvas[..., 0] > 127).astype(np.uint8)  # a "model" that labels white pixels 1
    restored = resize_labels(crop(model_labels, placement), (height, width))
    assert restored.shape == (height, width)
    expected = (pixels[..., 0] > 127).astype(np.uint8)
    # Only columns within one model pixel of the boundary may differ (a model pixel covers
    # width / placement.width original columns).
    slack = int(np.ceil(width / placement.width)) + 1
    disagreeing_columns = np.flatnonzero((restored != expected).any(axis=0))
    assert np.all(np.abs(disagreeing_columns - width // 2) <= slack), disagreeing_columns


def test_letterbox_gives_the_same_input_from_the_decoded_image_and_from_its_pixels():
    """The service letterboxes the decoded PIL image directly; evaluation and export parity pass arrays."""
    decoded = decode_image(encode(Image.fromarray(gradient(53, 37)), "PNG"), LIMIT)
    from_image, image_placement = letterbox(decoded, (64, 64))
    from_pixels, pixels_placement = letterbox(np.asarray(decoded), (64, 64))
    assert image_placement == pixels_placement and np.array_equal(from_image, from_pixels)
