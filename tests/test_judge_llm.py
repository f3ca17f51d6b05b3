"""The LLM judge against a real OpenAI-compatible HTTP server on loopback (started here)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ecgvlm.cli import main as cli
from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.judges.llm import LLMJudge, parse_reply

GOOD = {"diagnosis": 8, "waveform": None, "rhythm": 10, "rationale": "rhythm right, infarct site wrong"}


class FakeOpenAI:
    """Chat-completions server that plays back a script of replies and counts requests."""

    def __init__(self):
        self.script: list[tuple[int, dict, str]] = []  # (status, headers, content-or-body)
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                    )
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    status, headers, content = (
                        owner.script.pop(0) if owner.script else (200, {}, json.dumps(GOOD))
                    )
                time.sleep(owner.delay)
                if status == 200:
                    payload = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
                    }
                else:
                    payload = {"error": {"message": content}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with owner.lock:
                    owner.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = FakeOpenAI()
    yield s
    s.close()


def judge(server, tmp_path, **kw) -> LLMJudge:
    return LLMJudge(
        server.base_url, "judge-model", api_key="sk-test", cache_dir=tmp_path / "cache", backoff_s=0.01, **kw
    )


def test_normal_reply(server, tmp_path):
    j = judge(server, tmp_path)
    s = j.score("Sinus rhythm. Anterior MI.", "Sinus rhythm. Inferior MI.")
    assert (s.diagnosis, s.waveform, s.rhythm, s.total) == (8.0, None, 10.0, 90.0)
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "judge-model" and req["body"]["temperature"] == 0
    assert "Inferior MI" in req["body"]["messages"][1]["content"]
    summary = j.summary()
    assert summary["requests"] == 1 and summary["prompt_tokens"] == 120 and summary["completion_tokens"] == 30


def test_malformed_json_is_rejected_and_asked_again(server, tmp_path):
    server.script = [
        (200, {}, "Diagnosis: 8/10, rhythm fine"),
        (200, {}, json.dumps({"diagnosis": 11, "waveform": 1, "rhythm": 1})),
        (200, {}, "```json\n" + json.dumps(GOOD) + "\n```"),
    ]
    j = judge(server, tmp_path)
    s = j.score("a", "b")
    assert s.total == 90.0
    assert len(server.requests) == 3 and j.summary()["malformed"] == 2


def test_429_with_retry_after_then_success(server, tmp_path):
    server.script = [(429, {"Retry-After": "0"}, "rate limited"), (503, {}, "busy")]
    j = judge(server, tmp_path)
    t0 = time.perf_counter()
    assert j.score("a", "b").rhythm == 10.0
    assert len(server.requests) == 3 and j.summary()["retries"] == 2
    assert time.perf_counter() - t0 < 5


def test_cache_hit_makes_no_request(server, tmp_path):
    judge(server, tmp_path).score("cand", "ref")
    assert len(server.requests) == 1
    fresh = judge(server, tmp_path)  # a new process would see the same folder
    s = fresh.score("cand", "ref")
    assert s.total == 90.0 and len(server.requests) == 1
    assert fresh.summary()["cache_hits"] == 1 and fresh.summary()["requests"] == 0
    fresh.score("cand", "other ref")
    assert len(server.requests) == 2


def test_client_error_fails_at_once(server, tmp_path):
    server.script = [(401, {}, "bad key")]
    with pytest.raises(ECGVLMError, match="HTTP 401"):
        judge(server, tmp_path).score("a", "b")
    assert len(server.requests) == 1


def test_concurrency_limit_and_order(server, tmp_path):
    server.delay = 0.05
    j = judge(server, tmp_path, concurrency=2)
    out = j.score_many([(f"c{i}", "r") for i in range(8)])
    assert len(out) == 8 and server.max_in_flight <= 2 and len(server.requests) == 8


def test_parse_reply_is_strict():
    with pytest.raises(ValueError):
        parse_reply('{"diagnosis": 5, "waveform": 5}')
    with pytest.raises(ValueError):
        parse_reply('{"diagnosis": true, "waveform": 5, "rhythm": 5}')
    with pytest.raises(ValueError):
        parse_reply('here: {"diagnosis": 5, "waveform": 5, "rhythm": 5}')
    assert parse_reply('{"diagnosis": 5, "waveform": null, "rhythm": 7.5}')["rhythm"] == 7.5


def test_cli_report_with_llm_judge(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    p = tmp_path / "predictions.jsonl"
    rows = [
        {"id": str(i), "task": "report", "prediction": "Sinus rhythm.", "reference": f"Sinus rhythm {i}."}
        for i in range(3)
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "score",
        "--predictions",
        str(p),
        "--benchmark",
        "report",
        "--judge",
        "llm",
        "--judge-base-url",
        server.base_url,
        "--judge-model",
        "m",
        "--judge-cache",
        str(tmp_path / "c"),
    ]
    assert cli(args) == 0
    doc = json.loads((tmp_path / "metrics.json").read_text())
    m = doc["benchmarks"]["report"]["llm"]
    assert m["score"] == 90.0 and m["cost"]["requests"] == 3 and server.requests[0]["auth"] == "Bearer sk-env"
    assert cli(args) == 0 and len(server.requests) == 3  # second run: all cached
    assert "cache_hits=3" in capsys.readouterr().out
