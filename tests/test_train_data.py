"""Collator: chat layout, answer-only labels, multi-turn, tiles, truncation, bad rows, data order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _train_helpers import make_dataset
from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.reader import parse_row
from ecgvlm.model.chat import Collator, encode_messages
from ecgvlm.model.load import load_processor
from ecgvlm.model.tiny import build_tiny
from ecgvlm.train.config import load_config
from ecgvlm.train.data import InstructDataset, epoch_batches, select_sources

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    return load_processor(build_tiny(tmp_path_factory.mktemp("tiny") / "m", seed=0))


def test_labels_only_on_answers_multi_turn(proc, tmp_path):
    f = make_dataset(tmp_path, n=4, multi_turn=True)
    ds = InstructDataset(f, proc.tokenizer, max_len=512)
    tok = proc.tokenizer
    ids, labels = ds.items[1]
    assert tok.decode([t for t in labels if t != -100]) == "MI<|eot_id|>no<|eot_id|>"
    # same ids as the processor's own chat template
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "Which diagnostic superclass does this ECG show?"},
            ],
        },
        {"role": "assistant", "content": "MI"},
        {"role": "user", "content": "Is it normal?"},
        {"role": "assistant", "content": "no"},
    ]
    assert tok(proc.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"] == ids

    batch = Collator(proc)([ds[0], ds[1], ds[2]])
    image_id = tok.convert_tokens_to_ids("<|image|>")
    b, length = batch["input_ids"].shape
    assert length % 8 == 0
    assert batch["pixel_values"].shape == (3, 1, 1, 3, 224, 224)
    assert batch["aspect_ratio_ids"].shape == (3, 1) and batch["aspect_ratio_mask"].shape == (3, 1, 1)
    assert batch["cross_attention_mask"].shape == (3, length, 1, 1)
    for i in range(b):
        pos = int((batch["input_ids"][i] == image_id).nonzero()[0])
        n = int(batch["attention_mask"][i].sum())
        assert batch["labels"][i, pos] == -100
        assert batch["cross_attention_mask"][i, :pos].sum() == 0
        assert (
            batch["cross_attention_mask"][i, pos:n].all() and batch["cross_attention_mask"][i, n:].sum() == 0
        )
        assert (batch["labels"][i, n:] == -100).all()
    assert (batch["labels"] == image_id).sum() == 0


def test_roles_and_keys_variants(proc):
    row = {
        "id": "x",
        "image": "a.png",
        "conversation": [
            {"from": "user", "value": "Describe <image> please"},
            {"from": "assistant", "value": "ok"},
        ],
    }
    msgs = parse_row(row, 0).messages
    ids, labels = encode_messages(proc.tokenizer, msgs)
    text = proc.tokenizer.decode(ids)
    assert "Describe <|image|> please" in text and text.count("<|image|>") == 1
    # no <image> tag: the image goes first in the user turn
    ids, _ = encode_messages(
        proc.tokenizer, [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    )
    assert "<|end_header_id|>\n\n<|image|>Q" in proc.tokenizer.decode(ids)


def test_truncation_never_cuts_image(proc, tmp_path):
    f = make_dataset(tmp_path, n=2)
    ds = InstructDataset(f, proc.tokenizer, max_len=12)
    image_id = proc.tokenizer.convert_tokens_to_ids("<|image|>")
    assert all(len(ids) == 12 and image_id in ids for ids, _ in ds.items)
    with pytest.raises(ECGVLMError, match="image token"):
        InstructDataset(f, proc.tokenizer, max_len=5)


@pytest.mark.parametrize(
    "row, match",
    [
        ({"id": "a", "image": "images/p000.png"}, "row 0 \\(id 'a'\\): missing key 'conversations'"),
        (
            {"id": "a", "image": "images/p000.png", "conversations": [{"from": "human", "value": "q"}]},
            "no gpt/assistant turn",
        ),
        (
            {"id": "a", "image": "images/p000.png", "conversations": [{"from": "robot", "value": "q"}]},
            "turn 0 has role 'robot'",
        ),
    ],
)
def test_malformed_rows(proc, tmp_path, row, match):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps([row]))
    with pytest.raises(ECGVLMError, match=match) as e:
        InstructDataset(f, proc.tokenizer)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_bad_images(proc, tmp_path):
    f = make_dataset(tmp_path, n=2)
    rows = json.loads(f.read_text())
    rows[0]["image"] = "../../etc/passwd"
    rows[1]["image"] = "images/broken.png"
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    f.write_text(json.dumps(rows))
    ds = InstructDataset(f, proc.tokenizer)
    with pytest.raises(ECGVLMError, match="escapes"):
        ds[0]
    with pytest.raises(ECGVLMError, match="cannot read image"):
        ds[1]
    with pytest.raises(ECGVLMError, match="not found"):
        InstructDataset(tmp_path / "nope.json", proc.tokenizer)


def test_sources_and_order(proc, tmp_path):
    turns = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]
    rows = [
        parse_row({"id": str(i), "image": "x.png", "conversations": turns, "metadata": {"source": s}}, i)
        for i, s in enumerate(("ptbxl", "synth", "mimic", "synth"))
    ]
    assert len(select_sources(rows, "all")) == 4
    assert len(select_sources(rows, "-synth")) == 2
    assert len(select_sources(rows, "ptbxl+mimic")) == 2
    a = epoch_batches(10, 3, seed=1, epoch=0)
    assert a == epoch_batches(10, 3, seed=1, epoch=0) and a != epoch_batches(10, 3, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(10))
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    g = epoch_batches(8, 2, seed=0, epoch=0, lengths=lengths, group_by_length=True)
    assert all(abs(lengths[b[0]] - lengths[b[1]]) < 10 for b in g)


def test_curriculum_opens_the_first_epoch_with_its_tasks(proc, tmp_path):
    rows = [
        {"id": f"r{i}", "image": "x.png", "metadata": {"subtask": "superclass" if i % 3 else "report"},
         "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}
        for i in range(30)
    ]  # fmt: skip
    f = tmp_path / "train.json"
    f.write_text(json.dumps(rows))
    ds = InstructDataset(f, proc.tokenizer)
    opening = ds.curriculum("superclass:4", batch_size=3)
    assert opening[1] == 4 and all(rows[i]["metadata"]["subtask"] == "superclass" for i in opening[0])
    b = epoch_batches(30, 3, seed=2, epoch=0, lengths=ds.lengths(), group_by_length=True, opening=opening)
    assert all(ds.tasks()[i] == "superclass" for batch in b[:4] for i in batch)
    assert sorted(i for batch in b for i in batch) == list(range(30))  # every row once per epoch
    assert b == epoch_batches(
        30, 3, seed=2, epoch=0, lengths=ds.lengths(), group_by_length=True, opening=opening
    )
    # later epochs are plain shuffles; a curriculum longer than its rows is cut to what they fill
    assert epoch_batches(30, 3, 2, 1, opening=opening) == epoch_batches(30, 3, 2, 1)
    assert ds.curriculum("superclass:100", batch_size=3)[1] == 20 // 3
    assert ds.curriculum(None, 3) == ([], 0)
    for bad in ("superclass", "superclass:x", "mcq:3"):
        with pytest.raises(ECGVLMError, match="curriculum"):
            ds.curriculum(bad, 3)


def test_config_overrides(tmp_path):
    cfg = load_config(REPO / "configs/tiny_cpu.yaml", ["lora.r=16", "train.max_steps=20", "tuning=partial"])
    assert (cfg.lora.r, cfg.train.max_steps, cfg.tuning) == (16, 20, "partial")
    paper = load_config(REPO / "configs/paper_lora_11b.yaml")
    assert (paper.lora.r, paper.lora.alpha, paper.lora.dropout) == (64, 128, 0.05)
    assert (paper.train.lr, paper.train.epochs, paper.train.batch_size, paper.train.grad_accum) == (
        2e-4,
        3,
        4,
        1,
    )
    assert paper.train.gradient_checkpointing and paper.train.precision == "bf16"
    assert json.loads(Path(paper.deepspeed).read_text())["zero_optimization"]["stage"] == 2
    with pytest.raises(ECGVLMError, match="unknown key"):
        load_config(REPO / "configs/tiny_cpu.yaml", ["lora.rank=16"])
    # YAML 1.1 reads 3e-4 as text; a float field must still get the number, and nonsense must stop
    assert load_config(None, ["train.lr=3e-4"]).train.lr == 3e-4
    with pytest.raises(ECGVLMError, match="train.lr must be a number"):
        load_config(None, ["train.lr=fast"])


def test_multi_tile_batching(proc):
    """A 4-tile processor: a wide page fills 2 tiles, a square one 1; masks follow each image."""
    from PIL import Image

    proc.image_processor.max_image_tiles = 4
    try:
        tok = proc.tokenizer
        msgs = [{"role": "user", "content": "<image>\nQ"}, {"role": "assistant", "content": "A"}]
        ids, labels = encode_messages(
            tok, parse_row({"id": "x", "image": "x.png", "conversations": msgs}, 0).messages
        )
        items = [
            {"input_ids": ids, "labels": labels, "image": Image.new("RGB", (448, 224), "white")},
            {"input_ids": ids[:-1], "labels": labels[:-1], "image": Image.new("RGB", (224, 224), "white")},
        ]
        batch = Collator(proc)(items)
    finally:
        proc.image_processor.max_image_tiles = 1
    assert batch["pixel_values"].shape == (2, 1, 4, 3, 224, 224)
    assert batch["aspect_ratio_mask"].tolist() == [[[1, 1, 0, 0]], [[1, 0, 0, 0]]]
    cross = batch["cross_attention_mask"]
    assert cross.shape[-2:] == (1, 4)
    pos = ids.index(tok.convert_tokens_to_ids("<|image|>"))
    assert cross[0, pos : len(ids), 0].tolist() == [[1, 1, 0, 0]] * (len(ids) - pos)
    assert cross[1, pos : len(ids) - 1, 0].tolist() == [[1, 0, 0, 0]] * (len(ids) - 1 - pos)
    assert cross[1, len(ids) - 1 :].sum() == 0
