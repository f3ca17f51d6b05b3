"""The HTTP server against a real uvicorn on loopback, with the real tiny Mllama behind it."""

from __future__ import annotations

import base64
import io
import logging
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from ecgvlm.serve import examples
from ecgvlm.serve.app import ServeConfig, create_app
from ecgvlm.serve.interpreter import ECGInterpreter, InterpretConfig
from ecgvlm.serve.local import running_server

SUPERS = {"NORM", "MI", "STTC", "CD", "HYP"}


@pytest.fixture(scope="module")
def interpreter(tmp_path_factory):
    from ecgvlm.model.tiny import build_tiny

    out = tmp_path_factory.getbasetemp() / "serve-tiny"  # shared by the serve/interpret test files
    if not (out / "ecgvlm_tiny.json").is_file():  # written last by build_tiny
        build_tiny(out, seed=0)
    config = InterpretConfig(codes=("SR", "IMI"), measurements=("hr",), max_new_tokens=12)
    return ECGInterpreter.from_pretrained(out, device="cpu", config=config)


@pytest.fixture(scope="module")
def server(interpreter):
    config = ServeConfig(max_batch=8, batch_wait_ms=10, queue_size=64, max_upload_bytes=1024 * 1024)
    with running_server(create_app(interpreter, config)) as url:
        yield url


@pytest.fixture(scope="module")
def image() -> bytes:
    return examples.read()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit white PNG of width x height pixels: tens of KB on disk, 400 MP decoded."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def post_image(url: str, data: bytes, name: str = "ecg.png", **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/interpret", files={"image": (name, data, "image/png")}, timeout=120, **kw)


def check_interpretation(body: dict) -> None:
    assert isinstance(body["report"], str)
    assert set(body["superclasses"]) == SUPERS
    assert all(0.0 <= p <= 1.0 for p in body["superclasses"].values())
    assert [s["code"] for s in body["statements"]] and {"SR", "IMI"} == {
        s["code"] for s in body["statements"]
    }
    probs = [s["probability"] for s in body["statements"]]
    assert probs == sorted(probs, reverse=True)
    assert body["model"]


def test_valid_image_gets_an_interpretation(server, image):
    r = post_image(server, image)
    assert r.status_code == 200, r.text
    check_interpretation(r.json())
    # The same upload as a raw body gives the same answer (greedy decoding, deterministic model).
    raw = httpx.post(
        f"{server}/v1/interpret", content=image, headers={"content-type": "image/png"}, timeout=120
    )
    assert raw.status_code == 200
    assert raw.json()["superclasses"] == r.json()["superclasses"]


def _truncated(image: bytes) -> bytes:
    return image[: len(image) // 2]


def _streamed(n: int):
    def gen():
        for _ in range(n // 65536):
            yield b"\0" * 65536

    return gen


BAD_UPLOADS = {
    "empty": (lambda img: b"", 400, "empty"),
    "text named .png": (lambda img: b"hello, this is not an image\n" * 20, 415, "not a PNG, JPEG or WebP"),
    "truncated png": (_truncated, 400, "truncated or corrupt"),
    "20000x20000": (lambda img: bomb_png(), 413, "20000x20000"),
    "oversized": (lambda img: b"\x89PNG" + b"\0" * (3 * 1024 * 1024), 413, "larger than the 1.0 MB limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_clear_4xx_and_server_keeps_serving(server, image, case):
    make, status, text = BAD_UPLOADS[case]
    r = post_image(server, make(image))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert text in err["message"] and err["type"]
    assert httpx.get(f"{server}/health", timeout=10).json()["status"] == "ok"
    assert post_image(server, image).status_code == 200


def test_oversized_stream_without_length_is_cut_off(server, image):
    """No Content-Length to trust: the server counts while reading and refuses past the limit."""
    r = httpx.post(
        f"{server}/v1/interpret",
        content=_streamed(4 * 1024 * 1024)(),
        headers={"content-type": "image/png"},
        timeout=60,
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert post_image(server, image).status_code == 200


def test_bad_requests_are_json_errors(server):
    r = httpx.post(f"{server}/v1/interpret", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]
    r = httpx.post(f"{server}/v1/interpret", data={"note": "no file"})
    assert r.status_code in (400, 415)
    assert httpx.get(f"{server}/no/such/page").json()["error"]["type"] == "http_error"


@pytest.mark.slow
def test_32_concurrent_clients_all_get_answers_in_batches(server, image):
    before = httpx.get(f"{server}/health").json()["batches"]
    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda _: post_image(server, image), range(32)))
    assert [r.status_code for r in responses] == [200] * 32
    bodies = [r.json() for r in responses]
    for b in bodies:
        check_interpretation(b)
    # Batched or not, an image gets the same probabilities (padding must not leak into answers).
    for b in bodies[1:]:
        assert b["superclasses"] == pytest.approx(bodies[0]["superclasses"], abs=2e-3)
    after = httpx.get(f"{server}/health").json()["batches"]
    assert after["items"] - before["items"] == 32
    assert after["count"] - before["count"] < 32  # some requests shared a forward pass
    assert max(b["timings"]["batch_size"] for b in bodies) > 1


def test_full_queue_answers_503_not_crash(interpreter, image):
    config = ServeConfig(max_batch=1, batch_wait_ms=0, queue_size=1)
    with running_server(create_app(interpreter, config)) as url:
        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: post_image(url, image), range(12)))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503}, codes
        assert 503 in codes and 200 in codes
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["error"]["message"]
        assert post_image(url, image).status_code == 200


