"""Multiple-choice accuracy: read the chosen letter (A-D) out of a free-text answer.

ECGBench mode: an answer with no readable letter gets a random letter drawn from
``random.Random(42)`` — one generator per scoring call, consumed in file order, so a run is
reproducible. Strict mode never guesses: an unreadable answer is wrong (it may also be read by the
text of one of ``gold.options``).
"""

from __future__ import annotations

import random
import re

LETTERS = ("A", "B", "C", "D")
MCQ_SEED = 42

# Most explicit first: "answer is (B)", then "(B)" / "B." / "B)" at the start, then a lone capital.
_PATTERNS = [
    re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*\(?([A-D])\b(?![\w-])"),
    re.compile(r"^\s*\(?([A-D])\s*(?:[).:\]]|$|\s*[-\u2013]\s)"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"^\s*([A-D])\s*$"),
    re.compile(r"(?<![\w-])([B-D])(?![\w'-])"),  # a lone "A" is too often the article
]


def extract_letter(text: str) -> str | None:
    """The option letter an answer chooses, or None when none is readable."""
    text = text or ""
    for pattern in _PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


def _by_option_text(text: str, options: list[str] | None) -> str | None:
    if not options:
        return None
    low = (text or "").lower()
    hits = [LETTERS[i] for i, o in enumerate(options[:4]) if o and o.lower() in low]
    return hits[0] if len(hits) == 1 else None


def score_mcq(preds: list[dict], mode: str = "ecgbench") -> dict:
    """Accuracy over rows whose ``gold.answer`` (or ``reference``) is the correct letter."""
    rng = random.Random(MCQ_SEED)
    correct, unparsed, rows = 0, 0, []
    for r in preds:
        gold = (r.get("gold") or {}).get("answer") or extract_letter(r.get("reference") or "")
        letter = extract_letter(r.get("prediction") or "")
        if letter is None:
            unparsed += 1
            if mode == "ecgbench":
                letter = rng.choice(LETTERS)
            else:
                letter = _by_option_text(r.get("prediction") or "", (r.get("gold") or {}).get("options"))
        ok = letter is not None and letter == gold
        correct += ok
        rows.append({"id": r.get("id"), "gold": gold, "chosen": letter, "correct": bool(ok)})
    n = len(preds)
    return {
        "n": n,
        "accuracy": round(100.0 * correct / n, 1) if n else None,
        "unparsed": unparsed,
        "fallback": f"random.Random({MCQ_SEED}) letter" if mode == "ecgbench" else "option text, else wrong",
        "rows": rows,
    }
