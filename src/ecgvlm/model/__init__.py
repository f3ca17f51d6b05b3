"""Mllama models: the tiny embedded preset, loading local checkpoints, the chat format, LoRA presets.

- ``ecgvlm.model.chat``: ``encode_messages``, ``truncate``, ``Collator`` and ``IGNORE``: the chat
  template layout and batching shared by train, evaluate, serve and pretraining.
- ``ecgvlm.model.base``: ``shipped_base()``, ``default_base()``, ``build_random_tiny(folder, seed)``:
  which base model to use when none is named.

- ``ecgvlm.model.tiny.build_tiny(out_dir, seed=0, **overrides) -> Path``: the tiny Mllama +
  tokenizer + processor, offline and deterministic; ``llama_11b_config()`` builds the 11B config.
- ``ecgvlm.model.load.load_model(path, dtype=None, device=None)``, ``load_processor(path)``,
  ``load_model_and_processor(path, adapter=None, dtype=None, device=None)``: any local Mllama
  checkpoint (never the network), optionally with a LoRA adapter or partial weights.
- ``ecgvlm.model.tuning.apply_tuning(model, preset, LoraSettings(r, alpha, dropout), target_regex)``:
  presets ``paper``, ``language``, ``partial``, ``regex``.
- ``ecgvlm.model.infer.generate(...)`` and ``option_probs(...)``: batched scoring for evaluate/serve.
- ``ecgvlm.model.scoring.batched_option_probs(...)`` (many questions per image, the image encoded
  once) and ``label_set_probs(...)`` (per-label probabilities from list answers such as "MI, STTC").
- ``ecgvlm.model.tiles.shrink_tiles(model, 1)``: skip padded tiles for 1-tile pages.
"""
