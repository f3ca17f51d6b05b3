"""Training: fine-tuning recipes (config, trainer loop, checkpoints, merge, sweeps) and base pretraining.

- ``ecgvlm.train.config.load_config(yaml_path, overrides) -> RecipeCfg`` (dotted ``key=value``).
- ``ecgvlm.train.recipe.train(cfg, resume=False) -> Path``: the output folder (adapter or partial
  weights, processor, config.yaml, train_log.jsonl, train_summary.json with trainable_params,
  samples_per_s, peak_mem_gib, wall_s, val_loss, tasks: rows per instruction task).
- ``ecgvlm.train.data``: ``InstructDataset``, ``select_sources``, ``epoch_batches`` (rows are read by
  ``ecgvlm.instruct.reader``; the chat layout and ``Collator`` are ``ecgvlm.model.chat``'s).
- ``ecgvlm.train.merge.merge(base, adapter, out)``: a merged checkpoint for external engines.
- ``ecgvlm.train.pretrain.pretrain(cfg, out)`` (``ecgvlm pretrain-base``): full-parameter pretraining
  of the tiny base (``pretrain_vision``, ``pretrain_text``: its first and last stages;
  ``pretrain_tasks``: the example stream, drawn from ``pretrain_generic``, ``pretrain_ecg`` and
  ``pretrain_yesno`` on ``pretrain_pages``' pooled ECG pages).
"""
