"""Image in, model input out, and the model's label map back to the caller's pixels.

The client's image is untrusted: the body is already size-limited (api/middleware.py); here the
pixel count is checked from the header before any pixel is decoded (decompression bombs), and
only the formats below are ever handed to a PIL decoder. The geometry (letterbox in, the
card's restore rule out) is `modelcard.geometry`, shared with evaluation.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct

import numpy as np
from PIL import Image, ImageOps

from service.errors import bad_image, payload_too_large, unsupported_media_type

# A declared type must be one of these; the body is then sniffed among all of PIL_FORMATS (clients
# often label PNGs as JPEGs), and no other PIL decoder ever sees it.
ADVERTISED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
ACCEPTED_TYPES = frozenset((*ADVERTISED_TYPES, "image/jpg", "image/pjpeg", "image/x-ms-bmp"))
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def decode_base64_image(item: object) -> bytes:
    """An encoded image sent as base64 text inside a JSON body (a batch, a v2 BYTES tensor): 400 if it is not."""
    if not isinstance(item, (str, bytes)):
        raise bad_image("an encoded image in a JSON body must be a base64 string")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_image(f"not valid base64: {exc}") from None


def check_content_type(content_type: str | None) -> None:
    """Reject what is not a supported image type before reading further (415)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_TYPES:
        raise unsupported_media_type(
            f"content type {media_type or '(none)'!r} is not supported; send one of: {', '.join(ADVERTISED_TYPES)}"
        )


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode `data` into an RGB image with EXIF orientation applied; 413 over `max_pixels`.

    PIL's own bomb check (`Image.MAX_IMAGE_PIXELS`, an error at twice its value) stays on as a
    second line; it is reported as the same 413. The result stays a PIL image: the letterbox
    resizes it as it is, without a round trip through a NumPy copy.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise payload_too_large(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
        image.load()
    except Image.DecompressionBombError as exc:
        raise payload_too_large(f"image rejected as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise bad_image(f"could not decode the image (truncated, corrupt or not an image): {exc}") from exc
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when there is nothing to turn
    except (OSError, ValueError, SyntaxError, struct.error):
        pass  # unreadable EXIF: keep the stored orientation
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB: 16-bit grey scaled down, alpha composited over black, CMYK converted.
    An RGB image comes back as it is."""
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        grey = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("P", "L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    return image if image.mode == "RGB" else image.convert("RGB")
