"""The pretraining task stream: deterministic, varied, and never a diagnosis question."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ecgvlm.render.style import RenderStyle
from ecgvlm.signals.vocab import SUPERCLASSES
from ecgvlm.train import pretrain_ecg, pretrain_generic, pretrain_pages, pretrain_yesno
from ecgvlm.train import pretrain_tasks as pt


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_same_seed_and_index_give_the_same_example():
    for index in (0, 7, 123):
        a, b = pt.make_example(3, index), pt.make_example(3, index)
        assert (a.task, a.question, a.answer) == (b.task, b.question, b.answer)
        assert _png(a.image) == _png(b.image)
    pretrain_pages._PAGES.clear()  # a cold page cache gives the same pixels as a warm one
    c = pt.make_example(3, 123)
    assert _png(c.image) == _png(pt.make_example(3, 123).image)


def test_stream_is_varied_and_page_sized():
    exs = [pt.make_example(0, i) for i in range(60)]
    assert len({e.task for e in exs}) >= 15
    assert len({e.question for e in exs}) >= 30
    assert {e.task[0] for e in exs} == {"g", "e", "y"}  # generic, ECG measurement, ECG yes/no
    for e in exs:
        assert e.image.mode == "RGB"
        if e.task.startswith("g_"):
            assert e.image.size == (pretrain_pages.PAGE_W, pretrain_pages.PAGE_H)
        else:  # a letter page in the "tiny" look at 40 dpi, as `dataset build --style tiny` renders
            assert e.image.size == (440, 340)
        assert e.answer and e.answer == e.answer.strip()
    assert pt.make_example(1, 0).question != pt.make_example(0, 0).question or _png(
        pt.make_example(1, 0).image
    ) != _png(pt.make_example(0, 0).image)


def test_no_question_asks_for_a_diagnosis_or_superclass():
    exs = [pt.make_example(5, i) for i in range(150)]
    for e in exs:
        q = e.question.lower()
        assert not any(w.lower() in q for w in pt.FORBIDDEN_WORDS), e.question
        if e.task.startswith("e_"):  # ECG pages: codes appear neither in the question nor the answer
            assert not any(c in e.question.split() or c == e.answer for c in SUPERCLASSES), e


@pytest.mark.parametrize("task", pt.GENERIC_TASKS)
def test_every_generic_task_draws(task):
    rng = np.random.default_rng(0)
    image, question, answer = pretrain_generic.generic_example(task, rng)
    assert image.size == (pretrain_pages.PAGE_W, pretrain_pages.PAGE_H)
    assert question.endswith("?") or question.endswith(".")
    assert answer


def test_the_five_codes_and_yes_no_are_answer_targets():
    answers = set()
    for i in range(400):
        rng = np.random.default_rng([9, i])
        task = pt.GENERIC_TASKS[i % len(pt.GENERIC_TASKS)] if i % 3 else "g_label"
        answers.add(pretrain_generic.generic_example(task, rng)[2])
    assert set(SUPERCLASSES) <= answers
    assert {"yes", "no"} <= answers
    assert len({a for a in answers if a.isdigit() and len(a) == 1}) >= 7  # counts, squares, heights


TINY = RenderStyle.preset("tiny")  # 50 mm/s, 20 mm/mV


def _measured(conditions, seed):
    """Delineated features of four synthetic records with ``conditions`` (strip: the first 5 s)."""
    from ecgvlm.signals.delineate import delineate
    from ecgvlm.signals.synth import synthesize_record

    out = []
    for i in range(4):
        rec = synthesize_record(seed, i, conditions=conditions)
        d = delineate(rec.signal, rec.fs)
        d["strip_beats"] = sum(t < 5.0 for t in d["beats_s"])
        out.append(d)
    return out


def _answers(conditions, task):
    return [
        pretrain_ecg.ecg_answer(task, d, TINY, np.random.default_rng(i))[1]
        for i, d in enumerate(_measured(conditions, 77))
    ]


def test_ecg_answers_come_from_the_signal():
    # what the page shows, measured on the signal: wide QRS in bundle branch block, ST below the
    # baseline in ischaemia, tall R waves in hypertrophy, beats in the 5-s strip from the rate
    assert all(int(a) <= 5 for a in _answers(["NORM"], "e_qrs"))
    assert all(int(a) >= 6 for a in _answers(["CLBBB"], "e_qrs"))
    assert all(int(a) == 0 for a in _answers(["NORM"], "e_st_low"))
    assert all(int(a) >= 2 for a in _answers(["ISC_"], "e_st_low"))
    assert all(int(a) >= 5 for a in _answers(["ISCAL"], "e_t_down"))
    assert min(int(a) for a in _answers(["LVH"], "e_s_max")) > max(
        int(a) for a in _answers(["NORM"], "e_s_max")
    )
    assert all(int(a) >= 2 for a in _answers(["SBRAD"], "e_beats")) and all(
        int(a) <= 5 for a in _answers(["SBRAD"], "e_beats")
    )
    assert all(int(a) >= 8 for a in _answers(["STACH"], "e_beats"))


@pytest.mark.parametrize("task", pt.ECG_TASKS)
def test_every_ecg_task_draws(task):
    found = [e for e in (pt.make_example(2, i, yesno_fraction=0.0) for i in range(300)) if e.task == task]
    assert found, task
    assert all(e.answer and "{" not in e.question for e in found)


def _truths(conditions, task, pick=None):
    return [pretrain_yesno.yesno_truth(task, d, TINY, pick) for d in _measured(conditions, 78)]


def test_yes_no_answers_come_from_the_signal():
    assert _truths(["CLBBB"], "y_qrs") == [True] * 4 and _truths(["NORM"], "y_qrs") == [False] * 4
    assert _truths(["ISC_"], "y_st_low") == [True] * 4 and _truths(["NORM"], "y_st_low") == [False] * 4
    assert _truths(["ISCAL"], "y_t_down") == [True] * 4 and _truths(["NORM"], "y_t_down") == [False] * 4
    assert _truths(["STACH"], "y_rate") == [True] * 4 and _truths(["SBRAD"], "y_rate") == [False] * 4
    assert _truths(["STACH"], "y_beats") == [True] * 4 and _truths(["SBRAD"], "y_beats") == [False] * 4
    assert _truths(["NORM"], "y_neg_lead", "V1") == [True] * 4  # rS in V1
    assert _truths(["NORM"], "y_neg_lead", "II") == [False] * 4


def test_yes_no_questions_are_balanced_and_never_a_diagnosis():
    exs = [pt.make_example(4, i, yesno_fraction=1.0) for i in range(160)]
    assert {e.task for e in exs} == set(pt.YESNO_TASKS)
    assert {e.answer for e in exs} == {"yes", "no"}
    share = sum(e.answer == "yes" for e in exs) / len(exs)
    assert 0.4 <= share <= 0.6, share  # the answer's prior tells nothing; only the page does
    for e in exs:
        assert e.image.size == (440, 340) and "{" not in e.question
        q = e.question.lower()
        assert not any(w.lower() in q for w in pt.FORBIDDEN_WORDS), e.question
        assert not any(c in e.question.split() for c in SUPERCLASSES), e.question
