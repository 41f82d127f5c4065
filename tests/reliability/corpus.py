"""A fuzz corpus of uploads, generated at test time: each with the status and error code the API documents.

Images that are odd but valid (1x1, 16-bit, CMYK, palette with transparency, EXIF-rotated, other
formats) must be segmented at their displayed size; broken, hostile or mislabelled bodies must get
their 4xx JSON error. Nothing here may produce a 5xx.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

PDF_BODY = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Upload:
    """One request to POST /segment and what it must get back."""

    name: str
    body: bytes | None  # None: a chunked body of `chunked_size` bytes with no Content-Length
    status: int
    code: str | None = None  # the error code (non-200)
    size: tuple[int, int] | None = None  # (width, height) of the mask (200)
    content_type: str | None = "image/png"  # the raw body's, or the multipart part's
    form_field: str | None = None  # the multipart field name; None sends the raw body
    params: dict[str, str] = field(default_factory=dict)
    chunked_size: int = 0

    def request(self) -> dict:
        """Keyword arguments for `httpx.Client.post("/segment", ...)`."""
        if self.form_field is not None:
            return {"params": self.params, "files": {self.form_field: ("upload", self.body, self.content_type)}}
        headers = {"Content-Type": self.content_type} if self.content_type else {}
        content = self.body if self.body is not None else _chunks(self.chunked_size)
        return {"params": self.params, "content": content, "headers": headers}


def _chunks(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, total, chunk):
        yield b"\0" * min(chunk, total - start)


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` RGB pixels, with a few bytes of data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(
        b"IEND", b"")


def exif_oriented_jpeg(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(Image.fromarray(pixels), "JPEG", quality=90, exif=exif)


def sample_pixels(photo: Path, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """A real photo scaled to `size` (width, height): small, so the corpus is cheap to segment."""
    with Image.open(photo) as image:
        return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR))


def uploads(photo: Path, png_photo: Path, max_body_bytes: int) -> list[Upload]:
    """The corpus, built from a real JPEG photo and a real PNG photo, for a server with `max_body_bytes`."""
    jpeg_bytes, png_bytes = photo.read_bytes(), png_photo.read_bytes()
    pixels = sample_pixels(photo)
    height, width = pixels.shape[:2]
    random_bytes = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()

    palette = Image.fromarray(pixels).quantize(16)
    palette.info["transparency"] = 0
    sixteen_bit = Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257)  # mode I;16
    grey_alpha = Image.fromarray(pixels).convert("LA")
    cmyk = Image.fromarray(pixels).convert("CMYK")

    corpus = [
        # Empty, broken and foreign bodies.
        Upload("zero-bytes-raw", b"", 400, "invalid_image"),
        Upload("zero-bytes-multipart", b"", 400, "invalid_image", form_field="image"),
        Upload("truncated-jpeg", jpeg_bytes[: len(jpeg_bytes) // 2], 400, "invalid_image", content_type="image/jpeg",
               form_field="image"),
        Upload("truncated-png", png_bytes[: len(png_bytes) // 2], 400, "invalid_image"),
        Upload("jpeg-header-only", jpeg_bytes[:600], 400, "invalid_image", content_type="image/jpeg"),
        Upload("random-bytes-as-jpeg", random_bytes, 400, "invalid_image", content_type="image/jpeg"),
        Upload("random-bytes-as-png-part", random_bytes, 400, "invalid_image", form_field="image"),
        Upload("text-body", b"hello, this is not an image\n", 415, "unsupported_media_type", content_type="text/plain"),
        Upload("text-part", b"hello", 415, "unsupported_media_type", content_type="text/plain", form_field="image"),
        Upload("pdf-body", PDF_BODY, 415, "unsupported_media_type", content_type="application/pdf"),
        Upload("pdf-part", PDF_BODY, 415, "unsupported_media_type", content_type="application/pdf", form_field="image"),
        Upload("pdf-labelled-png", PDF_BODY, 400, "invalid_image"),
        Upload("no-content-type", png_bytes, 415, "unsupported_media_type", content_type=None),
        # Limits.
        Upload("png-declaring-20000x20000", png_declaring(20000, 20000), 413, "payload_too_large"),
        # over the 40 MP default
        Upload("png-declaring-8000x6000", png_declaring(8000, 6000), 413, "payload_too_large"),
        Upload("body-just-over-limit", b"\0" * (max_body_bytes + 1), 413, "payload_too_large"),
        Upload("chunked-body-just-over-limit", None, 413, "payload_too_large", chunked_size=max_body_bytes + 1),
        Upload("multipart-just-over-limit", b"\0" * (max_body_bytes + 1), 413, "payload_too_large", form_field="image"),
        # Malformed requests.
        Upload("misnamed-field", jpeg_bytes, 400, "missing_image", content_type="image/jpeg", form_field="file"),
        Upload("unknown-model", jpeg_bytes, 404, "model_not_found", content_type="image/jpeg", form_field="image",
               params={"model": "no-such-model"}),
        Upload("bad-format", jpeg_bytes, 422, "invalid_request", content_type="image/jpeg", form_field="image",
               params={"format": "gif"}),
        Upload("bad-crf-flag", jpeg_bytes, 422, "invalid_request", content_type="image/jpeg", form_field="image",
               params={"crf": "perhaps"}),
        # Odd but valid images: segmented at their displayed size.
        Upload("1x1", encode(Image.new("RGB", (1, 1), (200, 40, 40)), "PNG"), 200, size=(1, 1)),
        Upload("16-bit-grey-png", encode(sixteen_bit, "PNG"), 200, size=(width, height)),
        Upload("cmyk-jpeg", encode(cmyk, "JPEG"), 200, size=(width, height), content_type="image/jpeg"),
        Upload("palette-with-transparency", encode(palette, "PNG"), 200, size=(width, height), form_field="image"),
        Upload("grey-with-alpha", encode(grey_alpha, "PNG"), 200, size=(width, height)),
        Upload("webp", encode(Image.fromarray(pixels), "WEBP"), 200, size=(width, height), content_type="image/webp"),
        Upload("gif", encode(Image.fromarray(pixels).quantize(64), "GIF"), 200, size=(width, height),
               content_type="image/gif"),
        Upload("tiff", encode(Image.fromarray(pixels), "TIFF"), 200, size=(width, height), content_type="image/tiff"),
        Upload("png-labelled-jpeg", encode(Image.fromarray(pixels), "PNG"), 200, size=(width, height),
               content_type="image/jpeg"),
    ]
    for orientation in range(1, 9):
        size = (height, width) if orientation >= 5 else (width, height)  # 5-8 swap the axes
        corpus.append(Upload(f"exif-orientation-{orientation}", exif_oriented_jpeg(pixels, orientation), 200,
                             size=size, content_type="image/jpeg", form_field="image"))
    return corpus
