"""The tiny Mllama preset: Llama-3.2-11B-Vision's architecture at ~10M parameters, built offline.

Same structure as the 11B (local + gated global vision layers, intermediate-layer features,
tile embeddings, cross-attention layers in the text model, `<|image|>` outside lm_head's range),
its own tokenizer (``ecgvlm.model.tokenizer``) and a real ``MllamaProcessor``. A random Mllama has
its gates at 0, which blocks every gradient to vision, projector and cross-attention, so the
builder sets them non-zero. The same seed gives the same files, byte for byte.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ecgvlm.io import atomic_write_json, share_files

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

TINY_VISION: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_global_layers": 2,
    "attention_heads": 4,
    "intermediate_size": 512,
    "image_size": 224,
    "patch_size": 14,
    "max_num_tiles": 1,
    "supported_aspect_ratios": [[1, 1]],
    "intermediate_layers_indices": [1, 3],
}
TINY_TEXT: dict[str, Any] = {
    "hidden_size": 256,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 768,
    "cross_attention_layers": [3, 7],
    "max_position_embeddings": 131072,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}

# Llama-3.2-11B-Vision's config.json (reference section 2), for meta-device counting and benchmarks.
LLAMA_11B_VISION: dict[str, Any] = {
    "hidden_size": 1280,
    "num_hidden_layers": 32,
    "num_global_layers": 8,
    "attention_heads": 16,
    "intermediate_size": 5120,
    "image_size": 560,
    "patch_size": 14,
    "max_num_tiles": 4,
    "intermediate_layers_indices": [3, 7, 15, 23, 30],
    "vision_output_dim": 7680,
    "norm_eps": 1e-5,
}
LLAMA_11B_TEXT: dict[str, Any] = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "num_hidden_layers": 40,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "pad_token_id": 128004,
    "rope_parameters": dict(TINY_TEXT["rope_parameters"]),
}


def mllama_config(vision: dict, text: dict, image_token_index: int):
    from transformers import MllamaConfig

    vision = dict(vision)
    n_feat = len(vision["intermediate_layers_indices"]) + 1
    vision.setdefault("vision_output_dim", vision["hidden_size"] * n_feat)
    return MllamaConfig(vision_config=vision, text_config=dict(text), image_token_index=image_token_index)


def llama_11b_config(max_num_tiles: int = 4):
    """The 11B config built in code (no download); ``max_num_tiles=1`` is the padded-tile-free variant."""
    vision = dict(LLAMA_11B_VISION)
    if max_num_tiles != 4:
        vision["max_num_tiles"] = max_num_tiles
        vision["supported_aspect_ratios"] = [[1, 1]] if max_num_tiles == 1 else None
    return mllama_config(vision, LLAMA_11B_TEXT, image_token_index=128256)


def set_gates(model, value: float = 0.5) -> None:
    """Make every tanh gate non-zero so gradients reach vision, projector and cross-attention."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("cross_attn_attn_gate", "cross_attn_mlp_gate", "gate"):
                p.fill_(value)
            elif leaf in ("gate_attn", "gate_ffn"):
                p.fill_(math.pi / 4)


def build_tiny(out_dir: str | Path, seed: int = 0, vocab_size: int = 2048, **overrides: Any) -> Path:
    """Build the tiny model + tokenizer + processor into ``out_dir`` and return it.

    ``overrides`` update the configs: ``vision={"image_size": 448}``, ``text={"hidden_size": 128}``,
    or ``gate=0.5``. Offline and deterministic in ``seed``.
    """
    import torch
    from transformers import MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    from ecgvlm.model.tokenizer import IMAGE_TOKEN, make_tokenizer_portable, train_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(out_dir / "_tok", vocab_size=vocab_size)
    image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    assert image_id == len(tok) - 1, "the image token must be the last id"

    vision = {**TINY_VISION, **overrides.get("vision", {})}
    if vision["max_num_tiles"] == 1:
        vision["supported_aspect_ratios"] = [[1, 1]]  # the default list demands max_num_tiles=4
    text = {
        **TINY_TEXT,
        "vocab_size": image_id,  # lm_head covers text tokens only; embed_tokens has +8 rows
        "bos_token_id": tok.convert_tokens_to_ids("<|begin_of_text|>"),
        "eos_token_id": [
            tok.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")
        ],
        "pad_token_id": tok.convert_tokens_to_ids("<|finetune_right_pad_id|>"),
        **overrides.get("text", {}),
    }
    config = mllama_config(vision, text, image_token_index=image_id)

    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config).float().eval()
    set_gates(model, overrides.get("gate", 0.5))
    model.generation_config.bos_token_id = text["bos_token_id"]
    model.generation_config.eos_token_id = text["eos_token_id"]
    model.generation_config.pad_token_id = text["pad_token_id"]
    model.save_pretrained(out_dir, safe_serialization=True)

    image_processor = MllamaImageProcessorPil(
        size={"height": vision["image_size"], "width": vision["image_size"]},
        max_image_tiles=vision["max_num_tiles"],
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = MllamaProcessor(
        image_processor=image_processor, tokenizer=tok, chat_template=tok.chat_template
    )
    processor.save_pretrained(out_dir)
    make_tokenizer_portable(out_dir)
    share_files(out_dir)
    import shutil

    shutil.rmtree(out_dir / "_tok")
    atomic_write_json(
        out_dir / "ecgvlm_tiny.json", {"seed": seed, "vocab_size": vocab_size, "overrides": overrides}
    )
    return out_dir


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
