"""The official ``openai`` client against ``ecgvlm serve`` (real uvicorn on loopback, real tiny Mllama)."""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest

from ecgvlm.model.decode import chat_prompt_ids
from ecgvlm.serve import examples
from ecgvlm.serve.app import ServeConfig, create_app
from ecgvlm.serve.interpreter import ECGInterpreter, InterpretConfig
from ecgvlm.serve.local import running_server

QUESTION = "Which diagnostic superclasses does this ECG show?"


@pytest.fixture(scope="module")
def interpreter(tmp_path_factory):
    from ecgvlm.model.tiny import build_tiny

    out = tmp_path_factory.getbasetemp() / "serve-tiny"  # shared with the other serve test files
    if not (out / "ecgvlm_tiny.json").is_file():
        build_tiny(out, seed=0)
    return ECGInterpreter.from_pretrained(
        out, device="cpu", config=InterpretConfig(codes=(), measurements=())
    )


@pytest.fixture(scope="module")
def server(interpreter):
    with running_server(create_app(interpreter, ServeConfig(max_batch=4))) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def user(question: str = QUESTION, image: bytes | None = None) -> dict:
    url = "data:image/png;base64," + base64.b64encode(image or examples.read()).decode()
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}],
    }


def test_streamed_chunks_join_to_the_plain_answer(client):
    plain = client.chat.completions.create(model="ecgvlm", messages=[user()], max_tokens=10, temperature=0)
    stream = client.chat.completions.create(
        model="ecgvlm",
        messages=[user()],
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = plain.choices[0].message.content
    assert answer and text == answer
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len([c for c in chunks if c.choices]) >= 3  # token by token, not one block

    kw = dict(model="ecgvlm", messages=[user()], max_tokens=6, temperature=0, logprobs=True, top_logprobs=2)
    whole = client.chat.completions.create(**kw).choices[0].logprobs.content
    parts = [c.choices[0].logprobs for c in client.chat.completions.create(stream=True, **kw)]
    streamed = [t for lp in parts if lp is not None for t in lp.content]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in whole]
    assert all(len(t.top_logprobs) == 2 for t in streamed)


def test_raw_stream_is_sse_ending_with_done(server):
    body = {"model": "m", "messages": [user()], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][6:])
    assert last["choices"][0]["finish_reason"] == "length"


def test_max_tokens_cut_says_length_and_usage_counts(client, interpreter):
    for kw in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        r = client.chat.completions.create(model="m", messages=[user()], temperature=0, **kw)
        assert r.choices[0].finish_reason == "length"
        assert r.usage.completion_tokens == 3
        ids = chat_prompt_ids(
            interpreter.processor.tokenizer, [{"role": "user", "content": "<image>" + QUESTION}]
        )
        assert r.usage.prompt_tokens == len(ids) and r.usage.total_tokens == len(ids) + 3


