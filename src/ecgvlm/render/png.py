"""A lossless PNG writer for printouts: the "up" filter in numpy, deflate by ISA-L when installed.

Chosen by measurement (``benchmarks/page_encoders.py``, figures in docs/scale.md): a printout's grid
rows repeat, so "up" predicts it well, and ISA-L's deflate at level 2 is several times faster than
zlib's at the same file size, most of all on the noisy pages of the heavy preset. Without the
``isal`` package OpenCV's libpng writes the same pixels (other bytes).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ecgvlm.errors import ECGVLMError

try:
    from isal import isal_zlib
except ImportError:  # no wheel for this platform: fall back to libpng
    isal_zlib = None

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_UP = 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc32 = isal_zlib.crc32 if isal_zlib is not None else zlib.crc32  # the same CRC, computed faster
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc32(data, crc32(kind)))


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) RGB array; deterministic for a given array and isal version."""
    if isal_zlib is None:
        import cv2

        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
            params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise ECGVLMError("OpenCV could not encode the page as PNG")
        return buf.tobytes()
    h, w, _ = rgb.shape
    rows = np.ascontiguousarray(rgb).reshape(h, w * 3)
    raw = np.empty((h, w * 3 + 1), np.uint8)
    raw[:, 0] = _FILTER_UP
    raw[0, 1:] = rows[0]  # "up" from the row above the image, which is zeros
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, deflate, adaptive, no interlace
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", isal_zlib.compress(raw.data, 2)),
            _chunk(b"IEND", b""),
        )
    )
