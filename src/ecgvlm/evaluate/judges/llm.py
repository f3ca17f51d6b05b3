"""The LLM report judge over any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, ...).

Configuration (arguments override the environment):
  ECGVLM_JUDGE_BASE_URL  e.g. https://api.openai.com/v1 or http://localhost:8000/v1
  ECGVLM_JUDGE_MODEL     e.g. gpt-4o-2024-08-06
  OPENAI_API_KEY         (or ECGVLM_JUDGE_API_KEY); may be empty for a local server
  ECGVLM_JUDGE_CACHE     cache folder (default ~/.cache/ecgvlm/judge)

Behaviour: the rubric below (version ``RUBRIC_VERSION``) as the system message; the reply must be
one JSON object {"diagnosis", "waveform", "rhythm": 0-10 or null, "rationale": str} — anything else
is rejected and asked again. HTTP goes through ``evaluate.http_client.ChatClient`` (shared with
``evaluate --endpoint``): 429 and 5xx (and connection errors) are retried with exponential
backoff, honouring Retry-After; other 4xx fail at once. At most ``concurrency`` requests are in
flight. Each answer is cached on disk under sha256(model, rubric version, candidate, reference), so
a repeated evaluation makes no request. ``summary()`` gives requests, cache hits, retries, tokens
(from ``usage``), seconds and, when prices are given, cost.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.evaluate.http_client import ChatClient, EndpointError
from ecgvlm.evaluate.judges.base import ASPECTS, JudgeScore, total_of
from ecgvlm.io import atomic_write_json

RUBRIC_VERSION = "ecgvlm-report-rubric-1"
RUBRIC = """You grade an ECG report written by a model (CANDIDATE) against the report a cardiologist \
wrote for the same tracing (REFERENCE). Grade three aspects, each as an integer from 0 to 10:

- diagnosis: the diagnostic statements - normal or abnormal ECG, infarction (site and age), \
ischaemia, bundle branch and fascicular blocks, AV blocks, pre-excitation, hypertrophy and atrial \
enlargement, drug or electrolyte effects.
- waveform: the morphology and measurements - P wave, QRS complex (width, voltage, Q waves, R \
progression), ST segment, T wave, U wave, PR / QRS / QT intervals, electrical axis.
- rhythm: the rhythm and rate - sinus or not, atrial fibrillation or flutter, other \
supraventricular or ventricular rhythms, pacing, premature beats, bradycardia or tachycardia.

Anchors: 10 = everything the reference states for this aspect is present and correct; 5 = partly \
right (some findings missed, or found with a wrong detail such as the site of an infarction); \
0 = critical errors (a finding contradicted, e.g. atrial fibrillation for sinus rhythm, or a \
serious finding invented). Use the whole scale between the anchors.

Judge only what the reference contains: if the reference says nothing about an aspect, give null \
for that aspect. Do not reward or penalise length, style or wording; a correct synonym counts as \
correct. Findings the candidate adds that the reference does not mention lower the score only if \
they are clinically significant and would change management.