def test_logprobs_with_top_alternatives(client):
    r = client.chat.completions.create(
        model="m", messages=[user()], max_tokens=4, temperature=0, logprobs=True, top_logprobs=5
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 4
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 5
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token
        # greedy: the chosen token is the most likely one
        assert t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert [a.logprob for a in t.top_logprobs] == sorted(
            (a.logprob for a in t.top_logprobs), reverse=True
        )
    assert "".join(t.token for t in content).strip() == r.choices[0].message.content
    plain = client.chat.completions.create(model="m", messages=[user()], max_tokens=4, temperature=0)
    assert plain.choices[0].logprobs is None


def test_system_and_earlier_turns_reach_the_model(client, interpreter):
    tok = interpreter.processor.tokenizer
    system = {"role": "system", "content": "You are a cardiologist. Answer with superclass codes."}
    kw = dict(model="m", max_tokens=3, temperature=0, logprobs=True, top_logprobs=3)
    bare = client.chat.completions.create(messages=[user()], **kw)
    told = client.chat.completions.create(messages=[system, user()], **kw)
    ids = chat_prompt_ids(tok, [system, {"role": "user", "content": "<image>" + QUESTION}])
    assert told.usage.prompt_tokens == len(ids) > bare.usage.prompt_tokens
    assert "You are a cardiologist" in tok.decode(ids)
    # the model saw it: its first-token distribution moved
    a, b = bare.choices[0].logprobs.content[0], told.choices[0].logprobs.content[0]
    assert [x.logprob for x in a.top_logprobs] != pytest.approx([x.logprob for x in b.top_logprobs], abs=1e-6)
    turns = [system, user(), {"role": "assistant", "content": "NORM"}, {"role": "user", "content": "Sure?"}]
    later = client.chat.completions.create(messages=turns, **kw)
    assert later.usage.prompt_tokens > told.usage.prompt_tokens


def test_sampling_with_seed_is_reproducible_and_t0_is_greedy(client):
    kw = dict(model="m", messages=[user()], max_tokens=8)
    greedy = client.chat.completions.create(temperature=0, **kw).choices[0].message.content
    default = client.chat.completions.create(**kw).choices[0].message.content
    assert default == greedy  # this server's default is greedy (see docs/endpoints.md)
    s1 = [client.chat.completions.create(temperature=1.0, top_p=0.9, seed=s, **kw) for s in (1, 1, 2)]
    texts = [r.choices[0].message.content for r in s1]
    assert texts[0] == texts[1]
    assert texts[0] != greedy or texts[2] != greedy  # a near-uniform model samples away from argmax


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"stop": ["\n"]}, "stop"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ],
)
def test_unsupported_parameters_are_a_400_naming_them(client, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[user()], max_tokens=2, **extra)
    err = info.value
    assert err.status_code == 400 and f"'{param}'" in err.message and err.param == param


def test_audio_is_refused_by_name(server):
    body = {"model": "m", "messages": [user()], "audio": {"voice": "alloy", "format": "wav"}}
    r = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "audio"


def test_decode_matches_greedy_generate_and_rows_sample_independently(interpreter):
    """model.decode.complete: greedy text equals infer.generate's; a row's own max tokens and seed hold in a batch."""
    import io

    from PIL import Image

    from ecgvlm.model.decode import Sampling, complete
    from ecgvlm.model.infer import generate, prompt_ids

    model, processor = interpreter.model, interpreter.processor
    img = Image.open(io.BytesIO(examples.read())).convert("RGB")
    questions = ["<image>\n" + QUESTION, "What is the heart rate on this ECG?"]
    ref = generate(model, processor, [img, img], questions, max_new_tokens=8, batch_size=2)
    seqs = [prompt_ids(processor.tokenizer, q) for q in questions]
    got = complete(model, processor, [img, img], seqs, [Sampling(8), Sampling(8)])
    assert [c.text for c in got] == ref

    # one batch: a greedy row cut at 3, a seeded sampled row, a greedy row at 8
    mixed = complete(
        model,
        processor,
        [img] * 3,
        [seqs[0]] * 3,
        [Sampling(3), Sampling(8, temperature=1.0, seed=5), Sampling(8)],
    )
    assert mixed[0].finish_reason == "length" and mixed[0].completion_tokens == 3
    assert mixed[2].text == ref[0]  # the sampled neighbour does not disturb greedy rows
    alone = complete(model, processor, [img], [seqs[0]], [Sampling(8, temperature=1.0, seed=5)])
    assert [t.id for t in alone[0].tokens] == [t.id for t in mixed[1].tokens]  # the seed decides


def test_chat_time_limit_gives_504(interpreter):
    with running_server(create_app(interpreter, ServeConfig(timeout_s=0.001))) as url:
        for stream in (False, True):
            body = {"model": "m", "messages": [user()], "max_tokens": 4, "stream": stream}
            r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
            assert r.status_code == 504 and "limit" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/health").status_code == 200
