"""`ecgvlm evaluate --endpoint` against real loopback servers: `ecgvlm serve` on a briefly fine-tuned
tiny Mllama (same predictions as local evaluate, scores from logprobs equal to local --scores codes,
a killed run resumes to the same file), and stub OpenAI servers that misbehave (no logprobs,
429 then 200, malformed JSON): the run finishes and `ecgvlm score` names the rows without scores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ecgvlm.cli import main as cli
from ecgvlm.evaluate.endpoint import code_scores
from ecgvlm.outputs import MARKER
from ecgvlm.signals.vocab import SUPERCLASSES
from test_cnn_toydata import make_toy_dataset

TOKENS = "6"


def fine_tune(model_dir: Path, data: Path, out: Path, steps: int = 24) -> Path:
    """A few full fine-tuning steps on the superclass answers, so the codes lead the first token."""
    import torch

    from ecgvlm.io import load_image
    from ecgvlm.model.chat import Collator, encode_messages
    from ecgvlm.model.load import load_model_and_processor

    shutil.copytree(model_dir, out)
    model, processor = load_model_and_processor(model_dir, device="cpu")
    rows = [r for r in json.loads(data.read_text()) if r["metadata"]["subtask"] == "superclass"]
    items = []
    for r in rows:
        turns = [{"role": "user", "content": r["conversations"][0]["value"]}]
        turns.append({"role": "assistant", "content": r["conversations"][1]["value"]})
        ids, labels = encode_messages(processor.tokenizer, turns)
        items.append({"input_ids": ids, "labels": labels, "image": load_image(data.parent, r["image"])})
    collate = Collator(processor, pad_to_multiple_of=0)
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for step in range(steps):
        model(**collate([items[(step * 4 + k) % len(items)] for k in range(4)])).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`ecgvlm serve` (the real CLI, a subprocess) on the fine-tuned tiny model."""
    from ecgvlm.model.tiny import build_tiny

    root = tmp_path_factory.mktemp("endpoint")
    tiny = build_tiny(root / "tiny", seed=0)
    ds = make_toy_dataset(root / "ds", {"train": 24, "test": 6}, size=64)
    model = fine_tune(tiny, ds / "train.json", root / "ft")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ecgvlm", "serve", "--model", str(model), "--port", str(port)]
    cmd += ["--max-batch", "1", "--device", "cpu", "--log-level", "warning"]  # one at a time: no padding
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"ecgvlm serve did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.3)
    name = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
    yield {"url": f"{url}/v1", "name": name, "model": model, "data": ds / "test.json", "root": root}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def endpoint_args(served: dict, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--endpoint", served["url"], "--served-model", served["name"], "--data",
            str(served["data"]), "--out", str(out), "--max-new-tokens", TOKENS, "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def endpoint_run(served) -> bytes:
    out = served["root"] / "via-endpoint"
    assert cli(endpoint_args(served, out, "--concurrency", "2")) == 0
    return (out / "predictions.jsonl").read_bytes()


@pytest.mark.slow
def test_endpoint_predictions_equal_local_ones(served, endpoint_run):
    local = served["root"] / "local"
    args = ["evaluate", "--model", str(served["model"]), "--data", str(served["data"]), "--out", str(local),
            "--batch-size", "1", "--max-new-tokens", TOKENS, "--scores", "codes", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli(args) == 0
    mine = [json.loads(x) for x in endpoint_run.splitlines()]
    ref = [json.loads(x) for x in (local / "predictions.jsonl").read_text().splitlines()]
    assert len(mine) == len(ref) == 18
    n_scored = 0
    for a, b in zip(mine, ref):
        assert {k: v for k, v in a.items() if k != "scores"} == {k: v for k, v in b.items() if k != "scores"}
        if b["task"] == "superclass":
            assert "scores_missing" not in a, a.get("scores_missing")
            assert list(a["scores"]) == list(SUPERCLASSES)
            assert max(abs(a["scores"][c] - b["scores"][c]) for c in SUPERCLASSES) < 1e-3
            n_scored += 1
        else:
            assert a["scores"] is None
    assert n_scored == 6
    summary = json.loads((served["root"] / "via-endpoint" / "endpoint_summary.json").read_text())
    assert summary["requests"] == 18 and summary["failures"] == 0 and summary["completion_tokens"] > 0
    # a rerun is answered from the reply cache: no request, same file
    again = served["root"] / "again"
    shutil.copytree(served["root"] / "via-endpoint" / "http-cache", again / "http-cache")
    # with its output marker: a folder holding evaluate's cache is evaluate's own folder
    shutil.copy(served["root"] / "via-endpoint" / MARKER, again / MARKER)
    assert cli(endpoint_args(served, again)) == 0
    assert (again / "predictions.jsonl").read_bytes() == endpoint_run
    assert json.loads((again / "endpoint_summary.json").read_text())["requests"] == 0


@pytest.mark.slow
def test_killed_endpoint_evaluation_resumes_to_the_same_file(served, endpoint_run, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ecgvlm", *endpoint_args(served, out, "--concurrency", "1")]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    path = out / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut = path.read_bytes().count(b"\n")
    assert 4 <= cut < 18, cut  # killed part-way
    assert cli(endpoint_args(served, out, "--concurrency", "1")) == 0
    assert path.read_bytes() == endpoint_run


# ---------------------------------------------------------------- misbehaving stubs
class Stub:
    """An OpenAI-style chat endpoint on loopback whose replies a test scripts by mode."""

    def __init__(self, mode: str):
        self.mode, self.requests, self.seen, self.auth = mode, [], {}, []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests.append(body)
                    owner.auth.append(self.headers.get("Authorization"))
                    key = json.dumps(body["messages"], sort_keys=True)
                    owner.seen[key] = owner.seen.get(key, 0) + 1
                    nth = owner.seen[key]
                status, headers, data = owner.reply(body, key, nth)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply(self, body: dict, key: str, nth: int) -> tuple[int, dict, bytes]:
        h = zlib.crc32(key.encode())
        if self.mode == "429" and nth == 1:
            return (
                429,
                {"Retry-After": "0", "Content-Type": "application/json"},
                b'{"error": {"message": "slow down"}}',
            )
        if self.mode == "malformed" and h % 3 == 0:
            return 200, {"Content-Type": "application/json"}, b'{"choices": [{"message": {"content": "NO'
        if self.mode == "malformed" and h % 3 == 1:  # JSON, but no answer in it
            return 200, {"Content-Type": "application/json"}, b'{"object": "chat.completion", "choices": []}'
        choice = {"index": 0, "message": {"role": "assistant", "content": "NORM"}, "finish_reason": "stop"}
        if body.get("logprobs") and self.mode != "nologprobs":
            alts = [
                {"token": c, "logprob": -1.0 - ((h >> (3 * i)) % 8) / 2}
                for i, c in enumerate(["NORM", "MI", "ST", "C", "HYP"])
            ]
            alts.sort(key=lambda a: -a["logprob"])
            choice["logprobs"] = {"content": [{**alts[0], "top_logprobs": alts}]}
        reply = {"id": "x", "object": "chat.completion", "choices": [choice],
                 "usage": {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102}}  # fmt: skip
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("stubds"), {"test": 6}, size=64) / "test.json"


def stub_run(stub: Stub, toy: Path, out: Path, capsys) -> tuple[list[dict], dict]:
    args = ["evaluate", "--endpoint", stub.url, "--served-model", "stub", "--data", str(toy), "--out",
            str(out), "--tasks", "superclass", "--retries", "2", "--no-progress", "--price-in", "1", "--price-out", "2"]  # fmt: skip
    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert "endpoint: requests=" in printed
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert cli(["score", "--predictions", str(out / "predictions.jsonl"), "--benchmark", "ptbxl-super",
                "--mode", "strict", "--bootstrap", "50"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())["benchmarks"]["ptbxl-super"]["strict"]
    return rows, metrics


@pytest.fixture
def stub(request):
    s = Stub(request.param)
    yield s
    s.close()


@pytest.mark.parametrize("stub", ["nologprobs"], indirect=True)
def test_stub_without_logprobs_rows_say_so_and_strict_notes_them(stub, toy, tmp_path, capsys):
    rows, m = stub_run(stub, toy, tmp_path, capsys)
    assert len(rows) == 6 and all(r["scores"] is None for r in rows)
    assert all(r["scores_missing"] == "the endpoint returned no logprobs" for r in rows)
    assert all(r["prediction"] == "NORM" for r in rows)
    assert stub.requests[0]["logprobs"] is True and stub.requests[0]["top_logprobs"] == 20
    url = stub.requests[0]["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert m["auc"] is None and m["predictions_from"] == "labels read from the answer text"
    assert sorted(m["rows_without_scores"]) == sorted(r["id"] for r in rows)
    note = " ".join(m["notes"])
    assert "6 of 6 rows have no scores" in note and "no logprobs" in note and rows[0]["id"] in note


@pytest.mark.parametrize("stub", ["429"], indirect=True)
def test_stub_429_then_200_is_retried_and_scored(stub, toy, tmp_path, capsys):
    rows, m = stub_run(stub, toy, tmp_path, capsys)
    assert len(stub.requests) == 12  # each row: a 429, then the answer
    assert all(isinstance(r["scores"], dict) and "scores_missing" not in r for r in rows)
    assert m["auc"] is not None and m["rows_without_scores"] == []
    summary = json.loads((tmp_path / "endpoint_summary.json").read_text())
    assert summary["retries"] == 6 and summary["failures"] == 0
    assert summary["prompt_tokens"] == 600 and summary["cost_usd"] == pytest.approx((600 * 1 + 12 * 2) / 1e6)


@pytest.mark.parametrize("stub", ["malformed"], indirect=True)
def test_stub_malformed_json_rows_fail_alone_and_are_asked_again(stub, toy, tmp_path, capsys):
    rows, m = stub_run(stub, toy, tmp_path, capsys)
    bad = [r for r in rows if "error" in r]
    good = [r for r in rows if "error" not in r]
    assert bad and good and len(rows) == 6
    assert all(r["prediction"] == "" for r in bad)
    # both kinds happened: text that is not JSON, and JSON without an answer
    assert any("malformed JSON" in r["error"] for r in bad) and any(
        "unusable reply" in r["error"] for r in bad
    )
    assert all("request failed" in r["scores_missing"] for r in bad)
    note = " ".join(m["notes"])
    assert (
        f"{len(bad)} of 6 rows have no scores" in note
        and "malformed JSON" in note
        and "unusable reply" in note
    )
    assert sorted(m["rows_without_scores"]) == sorted(r["id"] for r in bad)
    # a rerun asks only the failed rows again (the others come from the reply cache)
    before = len(stub.requests)
    rows2, _ = stub_run(stub, toy, tmp_path, capsys)
    assert len(stub.requests) - before == 2 * len(bad)
    assert [r["id"] for r in rows2] == [r["id"] for r in rows]


def test_code_scores_from_top_logprobs():
    alts = [{"token": "NORM", "logprob": -0.5}, {"token": " MI", "logprob": -1.0}, {"token": "ST", "logprob": -2.0},
            {"token": "S", "logprob": -0.1}, {"token": "C", "logprob": -3.0}, {"token": "HYP", "logprob": -4.0}]  # fmt: skip
    choice = {"logprobs": {"content": [{"token": "NORM", "logprob": -0.5, "top_logprobs": alts}]}}
    scores, why, bounded = code_scores(choice, SUPERCLASSES)
    assert why is None and bounded == [] and sum(scores.values()) == pytest.approx(1, abs=1e-5)
    # "ST" (the longest piece) stands for STTC, not "S"; " MI" counts for MI
    assert scores["STTC"] / scores["NORM"] == pytest.approx(2.718281828 ** (-1.5), rel=1e-4)
    assert scores["MI"] / scores["NORM"] == pytest.approx(2.718281828 ** (-0.5), rel=1e-4)
    # codes outside the returned alternatives take the least likely one's probability (an upper bound)
    scores, why, bounded = code_scores(
        {"logprobs": {"content": [{"token": "NORM", "logprob": 0, "top_logprobs": alts[:2]}]}}, SUPERCLASSES
    )
    assert why is None and bounded == ["STTC", "CD", "HYP"]
    assert scores["STTC"] == scores["CD"] == scores["HYP"] == pytest.approx(scores["MI"], rel=1e-4)
    assert scores["NORM"] > scores["MI"]
    words = [{"token": "The", "logprob": -0.1}, {"token": "This", "logprob": -2.0}]
    choice = {"logprobs": {"content": [{"token": "The", "logprob": -0.1, "top_logprobs": words}]}}
    assert code_scores(choice, SUPERCLASSES)[0] is None
    assert "none of the codes" in code_scores(choice, SUPERCLASSES)[1]
    assert code_scores({"message": {}}, SUPERCLASSES) == (None, "the endpoint returned no logprobs", [])


@pytest.mark.parametrize("stub", ["429"], indirect=True)
def test_api_key_from_the_named_variable_and_misuse_is_one_line(stub, toy, tmp_path, monkeypatch, capsys):
    base = ["evaluate", "--endpoint", stub.url, "--data", str(toy), "--tasks", "superclass", "--no-progress"]
    cases = [
        (["--served-model", "m", "--model", "x", "--out", str(tmp_path / "a")], "either --model"),
        (["--out", str(tmp_path / "b")], "--served-model"),
        (["--served-model", "m", "--scores", "yesno", "--out", str(tmp_path / "c")], "yesno"),
        (
            ["--served-model", "m", "--api-key-env", "NO_SUCH_KEY_VAR", "--out", str(tmp_path / "d")],
            "NO_SUCH_KEY_VAR",
        ),
    ]
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    for extra, text in cases:
        assert cli([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and text in err
    assert stub.requests == []
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert (
        cli(
            [
                *base,
                "--served-model",
                "m",
                "--api-key-env",
                "MY_KEY",
                "--limit",
                "1",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert stub.auth == ["Bearer sk-test", "Bearer sk-test"]  # the 429 and the retry
    assert (
        cli([*base, "--served-model", "m", "--limit", "1", "--out", str(tmp_path / "f"), "--no-cache"]) == 0
    )
    assert stub.auth[-1] is None  # no key unless one is named
