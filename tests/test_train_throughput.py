"""The throughput benchmark's 11b-random code path, run on CPU at tiny sizes (shapes, both rows, losses)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from ecgvlm.model.tiny import TINY_TEXT, mllama_config

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_random_config_path_both_rows(bench):
    vision = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_global_layers": 1,
        "attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 56,
        "patch_size": 14,
        "max_num_tiles": 4,
        "intermediate_layers_indices": [0, 1],
    }
    text = {
        **TINY_TEXT,
        "vocab_size": 500,
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "intermediate_size": 128,
        "cross_attention_layers": [1, 3],
        "bos_token_id": 1,
        "pad_token_id": 0,
        "eos_token_id": 2,
    }
    config = mllama_config(vision, text, image_token_index=500)
    rows = bench.run(
        "custom",
        steps=2,
        warmup=1,
        batch_size=2,
        text_len=24,
        answer_len=6,
        config=config,
        device="cpu",
        every_n_layers=2,
    )
    assert [r["row"].split()[0] for r in rows] == ["hf-peft", "ecgvlm"]
    for r in rows:
        assert r["samples_s"] > 0 and math.isfinite(r["loss_first"])
    # same weights and batches; the only difference is the padded tiles' influence
    assert abs(rows[0]["loss_first"] - rows[1]["loss_first"]) < 0.05 * rows[0]["loss_first"]


def test_gpu_mode_refused_without_gpu(bench, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert bench.main(["--mode", "11b-random"]) == 2
    assert "CUDA" in capsys.readouterr().err
