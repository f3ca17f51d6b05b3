"""One HTTP client for OpenAI-compatible ``/chat/completions`` endpoints (the LLM judge and
``evaluate --endpoint`` both use it).

``post(body)`` returns the parsed JSON of a 200 reply. HTTP 429 and 5xx, connection errors,
timeouts and replies that are not JSON are retried with exponential backoff (``backoff_s`` x 2^k,
at most ``max_backoff_s``), honouring a Retry-After header; other 4xx fail at once. With a
``cache_dir``, each reply is stored under sha256 of the exact request body (images included), so
a repeated request makes no HTTP call. ``map`` runs a function over items with at most
``concurrency`` requests in flight, order kept. ``summary()``: requests, cache hits, retries,
failures, tokens (from ``usage``), seconds and, when prices are given, cost in USD.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_json


class EndpointError(ECGVLMError):
    """A request that failed for good (a 4xx, or every attempt used up); ``reason`` without the URL."""

    def __init__(self, reason: str, url: str) -> None:
        super().__init__(reason, url)
        self.reason = reason


def chat_url(base_url: str) -> str:
    """``.../v1`` (what the ``openai`` client takes) or a full ``.../chat/completions`` URL."""
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


class ChatClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 4,
        max_attempts: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        timeout_s: float = 120.0,
        cache_dir: str | Path | None = None,
        price_in_per_mtok: float | None = None,
        price_out_per_mtok: float | None = None,
    ) -> None:
        if not base_url:
            raise ECGVLMError("no endpoint URL given")
        self.url = chat_url(base_url)
        self.api_key = api_key
        self.concurrency = max(1, int(concurrency))
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_s, self.max_backoff_s, self.timeout_s = backoff_s, max_backoff_s, timeout_s
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.prices = (price_in_per_mtok, price_out_per_mtok)
        self._lock = threading.Lock()
        self._stats: dict[str, float] = dict(
            requests=0, cache_hits=0, retries=0, failures=0, prompt_tokens=0, completion_tokens=0, seconds=0.0
        )

    # ---------------------------------------------------------------- stats
    def bump(self, **counts: float) -> None:
        with self._lock:
            for k, v in counts.items():
                self._stats[k] = self._stats.get(k, 0) + v

    def summary(self) -> dict:
        with self._lock:
            s = dict(self._stats)
        s["seconds"] = round(s["seconds"], 2)
        p_in, p_out = self.prices
        if p_in is not None and p_out is not None:
            s["cost_usd"] = round((s["prompt_tokens"] * p_in + s["completion_tokens"] * p_out) / 1e6, 6)
        return s

    # ---------------------------------------------------------------- cache
    def _cache_path(self, body: dict) -> Path | None:
        if self.cache_dir is None:
            return None
        blob = json.dumps([self.url, body], sort_keys=True, ensure_ascii=False)
        key = hashlib.sha256(blob.encode("utf-8")).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    # ---------------------------------------------------------------- HTTP
    def _sleep_for(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return max(0.0, min(float(retry_after), self.max_backoff_s))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return min(self.backoff_s * (2**attempt), self.max_backoff_s)

    def _send(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        self.bump(requests=1)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            reply = json.loads(resp.read().decode("utf-8"))
        if not isinstance(reply, dict):
            raise json.JSONDecodeError("reply is not a JSON object", "", 0)
        return reply

    def post(
        self, body: dict, use_cache: bool = True, check: Callable[[dict], str | None] | None = None
    ) -> dict:
        """The parsed reply to ``body``; raises ``EndpointError`` when it cannot get one.

        ``check(reply)`` returns what is wrong with a reply (or None): such a reply is retried like
        a malformed one and never cached.
        """
        path = self._cache_path(body) if use_cache else None
        if path is not None and path.exists():
            try:
                reply = json.loads(path.read_text("utf-8"))["reply"]
                self.bump(cache_hits=1)
                return reply
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is simply asked again
        last = "no attempt"
        for attempt in range(self.max_attempts):
            if attempt:
                self.bump(retries=1)
            try:
                reply = self._send(body)
            except urllib.error.HTTPError as e:
                if e.code == 429 or e.code >= 500:
                    last = f"HTTP {e.code}"
                    time.sleep(self._sleep_for(attempt, e.headers.get("Retry-After")))
                    continue
                detail = e.read()[:300].decode("utf-8", "replace")
                self.bump(failures=1)
                raise EndpointError(f"endpoint answered HTTP {e.code}: {detail}", self.url) from None
            except json.JSONDecodeError as e:
                last = f"malformed JSON reply ({e.msg})"
                time.sleep(self._sleep_for(attempt, None))
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, UnicodeDecodeError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
                time.sleep(self._sleep_for(attempt, None))
                continue
            problem = check(reply) if check else None
            if problem:
                last = f"unusable reply ({problem})"
                time.sleep(self._sleep_for(attempt, None))
                continue
            usage = reply.get("usage") or {}
            with contextlib.suppress(TypeError, ValueError, AttributeError):  # unreadable usage costs nothing
                self.bump(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                )
            if path is not None:
                atomic_write_json(path, {"url": self.url, "reply": reply})
            return reply
        self.bump(failures=1)
        raise EndpointError(f"gave up after {self.max_attempts} attempts; last: {last}", self.url)

    def map(self, fn: Callable[[Any], Any], items: list[Any], progress: str | None = None) -> list[Any]:
        """``[fn(x) for x in items]`` with at most ``concurrency`` calls at once; order kept.

        ``progress``: a label for a progress bar (shown past 20 items).
        """
        t0 = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                it = pool.map(fn, items)
                if progress and len(items) > 20:
                    from tqdm import tqdm

                    it = tqdm(it, total=len(items), desc=progress)
                return list(it)
        finally:
            self.bump(seconds=time.perf_counter() - t0)
