"""Fine-tuning recipes: config, collator, trainer loop, checkpoints, merge, sweeps."""
