"""Report judges: score a generated report against the clinician's, ECGBench style.

Every judge has ``name`` and ``score(candidate, reference) -> JudgeScore``: three aspects —
diagnosis, waveform (P/QRS/ST/T morphology, intervals, axis), rhythm (rhythm, rate, ectopy) — each
0-10, judged only on what the reference contains (an aspect the reference says nothing about is
``None``, not a penalty); ``total`` = mean of the judged aspects x 10 (0-100). Length is ignored.

* ``FindingsJudge`` (``judges/findings.py``): offline, deterministic, always available.
* ``LLMJudge`` (``judges/llm.py``): any OpenAI-compatible chat endpoint (GPT-4o, vLLM, SGLang).

``score_reports(preds, judge)`` runs a judge over predictions rows and averages.
"""

from __future__ import annotations

from ecgvlm.evaluate.judges.base import ASPECTS, Judge, JudgeScore, total_of

__all__ = ["ASPECTS", "Judge", "JudgeScore", "make_judge", "score_reports", "total_of"]


def make_judge(name: str, **kwargs) -> Judge:
    """``findings`` or ``llm`` (kwargs go to ``LLMJudge``: base_url, model, api_key, cache_dir, ...)."""
    if name == "findings":
        from ecgvlm.evaluate.judges.findings import FindingsJudge

        return FindingsJudge()
    if name == "llm":
        from ecgvlm.evaluate.judges.llm import LLMJudge

        return LLMJudge.from_env(**kwargs)
    raise ValueError(f"unknown judge {name!r} (findings, llm)")


def score_reports(preds: list[dict], judge: Judge) -> dict:
    """Mean report score over rows (``prediction`` vs ``reference``), per aspect and total, with per-row detail."""
    pairs = [(r.get("prediction") or "", r.get("reference") or "") for r in preds]
    many = getattr(judge, "score_many", None)
    scores = many(pairs) if many else [judge.score(c, ref) for c, ref in pairs]
    rows = [{"id": r.get("id"), **s.to_dict()} for r, s in zip(preds, scores)]
    out: dict = {"n": len(rows), "judge": judge.name}
    out["score"] = round(sum(s.total for s in scores) / len(scores), 1) if scores else None
    for a in ASPECTS:
        vals = [getattr(s, a) for s in scores if getattr(s, a) is not None]
        out[a] = round(sum(vals) / len(vals), 2) if vals else None
        out[f"{a}_judged"] = len(vals)
    summary = getattr(judge, "summary", None)
    if summary:
        out["cost"] = summary()
    out["rows"] = rows
    return out
