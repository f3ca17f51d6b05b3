"""OpenAI chat-completions requests and responses: parsing with clear 400s, answers, stream chunks.

What is supported (anything else is a 400 naming the parameter, never silently ignored):
messages with roles system/developer/user/assistant, text parts and exactly one base64 data-URL
image; max_tokens / max_completion_tokens; temperature (0 = greedy, the default here), top_p,
seed; logprobs with top_logprobs 0-20; stream with stream_options.include_usage; n = 1; and the
bookkeeping fields model, user, metadata, store, service_tier, which do not change the answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ecgvlm.model.decode import Completion, Sampling, Token, token_bytes

MAX_TOP_LOGPROBS = 20
DEFAULT_MAX_TOKENS = 128
KNOWN = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "logprobs",
    "top_logprobs",
    "n",
    "user",
    "metadata",
    "store",
    "service_tier",
}
# Accepted only at their neutral value (what sending nothing means).
NEUTRAL = {
    "stop": (None, [], ""),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None,),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "response_format": (None, {"type": "text"}),
}


class ChatRequestError(ValueError):
    """A request we refuse with HTTP 400; ``param`` names the offending parameter (OpenAI's field)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@dataclass
class ChatRequest:
    messages: list[dict]  # {"role", "content": str}; "<image>" marks where the image stands
    image: bytes
    sampling: Sampling
    logprobs: bool = False
    stream: bool = False
    include_usage: bool = False
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _bad(message: str, param: str | None = None) -> ChatRequestError:
    return ChatRequestError(message, param)


def parse_chat_request(body: bytes, max_tokens_cap: int) -> ChatRequest:
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad(f"the body is not valid JSON ({e})") from None
    if not isinstance(req, dict):
        raise _bad("the body must be a JSON object with 'messages'")
    for key, value in req.items():
        if key in NEUTRAL:
            if value not in NEUTRAL[key]:
                raise _bad(f"parameter '{key}' is not supported by this server", key)
        elif key not in KNOWN:
            raise _bad(f"unknown or unsupported parameter '{key}'", key)
    n = req.get("n")
    if n is not None and n != 1:
        raise _bad(f"parameter 'n' must be 1 here (got {n!r}): this server returns one choice", "n")

    messages, image = _messages(req.get("messages"))
    sampling = Sampling(max_new_tokens=_max_tokens(req, max_tokens_cap))
    temperature = req.get("temperature")
    if temperature is not None:
        if not _number(temperature) or not 0 <= temperature <= 2:
            raise _bad("'temperature' must be a number from 0 to 2", "temperature")
        sampling.temperature = float(temperature)
    top_p = req.get("top_p")
    if top_p is not None:
        if not _number(top_p) or not 0 < top_p <= 1:
            raise _bad("'top_p' must be a number in (0, 1]", "top_p")
        sampling.top_p = float(top_p)
    seed = req.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise _bad("'seed' must be an integer", "seed")
        sampling.seed = seed % 2**63
    logprobs = req.get("logprobs")
    if logprobs not in (None, True, False):
        raise _bad("'logprobs' must be true or false", "logprobs")
    top = req.get("top_logprobs")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise _bad(f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}", "top_logprobs")
        if not logprobs:
            raise _bad("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        sampling.top_logprobs = top
    stream = req.get("stream")
    if stream not in (None, True, False):
        raise _bad("'stream' must be true or false", "stream")
    options = req.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise _bad("'stream_options' is only allowed with 'stream': true", "stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise _bad("'stream_options' supports only include_usage", "stream_options")
        include_usage = bool(options.get("include_usage"))
    return ChatRequest(
        messages=messages,
        image=image,
        sampling=sampling,
        logprobs=bool(logprobs),
        stream=bool(stream),
        include_usage=include_usage,
        model=req.get("model"),
    )


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _max_tokens(req: dict, cap: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = req.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _bad(f"'{key}' must be a positive integer", key)
        return min(value, cap)
    return min(DEFAULT_MAX_TOKENS, cap)


def _messages(messages: object) -> tuple[list[dict], bytes]:
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list", "messages")
    out: list[dict] = []
    images: list[bytes] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"{where} must be an object", "messages")
        role = msg.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise _bad(
                f"{where}: role {role!r} is not supported (system, developer, user, assistant)", "messages"
            )
        for key in msg:
            if key not in ("role", "content", "name"):
                raise _bad(f"{where}: field '{key}' is not supported", "messages")
        content = msg.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise _bad(f"{where}: 'content' must be a string or a list of content parts", "messages")
        text = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                text.append(part["text"])
            elif kind == "image_url" and role == "user":
                ref = part.get("image_url")
                images.append(decode_data_url(ref.get("url") if isinstance(ref, dict) else ref))
                text.append("<image>")
            else:
                raise _bad(
                    f"{where}: content part {kind!r} is not supported here (text, and image_url in user turns)",
                    "messages",
                )
        out.append({"role": "system" if role == "developer" else role, "content": "".join(text)})
    if len(images) != 1:
        raise _bad(
            f"send exactly one ECG image as an 'image_url' content part (got {len(images)})", "messages"
        )
    if out[-1]["role"] != "user":
        raise _bad("the last message must come from the user", "messages")
    if not out[-1]["content"].replace("<image>", "").strip():
        raise _bad("the last user message has no text question", "messages")
    return out, images[0]


def decode_data_url(url: object) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise _bad(
            "image_url must be a data URL (data:image/png;base64,...); the server does not fetch remote images",
            "messages",
        )
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise _bad("image_url data URL must be base64-encoded (data:image/png;base64,...)", "messages")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("image_url holds invalid base64 data", "messages") from None


# ---------------------------------------------------------------- answers
def _entry(tokenizer, token_id: int, logprob: float) -> dict:
    raw = token_bytes(tokenizer, token_id)
    return {"token": raw.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(raw)}


def logprob_content(tokenizer, tokens: list[Token]) -> list[dict]:
    """OpenAI's ``logprobs.content``: per token its text, log-probability, bytes and top alternatives."""
    return [
        {**_entry(tokenizer, t.id, t.logprob), "top_logprobs": [_entry(tokenizer, j, v) for j, v in t.top]}
        for t in tokens
    ]


def usage(c: Completion) -> dict:
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
    }


def completion_response(cid: str, model: str, tokenizer, c: Completion, want_logprobs: bool) -> dict:
    logprobs = {"content": logprob_content(tokenizer, c.tokens), "refusal": None} if want_logprobs else None
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": logprobs,
                "finish_reason": c.finish_reason,
            }
        ],
        "usage": usage(c),
    }


def chunk(cid: str, model: str, delta: dict, finish_reason: str | None = None, logprobs=None) -> dict:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
    }


def sse(obj: dict | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


class StreamText:
    """Turns tokens into text deltas whose concatenation is the final (stripped) answer.

    Leading and trailing whitespace and a trailing partial UTF-8 character are held back until
    more text follows, since the finished answer is stripped and decoded whole.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).strip().rstrip("\ufffd").rstrip()
        if not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta

    def finish(self, final: str) -> str:
        return final[len(self.sent) :] if final.startswith(self.sent) else ""
