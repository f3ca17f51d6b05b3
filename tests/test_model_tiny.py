"""The tiny Mllama preset, local loading, tuning presets (incl. the 11B on the meta device)."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

from ecgvlm.errors import ECGVLMError
from ecgvlm.model.load import load_model, load_model_and_processor, load_processor
from ecgvlm.model.tiny import build_tiny, llama_11b_config
from ecgvlm.model.tuning import apply_tuning, lora_param_count, lora_targets, partial_names, trainable_summary


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny") / "m", seed=0)


def _digest(folder):
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_weights(tiny, tmp_path):
    again = build_tiny(tmp_path / "again", seed=0)
    assert _digest(again) == _digest(tiny)
    other = build_tiny(tmp_path / "other", seed=1)
    d = _digest(other)
    assert d["tokenizer.json"] == _digest(tiny)["tokenizer.json"]
    assert d["model.safetensors"] != _digest(tiny)["model.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert {f.stat().st_mode & 0o777 for f in other.iterdir() if f.is_file()} == {0o666 & ~umask}


def test_structure_matches_11b_shape(tiny):
    model, proc = load_model_and_processor(tiny)
    cfg = model.config
    v, t = cfg.vision_config, cfg.text_config
    assert type(model).__name__ == "MllamaForConditionalGeneration"
    assert len(model.model.vision_model.transformer.layers) == 4
    assert len(model.model.vision_model.global_transformer.layers) == 2
    assert v.vision_output_dim == v.hidden_size * (len(v.intermediate_layers_indices) + 1)
    assert t.cross_attention_layers == [3, 7]
    assert type(model.model.language_model.layers[3]).__name__ == "MllamaCrossAttentionDecoderLayer"
    # <|image|> is the last id, outside lm_head's range (as 128256 is for the 11B)
    tok = proc.tokenizer
    assert cfg.image_token_index == tok.convert_tokens_to_ids("<|image|>") == t.vocab_size == len(tok) - 1
    assert model.lm_head.out_features == t.vocab_size
    assert tok.pad_token == "<|finetune_right_pad_id|>"
    for name, p in model.named_parameters():
        if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate", "gate_attn", "gate_ffn", ".gate")):
            assert p.abs().min() > 0.1, name
    assert proc.image_processor.max_image_tiles == v.max_num_tiles == 1
    assert proc.image_processor.size["height"] == v.image_size
    assert 5e6 < sum(p.numel() for p in model.parameters()) < 15e6


def test_chat_template_is_llama_vision_format(tiny):
    proc = load_processor(tiny)
    msgs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What rhythm?"}]},
        {"role": "assistant", "content": "Sinus rhythm."},
    ]
    text = proc.apply_chat_template(msgs, tokenize=False)
    assert text == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>What rhythm?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nSinus rhythm.<|eot_id|>"
    )
    gen = proc.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert gen.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    with pytest.raises(Exception, match="system"):
        proc.apply_chat_template([{"role": "system", "content": "x"}] + msgs, tokenize=False)
    # every special token is one id; codes round-trip
    tok = proc.tokenizer
    for s in ("<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|image|>"):
        assert len(tok(s, add_special_tokens=False)["input_ids"]) == 1
    assert tok.decode(tok("STTC, MI", add_special_tokens=False)["input_ids"]) == "STTC, MI"


def test_forward_with_real_processor(tiny):
    from PIL import Image

    model, proc = load_model_and_processor(tiny)
    text = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    batch = proc(
        images=[[Image.new("RGB", (300, 200), "white")]],
        text=[text],
        add_special_tokens=False,
        return_tensors="pt",
    )
    assert batch["pixel_values"].shape == (1, 1, 1, 3, 224, 224)
    assert batch["cross_attention_mask"].shape[-2:] == (1, 1)
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape[-1] == model.config.text_config.vocab_size
    assert torch.isfinite(out.logits).all()


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ECGVLMError, match="no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ECGVLMError):
        load_model(tmp_path)


def test_presets_on_tiny(tiny):
    model = load_model(tiny)
    vision = [n for n in lora_targets(model, "paper") if ".vision_model." in n]
    assert len(vision) == (4 + 2) * 6  # q, k, v, o, fc1, fc2 in every local and global layer
    assert "model.multi_modal_projector" in lora_targets(model, "paper")
    assert all(n.startswith("model.language_model.") for n in lora_targets(model, "language"))
    assert any(".cross_attn." in n for n in lora_targets(model, "language"))
    assert lora_targets(model, "regex", r"\.fc[12]$") == [n for n in vision if n.endswith(("fc1", "fc2"))]
    with pytest.raises(ECGVLMError):
        lora_targets(model, "regex", r"nothing_matches_this")
    part = partial_names(model)
    assert any("multi_modal_projector" in n for n in part)
    assert {n.split(".")[3] for n in part if ".layers." in n} == {"3", "7"}
    tuned = apply_tuning(model, "partial")
    trainable, _ = trainable_summary(tuned)
    assert trainable == sum(p.numel() for n, p in tuned.named_parameters() if n in set(part))


def test_paper_preset_on_11b_meta_config():
    """Reference section 1: 269,451,264 trainable LoRA params at r=64, 240 LoRA modules in vision."""
    with torch.device("meta"):
        from transformers import MllamaForConditionalGeneration

        model = MllamaForConditionalGeneration(llama_11b_config())
    targets = lora_targets(model, "paper")
    assert sum(n.startswith("model.vision_model.") for n in targets) == 240
    assert lora_param_count(model, targets, 64) == 269_451_264
    with torch.device("meta"):
        peft_model = apply_tuning(model, "paper")
    trainable, total = trainable_summary(peft_model)
    assert trainable == 269_451_264
    assert 0.024 < trainable / total < 0.026
    lora_vision = {
        n.rsplit(".lora_A", 1)[0]
        for n, _ in peft_model.named_parameters()
        if ".lora_A." in n and ".vision_model." in n
    }
    assert len(lora_vision) == 240


def test_shrink_tiles_gives_a_working_one_tile_model(tmp_path):
    from PIL import Image

    from ecgvlm.model.tiles import shrink_tiles

    ratios = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]
    path = build_tiny(tmp_path / "t4", seed=0, vision={"max_num_tiles": 4, "supported_aspect_ratios": ratios})
    model, proc = load_model_and_processor(path)
    shrink_tiles(model, 1)
    proc.image_processor.max_image_tiles = 1
    text = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>hi<|eot_id|>"
    batch = proc(
        images=[[Image.new("RGB", (224, 224), "white")]],
        text=[text],
        add_special_tokens=False,
        return_tensors="pt",
    )
    assert batch["pixel_values"].shape[2] == 1
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.logits).all()
    emb = model.model.vision_model.gated_positional_embedding.tile_embedding
    assert emb.weight.shape[0] == 2
    with torch.device("meta"):
        from transformers import MllamaForConditionalGeneration

        m1 = MllamaForConditionalGeneration(llama_11b_config(max_num_tiles=1))
    assert m1.config.vision_config.supported_aspect_ratios == [[1, 1]]
