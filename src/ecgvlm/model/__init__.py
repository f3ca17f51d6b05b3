"""Mllama models: the tiny embedded preset, loading local checkpoints, LoRA and tuning presets."""
