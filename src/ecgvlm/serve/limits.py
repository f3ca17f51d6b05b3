"""Upload validation: byte limits while reading, pixel limits before decoding, clear rejections.

Everything here is independent of the HTTP framework so the CLI and the server share it. A
rejected upload raises ``UploadRejected`` carrying the HTTP status, an error type and a message a
person can act on. Image contents are never logged or echoed back; only sizes are.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP")


class UploadRejected(Exception):
    """An upload the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def too_large(size: int | None, limits: Limits) -> UploadRejected:
    got = f" ({_mb(size)})" if size is not None else ""
    return UploadRejected(
        413, "upload_too_large", f"the upload is larger than the {_mb(limits.max_bytes)} limit{got}"
    )


def decode_image(data: bytes, limits: Limits, name: str = "upload") -> Image.Image:
    """Decode PNG/JPEG/WebP bytes into an RGB image, refusing empty, non-image, huge or broken data.

    The pixel count is checked from the header (``Image.open`` is lazy) before any pixel is
    decoded, so a decompression bomb costs a few kilobytes of reading, not gigabytes of memory.
    """
    if len(data) == 0:
        raise UploadRejected(400, "empty_upload", f"{name}: the upload is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise too_large(len(data), limits)
    try:
        img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except Image.DecompressionBombError as e:
        # PIL refused at open (far past its own limit), before telling us the size: read it ourselves.
        raise _too_many_pixels(name, _png_size(data), limits, _pixels_in(e)) from None
    except UnidentifiedImageError:
        raise UploadRejected(
            415,
            "unsupported_media_type",
            f"{name}: not a PNG, JPEG or WebP image ({len(data)} bytes of another or no format)",
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UploadRejected(400, "invalid_image", f"{name}: corrupt image header ({_short(e)})") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise UploadRejected(400, "invalid_image", f"{name}: the image has no pixels ({w}x{h})")
    if w * h > limits.max_pixels:
        raise _too_many_pixels(name, (w, h), limits)
    try:
        img.load()
        rgb = to_rgb(img)
    except Image.DecompressionBombError:
        raise _too_many_pixels(name, (w, h), limits) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UploadRejected(
            400, "invalid_image", f"{name}: the {img.format} data is truncated or corrupt ({_short(e)})"
        ) from None
    return rgb


# The smallest page side read as an ECG: the tiny model's input is 224 px, and a 12-lead page under
# 64 px has under 5 px per lead row, so a 1x1 or icon-sized upload is refused, not interpreted.
MIN_SIDE_PX = 64


def refuse_non_ecg(img: Image.Image, name: str = "upload") -> Image.Image:
    """``img`` unless it cheaply cannot be an ECG page: a side under ``MIN_SIDE_PX`` or a single
    colour (no trace at all). Raises ``UploadRejected`` (422) with what was found."""
    w, h = img.size
    if min(w, h) < MIN_SIDE_PX:
        raise UploadRejected(
            422,
            "image_too_small",
            f"{name}: the image is {w}x{h} px; an ECG page needs at least {MIN_SIDE_PX} px on each side",
        )
    if all(lo == hi for lo, hi in img.getextrema()):
        raise UploadRejected(
            422, "blank_image", f"{name}: the image is a single colour, with no trace to read"
        )
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB on white paper: a transparent background must not turn black (traces would vanish)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit greyscale scans
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return img.convert("RGB")


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def _pixels_in(e: Exception) -> int | None:
    m = re.search(r"\((\d+) pixels\)", str(e))
    return int(m.group(1)) if m else None


def _too_many_pixels(
    name: str, size: tuple[int, int] | None, limits: Limits, pixels: int | None = None
) -> UploadRejected:
    if size:
        dims = f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.1f} megapixels"
    else:
        dims = f"{pixels / 1e6:.1f} megapixels" if pixels else "too many pixels"
    return UploadRejected(
        413,
        "image_too_large",
        f"{name}: the image is {dims}; the limit is {limits.max_pixels / 1e6:.1f} megapixels",
    )


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:160]


async def read_limited(chunks: AsyncIterator[bytes], max_bytes: int, limits: Limits) -> bytes:
    """Join a request body's chunks, giving up (413) as soon as it passes ``max_bytes``."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise too_large(None, limits)
    return bytes(buf)


class MultipartImageReader:
    """Streaming multipart/form-data parser that keeps only the first file part, within a byte cap.

    Fed chunk by chunk as the body arrives, so an oversized upload is refused after reading just
    past the limit instead of after spooling the whole body.
    """

    def __init__(self, boundary: bytes, limits: Limits) -> None:
        from python_multipart.multipart import MultipartParser

        self.limits = limits
        self.filename: str | None = None
        self.data = bytearray()
        self.found = False
        self._done = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}
        self._in_file = False
        self._overflow = False
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("latin-1")
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, opts = parse_options_header(self._headers.get("content-disposition", ""))
        fname = opts.get(b"filename")
        self._in_file = fname is not None and not self._done
        if self._in_file:
            self.found = True
            self.filename = fname.decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.data.extend(data[start:end])
            if len(self.data) > self.limits.max_bytes:
                self._overflow = True

    def _part_end(self) -> None:
        if self._in_file:
            self._done = True
        self._in_file = False

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except Exception as e:  # python-multipart raises its own error types for malformed bodies
            raise UploadRejected(400, "invalid_request", f"malformed multipart body ({_short(e)})") from None
        if self._overflow:
            raise too_large(None, self.limits)


def multipart_boundary(content_type: str) -> bytes | None:
    from python_multipart.multipart import parse_options_header

    kind, opts = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return opts.get(b"boundary")
