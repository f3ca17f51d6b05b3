"""Scoring: ECGBench-compatible and strict metrics, report judges, tables, the CNN baseline.

Public API (import from the submodules; nothing heavy is imported here):

* ``score``: ``score(predictions, benchmark, mode="strict", val_predictions=None, judge=JudgeSettings())
  -> Scored`` (``.mode``, ``.metrics``, ``.headline()``, ``.warnings()``), ``write_metrics(out, scored)``,
  ``score_and_write(...)`` (what ``ecgvlm score`` does), ``BENCHMARK_TASKS``, ``load_rows``
* ``labels``: ``BENCHMARK_LABELS``, ``ecgbench_labels(text, labels)``, ``extract_labels(text, benchmark)``,
  ``gold_labels(gold, benchmark)``, ``find_mentions(text)``
* ``ecgbench.score_ecgbench(preds, labels) -> dict``
* ``strict.score_strict(preds, benchmark, val_preds=None, n_boot=1000, seed=0) -> dict``
* ``mcq.score_mcq(preds, mode="ecgbench"|"strict") -> dict``; ``measure.score_measure(preds) -> dict``
* ``judges``: ``Judge``, ``JudgeScore``, ``make_judge("findings"|"llm")``, ``score_reports(preds, judge)``;
  ``judges.findings.FindingsJudge``; ``judges.llm.LLMJudge``
* ``dependence.image_dependence(rows) -> dict`` (do the outputs depend on the image?),
  ``dependence.loops(text)``, ``dependence.dependence_warnings(dep, what)``
* ``runs``: ``load_run(path, name) -> Run`` (the run folder's layout there); ``table``: ``write_table(runs, out)``
  (Table I, with ``table_plots``' figures); ``sweep_table``: ``write_sweep(sweep, out)`` (the sweep layout there)
* ``runner.evaluate_local(model, data, out, adapter=..., tasks=..., ...) -> dict`` (what ``ecgvlm evaluate
  --model`` does: answers a test file into ``out/predictions.jsonl``)
* CLI: ``ecgvlm evaluate`` (``cli_evaluate``, over ``runner`` and ``endpoint``), ``ecgvlm score``
  (``cli_score``, a thin layer over ``score``), ``ecgvlm table`` (``cli_table``)
"""
