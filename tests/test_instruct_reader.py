"""Reading published ECGInstruct / ECGBench shapes, and one clear message per malformed row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgvlm.cli import main as cli_main
from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct import reader
from ecgvlm.instruct.reader import check_file, iter_json, iter_rows

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

# Ten rows in the published shapes: ECGInstruct training rows (conversations, human/gpt,
# <image>\n first), ECGBench test rows (conversation, user/assistant, no <image> token), ECG-QA
# rows with list-valued answers, a multiple choice, a report, a multi-turn row, a system turn.
PUBLISHED = [
    {
        "id": "mimic-feature-1",
        "image": "mimic/p1000/s1.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is the rhythm of this ECG?"},
            {"from": "gpt", "value": "Sinus rhythm with first degree AV block."},
        ],
        "metadata": {"subtask": "rhythm", "type": "open", "source": "mimic"},
    },
    {
        "id": "ptbxl-morph-2",
        "image": "ptbxl/00002_hr.png",
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe the QRS morphology."},
            {"from": "gpt", "value": "Wide QRS with an RSR' pattern in V1."},
            {"from": "human", "value": "What does it suggest?"},
            {"from": "gpt", "value": "Right bundle branch block."},
        ],
        "metadata": {"subtask": "morphology", "type": "open", "source": "ptbxl"},
    },
    {
        "id": "ptb-report-07190_hr-0",
        "image": "test_images/ptb_test_v4/07190_hr-0.png",
        "conversation": [
            {"from": "user", "value": "Please write a clinical report based on this ECG image."},
            {"from": "assistant", "value": "Sinus rhythm, normal axis, normal ECG."},
        ],
    },
    {
        "id": "ptb-xl-super-11",
        "image": "test_images/ptb_super/11.png",
        "conversation": [
            {"from": "user", "value": "<image>\nWhich superclasses apply? NORM, MI, STTC, CD, HYP."},
            {"from": "assistant", "value": "MI, STTC"},
        ],
    },
    {
        "id": "ecgbench-mmmu-ecg-3",
        "image": "test_images/mmmu/3.png",
        "conversation": [
            {"from": "user", "value": "What is shown?\n(A) AFIB (B) SR (C) 3AVB (D) WPW"},
            {"from": "assistant", "value": "C"},
        ],
    },
    {
        "id": "ecgqa-4",
        "image": "test_images/ecgqa/4.png",
        "conversation": [
            {"from": "user", "value": "Does this ECG show non-diagnostic T abnormalities?"},
            {"from": "assistant", "value": ["yes"]},
        ],
    },
    {
        "id": "ecgqa-5",
        "image": "test_images/ecgqa/5.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhich leads show ST depression?"},
            {"from": "gpt", "value": ["lead I", "lead aVL", "lead V5"]},
        ],
    },
    {
        "id": "code15-6",
        "image": "code15/6.png",
        "conversations": [
            {"from": "human", "value": "<image>\nDoes the ECG show 1dAVb, RBBB, LBBB, SB, ST or AF?"},
            {"from": "gpt", "value": "RBBB"},
        ],
        "metadata": {"subtask": "code15", "type": "close", "source": "code15"},
    },
    {
        "id": "cpsc-7",
        "image": "cpsc/7.png",
        "conversations": [
            {"from": "system", "value": "You are a cardiologist."},
            {"from": "human", "value": "<image>\nList the CPSC labels."},
            {"from": "gpt", "value": "AF, PVC"},
        ],
    },
    {
        "id": "arena-8",
        "image": "arena/8.jpg",
        "conversation": [
            {"from": "USER", "value": "Interpret this ECG step by step."},
            {"from": "Assistant", "value": "Step 1: regular rhythm. Answer: sinus rhythm."},
        ],
    },
]


def _write_images(root: Path, rows: list[dict]) -> None:
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("image"), str) and ".." not in row["image"]:
            p = root / row["image"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(PNG)


@pytest.mark.parametrize("fmt", ["list", "jsonl", "list-tiny-chunks"])
def test_published_shapes_load(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_images(tmp_path, PUBLISHED)
    path = tmp_path / ("rows.jsonl" if fmt == "jsonl" else "rows.json")
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in PUBLISHED))
    else:
        path.write_text(json.dumps(PUBLISHED, indent=1))
    if fmt == "list-tiny-chunks":
        monkeypatch.setattr(reader, "CHUNK", 7)  # every row straddles many chunk boundaries
    rows = list(iter_rows(path))
    assert [r.id for r in rows] == [r["id"] for r in PUBLISHED]
    for r in rows:
        assert r.turns[0]["from"] == "human" and r.turns[0]["value"].startswith("<image>")
        assert r.turns[1]["from"] == "gpt" and r.answer.strip()
    by_id = {r.id: r for r in rows}
    assert (
        by_id["ptb-report-07190_hr-0"].question == "Please write a clinical report based on this ECG image."
    )
    assert by_id["ecgqa-5"].answer == "lead I, lead aVL, lead V5"
    assert by_id["ecgqa-5"].answer_list == ["lead I", "lead aVL", "lead V5"]
    assert by_id["ecgqa-4"].answer == "yes"
    assert by_id["ptbxl-morph-2"].turns[3]["value"] == "Right bundle branch block."
    assert by_id["cpsc-7"].system == "You are a cardiologist."
    assert by_id["ecgbench-mmmu-ecg-3"].answer == "C"
    s = check_file(path)
    assert s.rows == 10 and not s.skipped
    assert s.shapes["conversation/user-assistant"] == 5


def test_empty_list_and_blank_jsonl(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("  [ ]\n")
    (tmp_path / "b.jsonl").write_text("\n\n")
    assert list(iter_json(tmp_path / "a.json")) == []
    assert list(iter_json(tmp_path / "b.jsonl")) == []


GOOD = {
    "id": "ok",
    "image": "img.png",
    "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}],
}

# (malformed row, short reason counted in skip mode, words the one-line error must contain)
BAD = [
    ({**GOOD, "id": "m1", "image": "nothere.png"}, "image file missing", "image file missing: nothere.png"),
    (
        {
            **GOOD,
            "id": "m2",
            "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A"}],
        },
        "no <image> token",
        "no <image> token in the first human turn",
    ),
    (
        {**GOOD, "id": "m3", "image": "../outside.png"},
        "image path escapes the dataset root",
        "escapes the dataset root",
    ),
    (
        {
            **GOOD,
            "id": "m4",
            "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "  "}],
        },
        "empty answer",
        "answer 0 is empty",
    ),
    (
        {
            **GOOD,
            "id": "m5",
            "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": []}],
        },
        "empty answer",
        "answer 0 is empty",
    ),
    (
        {k: v for k, v in GOOD.items() if k != "image"} | {"id": "m6"},
        "missing key 'image'",
        "missing key 'image'",
    ),
    ({k: v for k, v in GOOD.items() if k != "id"}, "missing key 'id'", "missing key 'id'"),
    (
        {"id": "m8", "image": "img.png"},
        "missing key 'conversations'",
        "missing key 'conversations' (or 'conversation')",
    ),
    (
        {
            **GOOD,
            "id": "m9",
            "conversations": [{"from": "doctor", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}],
        },
        "unknown role",
        "turn 0 has role 'doctor'",
    ),
    (
        {
            **GOOD,
            "id": "m10",
            "conversations": [{"from": "gpt", "value": "<image>\nQ?"}, {"from": "human", "value": "A"}],
        },
        "wrong role order",
        "turn 0 is from gpt but a human turn was expected",
    ),
    (
        {**GOOD, "id": "m11", "conversations": [{"from": "human", "value": "<image>\nQ?"}]},
        "no answer turn",
        "no gpt/assistant turn",
    ),
    (
        {**GOOD, "id": "m12", "conversations": "Q? A"},
        "conversations is not a list of turns",
        "must be a non-empty list",
    ),
    (["not", "an", "object"], "row is not a JSON object", "row is a list"),
    ({**GOOD, "id": "ok"}, "duplicate id", "appears earlier"),
]


@pytest.mark.parametrize("bad,reason,words", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_each_malformed_row_has_its_own_message(tmp_path: Path, bad, reason: str, words: str) -> None:
    _write_images(tmp_path, [GOOD])
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([GOOD, bad]))
    with pytest.raises(ECGVLMError) as e:
        list(iter_rows(path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and "row 1" in msg and words in msg
    s = check_file(path, on_error="skip")
    assert s.rows == 1 and dict(s.skipped) == {reason: 1}


def test_skip_mode_counts_each_reason(tmp_path: Path) -> None:
    _write_images(tmp_path, [GOOD])
    rows = [GOOD] + [b for b, _, _ in BAD]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = check_file(path, on_error="skip")
    assert s.rows == 1
    assert sum(s.skipped.values()) == len(BAD)
    assert s.skipped["empty answer"] == 2 and len(s.skipped) == len(BAD) - 1
    assert all("row " in m for m in s.first_error.values())


@pytest.mark.parametrize(
    "text,words",
    [
        ("[" + json.dumps(GOOD) + ', {"id": ', "row 1: invalid JSON"),
        ("[" + json.dumps(GOOD) + " " + json.dumps(GOOD) + "]", "row 1: expected ','"),
        (json.dumps(GOOD) + "\n{oops}\n", "line 2: invalid JSON"),
    ],
)
def test_broken_json_names_the_row(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "rows.json"
    path.write_text(text)
    with pytest.raises(ECGVLMError, match=words):
        list(iter_rows(path, check_images=False))


def test_image_token_policy(tmp_path: Path) -> None:
    row = {
        "id": "b",
        "image": "img.png",
        "conversation": [{"from": "user", "value": "Q?"}, {"from": "assistant", "value": "A"}],
    }
    _write_images(tmp_path, [row])
    path = tmp_path / "bench.json"
    path.write_text(json.dumps([row]))
    assert list(iter_rows(path))[0].turns[0]["value"] == "<image>\nQ?"  # ECGBench rows: added
    with pytest.raises(ECGVLMError, match="no <image> token"):
        list(iter_rows(path, image_token="require"))


def test_accessors_are_what_train_and_evaluate_read(tmp_path: Path) -> None:
    """One set of accessors: the chat for training, the prompt/question/answer/task/gold for evaluation."""
    row = {
        "id": 7,
        "image": "img.png",
        "conversations": [
            {"role": "system", "content": "You read ECGs."},
            {"role": "user", "content": "<image>\n Which superclass? "},
            {"role": "assistant", "content": ["MI", "CD"]},
        ],
        "metadata": {"subtask": "superclass", "gold": {"superclasses": ["MI", "CD"]}},
    }
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (got,) = reader.read_rows(path)  # image files are not checked (img.png does not exist)
    assert (got.id, got.image, got.task, got.gold) == (
        "7",
        "img.png",
        "superclass",
        {"superclasses": ["MI", "CD"]},
    )
    assert (got.prompt, got.question, got.answer) == (
        "<image>\n Which superclass? ",
        "Which superclass?",
        "MI, CD",
    )
    assert got.messages == [
        {"role": "system", "content": "You read ECGs."},
        {"role": "user", "content": "<image>\n Which superclass? "},
        {"role": "assistant", "content": "MI, CD"},
    ]
    no_token = {**row, "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A"}]}
    path.write_text(json.dumps(no_token) + "\n")
    assert (
        reader.read_rows(path)[0].prompt == "<image>\nQ?"
    )  # the page goes first, as the chat layout puts it
    assert reader.read_rows(path)[0].gold == {"superclasses": ["MI", "CD"]}
    with pytest.raises(ECGVLMError, match="file not found"):
        reader.read_rows(tmp_path / "nope.json")


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_images(tmp_path, PUBLISHED)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(PUBLISHED))
    assert cli_main(["dataset", "check", str(good)]) == 0
    assert "rows ok: 10" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(PUBLISHED + [b for b, _, _ in BAD[:4]]))
    assert cli_main(["dataset", "check", str(bad), "--skip"]) == 1
    out = capsys.readouterr().out
    assert "rows ok: 10" in out and "rows skipped: 4" in out and "image file missing" in out
    assert cli_main(["dataset", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 10 (id 'm1'): image file missing" in err