Reply with exactly one JSON object and nothing else:
{"diagnosis": <0-10 or null>, "waveform": <0-10 or null>, "rhythm": <0-10 or null>, \
"rationale": "<one or two sentences>"}"""


class MalformedReply(ValueError):
    pass


def parse_reply(content: str) -> dict:
    """The judge's JSON verdict, validated; raises ``MalformedReply`` on anything else."""
    text = (content or "").strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    if fence:
        text = fence.group(1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalformedReply(f"not JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise MalformedReply("not a JSON object")
    out = {}
    for a in ASPECTS:
        if a not in obj:
            raise MalformedReply(f"missing key {a!r}")
        v = obj[a]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 10):
            raise MalformedReply(f"{a} must be a number 0-10 or null, got {v!r}")
        out[a] = None if v is None else float(v)
    rationale = obj.get("rationale", "")
    out["rationale"] = rationale if isinstance(rationale, str) else json.dumps(rationale)
    return out


class LLMJudge:
    """Report judge backed by an OpenAI-compatible ``/chat/completions`` endpoint (``ChatClient``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        cache_dir: str | Path | None = None,
        concurrency: int = 4,
        max_attempts: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        timeout_s: float = 120.0,
        json_mode: bool = True,
        price_in_per_mtok: float | None = None,
        price_out_per_mtok: float | None = None,
    ) -> None:
        if not base_url or not model:
            raise ECGVLMError(
                "LLM judge needs a base URL and a model (ECGVLM_JUDGE_BASE_URL, ECGVLM_JUDGE_MODEL)"
            )
        # The verdict cache (below) is keyed by meaning, not by request bytes, so the client caches nothing.
        self.client = ChatClient(
            base_url,
            api_key=api_key,
            concurrency=concurrency,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            timeout_s=timeout_s,
            price_in_per_mtok=price_in_per_mtok,
            price_out_per_mtok=price_out_per_mtok,
        )
        self.client.bump(malformed=0, rows=0)
        self.url = self.client.url
        self.model = model
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_attempts = max(1, int(max_attempts))
        self.json_mode = json_mode
        self.name = f"llm:{model}"

    @classmethod
    def from_env(cls, **overrides) -> LLMJudge:
        env = os.environ
        kwargs = {
            "base_url": env.get("ECGVLM_JUDGE_BASE_URL", ""),
            "model": env.get("ECGVLM_JUDGE_MODEL", ""),
            "api_key": env.get("ECGVLM_JUDGE_API_KEY") or env.get("OPENAI_API_KEY"),
            "cache_dir": env.get("ECGVLM_JUDGE_CACHE") or Path.home() / ".cache" / "ecgvlm" / "judge",
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    # ---------------------------------------------------------------- cache
    def cache_key(self, candidate: str, reference: str) -> str:
        blob = json.dumps([self.model, RUBRIC_VERSION, candidate, reference], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    # ---------------------------------------------------------------- asking
    def _ask(self, candidate: str, reference: str) -> tuple[dict, dict]:
        body = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": 400,
            "messages": [
                {"role": "system", "content": RUBRIC},
                {"role": "user", "content": f"REFERENCE:\n{reference}\n\nCANDIDATE:\n{candidate}"},
            ],
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        last = "no attempt"
        for _ in range(self.max_attempts):  # HTTP trouble is retried inside post; this re-asks bad verdicts
            try:
                resp = self.client.post(body, use_cache=False)
            except EndpointError as e:
                raise ECGVLMError(f"judge: {e.reason}", self.url) from None
            try:
                content = resp["choices"][0]["message"]["content"]
                return parse_reply(content), resp.get("usage") or {}
            except (KeyError, IndexError, TypeError, MalformedReply) as e:
                self.client.bump(malformed=1)
                last = f"malformed reply ({e})"
        raise ECGVLMError(f"judge gave up after {self.max_attempts} attempts; last: {last}", self.url)

    # ---------------------------------------------------------------- Judge
    def score(self, candidate: str, reference: str) -> JudgeScore:
        key = self.cache_key(candidate, reference)
        path = self._cache_path(key)
        verdict = None
        if path is not None and path.exists():
            try:
                verdict = parse_reply(json.dumps(json.loads(path.read_text("utf-8"))["verdict"]))
                self.client.bump(cache_hits=1)
            except (OSError, ValueError, KeyError):
                verdict = None  # a damaged cache entry is simply asked again
        if verdict is None:
            verdict, usage = self._ask(candidate, reference)
            if path is not None:
                atomic_write_json(
                    path, {"model": self.model, "rubric": RUBRIC_VERSION, "verdict": verdict, "usage": usage}
                )
        self.client.bump(rows=1)
        aspects = {a: verdict[a] for a in ASPECTS}
        return JudgeScore(**aspects, total=total_of(aspects), rationale=verdict["rationale"])

    def score_many(self, pairs: list[tuple[str, str]]) -> list[JudgeScore]:
        """Score (candidate, reference) pairs with at most ``concurrency`` requests in flight; order kept."""
        return self.client.map(lambda p: self.score(*p), pairs, progress="judge")

    def summary(self) -> dict:
        s = self.client.summary()
        s["model"], s["rubric"] = self.model, RUBRIC_VERSION
        return s