def test_token_required_when_set(interpreter, image):
    with running_server(create_app(interpreter, ServeConfig(token="s3cret"))) as url:
        r = post_image(url, image)
        assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert post_image(url, image, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert post_image(url, image, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["auth_required"] is True


def test_request_time_limit_gives_504(interpreter, image):
    with running_server(create_app(interpreter, ServeConfig(timeout_s=0.001))) as url:
        r = post_image(url, image)
        assert r.status_code == 504 and "limit" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/health").status_code == 200


def chat_body(image: bytes, question: str = "What is the heart rate on this ECG?") -> dict:
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    return {
        "model": "ecgvlm",
        "max_tokens": 12,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "text", "text": question},
                ],
            }
        ],
    }


def test_chat_completions_with_base64_image(server, interpreter, image, caplog):
    caplog.set_level(logging.INFO, logger="ecgvlm.serve")
    r = httpx.post(f"{server}/v1/chat/completions", json=chat_body(image), timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    answer = body["choices"][0]["message"]["content"]
    assert body["choices"][0]["message"]["role"] == "assistant" and isinstance(answer, str)
    # The endpoint answers exactly what the model generates for that question.
    img = Image.open(io.BytesIO(image)).convert("RGB")
    assert answer == interpreter.chat([img], ["What is the heart rate on this ECG?"], 12)[0]
    assert body["usage"]["completion_tokens"] >= 0
    # Sizes are logged, image contents never.
    assert f"{len(image)} bytes" in caplog.text
    assert base64.b64encode(image)[:40].decode() not in caplog.text

    remote = chat_body(image)
    remote["messages"][0]["content"][0]["image_url"]["url"] = "https://example.com/ecg.png"
    r = httpx.post(f"{server}/v1/chat/completions", json=remote)
    assert r.status_code == 400 and "data URL" in r.json()["error"]["message"]
    bad = chat_body(image)
    bad["messages"][0]["content"][0]["image_url"]["url"] = "data:image/png;base64,@@@"
    assert httpx.post(f"{server}/v1/chat/completions", json=bad).status_code == 400
    r = httpx.post(f"{server}/v1/chat/completions", json=chat_body(b"not an image"))
    assert r.status_code == 415
    r = httpx.post(
        f"{server}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_web_page_and_examples_are_served(server):
    page = httpx.get(server)
    assert page.status_code == 200 and "ECG Interpretation" in page.text
    assert httpx.get(f"{server}/static/app.js").status_code == 200
    assert httpx.get(f"{server}/static/../app.py").status_code == 404
    listed = httpx.get(f"{server}/v1/examples").json()["examples"]
    assert listed
    png = httpx.get(server + listed[0]["url"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert httpx.get(f"{server}/examples/..%2Fapp.py").status_code == 404
