"""Does a model's output depend on the image? A check on one task's predictions.

A model that has fallen into an answer prior gives the same answer to every page, and its
per-class probabilities barely move: the demo's collapsed fine-tune answered "MI" on 125 of 125
test pages with per-class standard deviations of 0.0002-0.010 across them, and its reports looped
("QTormal axis, QTormal axis, QTormal axis"). Such a model can still post a chance-level AUC that
looks like a weak model. This check puts the collapse in plain figures, from the predictions alone:

* ``distinct_answers``, ``majority_answer`` (the most common answer text, stripped; the text as
  generated, so a reworded answer counts as another) and ``majority_share`` (the share of the
  compared pages that give their question's most common answer);
* ``answer_change_rate``: the share of page pairs (same question) whose answers differ, order-free:
  the chance that two pages drawn at random get different answers; 0 for a collapsed model;
* ``scores``: per class, the mean probability and its standard deviation across the pages (pooled
  within question; only when every row carries a ``scores`` mapping), ``max_score_std`` over classes;
* ``loops``: rows whose answer repeats a phrase of one to four words three or more times in a row,
  or a letter six or more times in a row ("QTcccccc"), with the first such answer as ``loop_example``.

Depending on the image is not reading it well: the untrained base's answers move with the page at
chance AUC (below). The check tells a model stuck in a prior from one that answers the page; the
AUC says how well it answers. Under greedy decoding and one question wording, any change of answer
between pages comes from the pages.

Pages are compared under the same question wording (``compared_within: "question"``) when at least
``MIN_ROWS`` rows share a wording with another row, else across all rows (``"all rows"``):
instruction sets word one question several ways, and a model that ignores the page still answers
each wording differently (the shipped tiny base on 12 identical blank pages: two answers and a
per-class std of 0.065 across all rows, all from the wording; 0.000 within a wording).

The rule, ``independent``: the outputs do not depend on the image when, over at least
``MIN_ROWS`` compared rows, the pages asked the same question get the same answer at least
``SAME_ANSWER_SHARE`` (95%) of the time AND, where there are scores, no class's probability has a
(pooled within-question) standard deviation of ``SCORE_STD_MAX`` (0.02) or more across the pages.

Why these thresholds: measured superclass probabilities (max per-class std; share of the most
common answer):

* the collapsed demo fine-tune of issue #16 (its figures): 0.010, 125/125 pages answer "MI";
* a tiny Mllama on blank pages (tests/test_image_dependence.py): 0.000, one answer per wording;
* the demo's CNN after 4 epochs (strict AUC 60.5, 125 pages): 0.060, 100% (the empty answer);
* the shipped tiny base zero-shot on the demo's 125 test pages (strict AUC 50.5, at chance, but its
  output moves with the page): 0.057, 76%; the same on those pages blanked: 0.000, 100% (and three
  distinct answers across the nine wordings, which is why pages are compared within a wording);
* a CNN on the toy pages of the tests (strict AUC 79.3, 30 pages): 0.131, 20%.

A class of prevalence p whose mean probability differs by d between its positive and negative pages
has a standard deviation of at least d * sqrt(p(1-p)), so below 0.02 no class with prevalence
0.2-0.8 separates its pages by more than 0.05 in mean probability. 0.02 is twice the collapse's
highest figure and below every model above whose output moves with the page (0.057 the lowest).
The CNN row is why the answer share alone is not the rule: its text answer (the codes at p >= 0.5)
is empty on every page while its probabilities rank the pages above chance. Rows without scores
(reports, MCQ) are judged on the answer share alone. ``independent`` is None below ``MIN_ROWS``
compared rows (too few to tell a prior from a run of similar pages). Looping answers are reported
and warned about separately: a model can read the image and still loop.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ecgvlm.evaluate.labels import capped

SAME_ANSWER_SHARE = 0.95
SCORE_STD_MAX = 0.02
MIN_ROWS = 10
RULE = (
    f"outputs do not depend on the image when, over >= {MIN_ROWS} pages, those asked the same question "
    f"get the same answer >= {SAME_ANSWER_SHARE:.0%} of the time and (with scores) every class's "
    f"probability has a standard deviation < {SCORE_STD_MAX} across them"
)

_WORD = re.compile(r"\w+")
_LETTER_RUN = re.compile(r"([^\W\d_])\1{5,}")


def loops(text: str) -> bool:
    """True when ``text`` repeats a phrase of 1-4 words 3+ times in a row, or a letter 6+ times.

    Words are compared case-free with punctuation dropped, so "QTormal axis, QTormal axis, QTormal
    axis" is one two-word phrase three times.
    """
    text = capped(text)
    if _LETTER_RUN.search(text):
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    for n in range(1, 5):
        for i in range(len(words) - 3 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n] == words[i + 2 * n : i + 3 * n]:
                return True
    return False


def _score_matrix(rows: list[dict], labels: list[str] | None) -> tuple[list[str], np.ndarray] | None:
    if not rows or any(not isinstance(r.get("scores"), dict) or not r["scores"] for r in rows):
        return None
    labels = labels or list(rows[0]["scores"])
    try:
        m = np.array([[float(r["scores"][lab]) for lab in labels] for r in rows], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None  # scoring itself names the bad row; this check just has no scores to read
    return (labels, m) if np.isfinite(m).all() else None


def _question_groups(rows: list[dict]) -> tuple[list[list[int]], str]:
    """Row indices grouped by question text (rows that ask the same thing of different pages).

    Instruction sets word one question several ways, and a model that ignores the page still
    answers each wording differently (the shipped tiny base on 12 blank pages gave two answers and
    per-class std 0.065 across them, all from the wording). Comparing pages under the same wording
    isolates what the image changes. Falls back to all rows when too few share a wording.
    """
    by: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by.setdefault(str(r.get("prompt") or ""), []).append(i)
    shared = [g for g in by.values() if len(g) > 1]
    if len(by) > 1 and sum(map(len, shared)) >= MIN_ROWS:
        return shared, "question"
    return ([list(range(len(rows)))] if rows else []), "all rows"


def image_dependence(rows: list[dict], labels: list[str] | None = None) -> dict:
    """Spread of answers and scores across the pages of one task, and the verdict of the rule above.

    ``rows`` are predictions.jsonl rows (``prediction`` text, ``prompt``, optional ``scores``
    {label: prob}); ``labels`` orders the score classes (default: the first row's). Pages are
    compared under the same question wording where enough rows share one (``compared_within``).
    The result goes into metrics.json as ``image_dependence`` (fields in docs/schemas.md).
    """
    answers = [(r.get("prediction") or "").strip() for r in rows]
    n = len(answers)
    groups, within = _question_groups(rows)
    compared = sum(map(len, groups))
    top_sum = pairs = same_pairs = 0
    for g in groups:
        counts = Counter(answers[i] for i in g)
        top_sum += counts.most_common(1)[0][1]
        pairs += len(g) * (len(g) - 1)
        same_pairs += sum(c * (c - 1) for c in counts.values())
    overall = Counter(answers)
    top, top_n = overall.most_common(1)[0] if overall else ("", 0)
    looping = [a for a in answers if loops(a)]
    out: dict = {
        "rows": n,
        "compared_within": within,
        "rows_compared": compared,
        "questions": len(groups) if within == "question" else 1,
        "distinct_answers": len(overall),
        "majority_answer": top[:200],
        "majority_share": round(top_sum / compared, 4) if compared else None,
        # pairs of pages (same question) with different answers / all such pairs
        "answer_change_rate": round(1.0 - same_pairs / pairs, 4) if pairs else None,
        "scores": None,
        "max_score_std": None,
        "loops": len(looping),
        "loop_example": looping[0][:300] if looping else None,
    }
    scored = _score_matrix(rows, labels)
    if scored is not None:
        names, m = scored
        # pooled within-question standard deviation: the spread the pages cause, not the wording
        sq = sum(((m[g] - m[g].mean(axis=0)) ** 2).sum(axis=0) for g in groups)
        std = np.sqrt(sq / max(compared, 1))
        mean = m.mean(axis=0)
        out["scores"] = {
            lab: {"mean": round(float(mu), 4), "std": round(float(sd), 6)}
            for lab, mu, sd in zip(names, mean, std)
        }
        out["max_score_std"] = round(float(std.max()), 6)

    if compared < MIN_ROWS:
        out["independent"] = None
        out["reason"] = f"too few rows to judge ({compared} < {MIN_ROWS})"
    else:
        same = top_sum / compared >= SAME_ANSWER_SHARE
        flat = scored is None or out["max_score_std"] < SCORE_STD_MAX
        out["independent"] = bool(same and flat)
        if within == "question":
            share = f"{top_sum}/{compared} pages give the most common answer to their question's wording"
        else:
            share = f"{top_sum}/{compared} rows give the most common answer {_quote(top)}"
        spread = (
            "" if scored is None else f"max per-class std of the probabilities {out['max_score_std']:.4f}"
        )
        if out["independent"]:
            out["reason"] = share + (f" and {spread} < {SCORE_STD_MAX}" if spread else "")
        else:
            out["reason"] = share + (f"; {spread}" if spread else "")
    out["rule"] = RULE
    return out


def _quote(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def dependence_warnings(dep: dict, what: str) -> list[str]:
    """One-line warnings for ``dep`` (an ``image_dependence`` result); ``what`` names the task/model."""
    out = []
    if dep.get("independent"):
        out.append(f"{what}: the outputs do not depend on the image ({dep['reason']})")
    if dep.get("loops"):
        out.append(
            f"{what}: {dep['loops']} of {dep['rows']} answers loop (a phrase repeated 3+ times in a row "
            f"or a letter 6+ times), e.g. {_quote(dep['loop_example'] or '', 100)}"
        )
    return out
