"""Upload validation and the micro-batcher on their own (no model, no server)."""

from __future__ import annotations

import asyncio
import io
import time

import numpy as np
import pytest
from PIL import Image

from ecgvlm.serve.batcher import MicroBatcher, QueueFull
from ecgvlm.serve.limits import Limits, MultipartImageReader, UploadRejected, decode_image


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_transparent_png_lands_on_white_paper():
    a = np.zeros((20, 30, 4), np.uint8)
    a[5, :, 3] = 255  # one opaque black line on a transparent sheet
    rgb = np.asarray(decode_image(encode(Image.fromarray(a, "RGBA")), Limits()))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[5, 0].tolist() == [0, 0, 0]


def test_jpeg_webp_and_16bit_png_decode_to_rgb():
    for img, fmt in [(Image.new("CMYK", (8, 8)), "JPEG"), (Image.new("RGB", (8, 8)), "WEBP")]:
        assert decode_image(encode(img, fmt), Limits()).mode == "RGB"
    grey16 = Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16))
    out = np.asarray(decode_image(encode(grey16), Limits()))
    assert out.shape == (8, 8, 3) and out.max() > 200  # scaled down, not clipped to white


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_other_formats_are_refused_with_415(fmt):
    with pytest.raises(UploadRejected) as e:
        decode_image(encode(Image.new("RGB", (8, 8)), fmt), Limits(), name="scan.png")
    assert e.value.status == 415 and "scan.png: not a PNG, JPEG or WebP" in e.value.message


def test_pixel_limit_is_checked_before_decoding():
    big = encode(Image.new("1", (8000, 6000)))  # 48 MP, tiny on disk
    t0 = time.perf_counter()
    with pytest.raises(UploadRejected) as e:
        decode_image(big, Limits(max_pixels=40_000_000))
    assert time.perf_counter() - t0 < 0.5
    assert e.value.status == 413 and "8000x6000" in e.value.message
    assert decode_image(big, Limits(max_pixels=50_000_000)).size == (8000, 6000)


def test_multipart_reader_keeps_the_file_and_stops_past_the_limit():
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + b"A" * 1000 + b"\r\n--XyZ--\r\n"
    )
    reader = MultipartImageReader(b"XyZ", Limits(max_bytes=5000))
    for i in range(0, len(body), 7):  # arbitrary chunk boundaries
        reader.feed(body[i : i + 7])
    assert reader.found and reader.filename == "a.png" and bytes(reader.data) == b"A" * 1000
    small = MultipartImageReader(b"XyZ", Limits(max_bytes=500))
    with pytest.raises(UploadRejected) as e:
        for i in range(0, len(body), 64):
            small.feed(body[i : i + 64])
    assert e.value.status == 413 and len(small.data) < 600


def test_batcher_batches_under_load_and_refuses_when_full():
    seen: list[int] = []

    def run(key, items):
        time.sleep(0.05)
        seen.append(len(items))
        return [x * 2 for x in items]

    async def go():
        b = MicroBatcher(run, max_batch=4, wait_ms=5, queue_size=8)
        await b.start()
        try:
            results = await asyncio.gather(*(b.submit("k", i) for i in range(8)))
            assert results == [i * 2 for i in range(8)]
            assert max(seen) > 1 and sum(seen) == 8
            tasks = [asyncio.ensure_future(b.submit("k", i)) for i in range(20)]
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert any(isinstance(r, QueueFull) for r in done)
            assert all(r == i * 2 for i, r in enumerate(done) if not isinstance(r, Exception))
        finally:
            await b.stop()

    asyncio.run(go())
