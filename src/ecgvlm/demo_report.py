"""OUT/report.md of `ecgvlm demo`: Table I (also written to OUT/table/), whether each model reads
the image, the training budget of each column, the stage times and example interpretations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ecgvlm.io import atomic_write_text

if TYPE_CHECKING:
    from ecgvlm.evaluate.runs import Run

SCORE_TEXT = {
    "codes": "the first-token probability of each superclass code as the answer to the superclass question",
    "yesno": 'P("yes") to "Does this ECG show <superclass>?", asked per superclass',
}


def write_report(
    out: Path, runs: list[Path], names: list[str], options: dict, done: dict[str, float]
) -> None:
    """Write OUT/table/ and OUT/report.md for the run folders ``runs`` (columns ``names``);
    ``options`` are the demo's, ``done`` the finished stages' wall times."""
    from ecgvlm.evaluate.table import markdown_table, run_dependence, table_rows

    loaded = write_table_files(out / "table", runs, names)
    # Table I alone: table.md also holds the image check, which the report shows per class below.
    table = markdown_table(loaded, table_rows(loaded))
    reading, warned = reading_section(names, [run_dependence(r) for r in loaded])
    examples = example_lines(out)
    lines = [
        "# ecgvlm demo: Table I on the embedded default",
        "",
        "Synthetic labelled 12-lead ECGs rendered as printouts; the tiny Mllama base before and after",
        "LoRA fine-tuning with the paper's settings; the CNN baseline on the same images and splits.",
        f"`strict` AUC is a ranking ROC-AUC from {SCORE_TEXT[options['scores']]}; `ecgbench`",
        'follows ECGBench\'s published rules (its "AUC" is computed on binary predictions).',
        "",
        run_line(options),
        "",
        *[line for w in warned for line in (f"**WARNING: {w}**", "")],
        "## Table I",
        "",
        table.strip(),
        "",
        "![ROC curves](table/roc.png)",
        "",
        "![Per-class AUC](table/per_class.png)",
        "",
        *reading,
        *training_budget(out, names, done),
        "## Stage times (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in done.items()],
        "",
        "## Example interpretations (fine-tuned model)",
        "",
        *examples,
    ]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def write_table_files(table_dir: Path, runs: list[Path], names: list[str]) -> list[Run]:
    """What `ecgvlm table RUN... --names ... --out table_dir` writes (Table I with the image check,
    table.json, the figures) and prints; returns the loaded runs."""
    from ecgvlm.evaluate.runs import load_run
    from ecgvlm.evaluate.table import write_table
    from ecgvlm.outputs import claim_output_dir

    claim_output_dir(table_dir, "table")
    loaded = [load_run(r, n) for r, n in zip(runs, names)]
    print(write_table(loaded, table_dir)["markdown"])
    return loaded


def example_lines(out: Path) -> list[str]:
    """The fine-tuned model's interpretation of the first three test pages, beside their gold labels."""
    from ecgvlm.instruct.reader import read_rows
    from ecgvlm.serve.interpreter import ECGInterpreter

    examples = []
    seen = set()
    for row in read_rows(out / "data" / "test.json"):
        if row.image not in seen and len(examples) < 3:
            seen.add(row.image)
            examples.append(row)
    interp = ECGInterpreter.from_pretrained(out / "model")
    results = interp.interpret([out / "data" / r.image for r in examples])
    lines: list[str] = []
    for row, res in zip(examples, results):
        gold = row.gold
        probs = ", ".join(f"{k} {v:.2f}" for k, v in res.superclasses.items())
        lines += [
            f"### {row.image}",
            "",
            f"![{row.image}](data/{row.image})",
            "",
            f"- gold: superclasses {', '.join(gold.get('superclasses', [])) or '-'}; "
            f"statements {', '.join(gold.get('scp', {}))}",
            f"- model superclass probabilities: {probs}",
            f"- model report: {res.report}",
        ]
        if res.skipped:  # the demo trains superclass and report answers only
            lines.append(
                f"- not asked: {', '.join(res.skipped)} (not among the tasks the model was trained on)"
            )
        lines.append("")
    return lines


def run_line(options: dict) -> str:
    """The options that decide the figures, so the run can be repeated (the thread count among them)."""
    keys = (
        "seed",
        "threads",
        "records",
        "steps",
        "opening",
        "lr",
        "tasks",
        "report_lead",
        "scores",
        "eval_limit",
        "base",
    )
    flags = " ".join(f"--{k.replace('_', '-')} {options[k]}" for k in keys if options.get(k) is not None)
    flags += " --no-cnn" if options.get("no_cnn") else ""
    return f"Run: `ecgvlm demo {flags}` (torch threads {options.get('threads')}; the results depend on it)."


def image_warnings(runs: list[Path], names: list[str]) -> list[str]:
    """The warnings of the image-dependence check for each run folder (see reading_section)."""
    from ecgvlm.evaluate.runs import load_run
    from ecgvlm.evaluate.table import run_dependence

    return reading_section(names, [run_dependence(load_run(r, n)) for r, n in zip(runs, names)])[1]


def reading_section(names: list[str], deps: list[dict[str, dict]]) -> tuple[list[str], list[str]]:
    """Report lines on whether each model reads the image (superclass probabilities, answers, reports)
    and the warnings, from the image-dependence check `ecgvlm score` recorded."""
    from ecgvlm.evaluate.dependence import SAME_ANSWER_SHARE, SCORE_STD_MAX, dependence_warnings
    from ecgvlm.signals.vocab import SUPERCLASSES

    sup = [d.get("ptbxl-super") for d in deps]
    rep = [d.get("report") for d in deps]
    warned = [w for n, s, r in zip(names, sup, rep) for d, what in ((s, "superclass"), (r, "reports"))
              if d for w in dependence_warnings(d, f"{n}, {what}")]  # fmt: skip

    def cell(d: dict | None, fn) -> str:
        return "–" if d is None else fn(d)

    def prob(code: str):
        def fn(d: dict) -> str:
            v = (d.get("scores") or {}).get(code)
            return "–" if v is None else f"{v['mean']:.2f} ± {v['std']:.4f}"

        return fn

    rows = [(f"P({code}) mean ± std", sup, prob(code)) for code in SUPERCLASSES]
    rows += [
        ("superclass: distinct answers / pages", sup, lambda d: f"{d['distinct_answers']} / {d['rows']}"),
        ("superclass: most common answer", sup,
         lambda d: f"{d['majority_answer'][:30] or '(empty)'} ({d['majority_share']:.0%})"),
        ("superclass: answer changes (share of page pairs)", sup, lambda d: f"{d['answer_change_rate']:.2f}"),
        ("reports: distinct / pages", rep, lambda d: f"{d['distinct_answers']} / {d['rows']}"),
        ("reports: looping", rep, lambda d: f"{d['loops']} / {d['rows']}"),
        ("superclass answers depend on the image", sup,
         lambda d: {True: "**NO**", False: "yes", None: "not judged (too few pages)"}[d["independent"]]),
    ]  # fmt: skip
    lines = [
        "## Does each model read the image?",
        "",
        "Across the test pages: each superclass probability's mean ± standard deviation, how often the",
        "answer changes between pages, and the reports' variety and loops (a phrase of 1-4 words 3+ times",
        "in a row, or a letter 6+ times). A model whose superclass answer is the same on "
        f">= {SAME_ANSWER_SHARE:.0%} of the pages",
        f"while no probability moves by a standard deviation of {SCORE_STD_MAX} is answering from a prior,",
        "not from the image (evaluate/dependence.py). Depending on the image is not reading it well: an",
        "untrained model's answers move with the page at chance AUC; Table I says how well.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *[f"| {label} | " + " | ".join(cell(d, fn) for d in ds) + " |" for label, ds, fn in rows],
        "",
    ]
    return lines, warned


def training_budget(out: Path, names: list[str], done: dict[str, float]) -> list[str]:
    """Report lines: the training each column had (samples seen, wall time), from the files it left
    (``done``: the finished stages' wall times)."""
    rows = []
    for name in names:
        if name == "baseline":
            rows.append((name, "0", "none: the base as it is (zero-shot)", "0"))
        elif name == "fine-tuned":
            rows.append((name, *_lora_budget(out / "model" / "adapter", done.get("finetune"))))
        elif name == "CNN":
            rows.append((name, *_cnn_budget(out / "cnn", done.get("cnn"))))
    return [
        "## Training budget",
        "",
        "| model | samples seen | how | training wall time (s) |",
        "|---|---:|---|---:|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
    ]


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _lora_budget(adapter: Path, stage_s: float | None) -> tuple[str, str, str]:
    import yaml

    summary = _read_json(adapter / "train_summary.json")
    try:
        train = (yaml.safe_load((adapter / "config.yaml").read_text("utf-8")) or {}).get("train") or {}
    except (OSError, yaml.YAMLError):
        train = {}
    steps, batch, accum = summary.get("steps"), train.get("batch_size"), train.get("grad_accum", 1)
    if not isinstance(steps, int) or not isinstance(batch, int):
        return "?", "train_summary.json / config.yaml unreadable", "?"
    tasks = summary.get("tasks") or {}
    mix = ", ".join(f"{v} {k}" for k, v in tasks.items())
    how = f"{steps} steps x batch {batch}" + (f" x accumulation {accum}" if accum != 1 else "")
    how += f" (LoRA; training rows: {mix})" if mix else " (LoRA)"
    wall = summary.get("wall_s")
    return f"{steps * batch * accum:,}", how, _wall(wall, stage_s)


def _cnn_budget(run: Path, stage_s: float | None) -> tuple[str, str, str]:
    cfg, log = _read_json(run / "config.json"), _read_json(run / "train_log.json")
    steps, batch = cfg.get("steps"), (cfg.get("options") or {}).get("batch_size")
    if not isinstance(steps, int) or not isinstance(batch, int):
        return "?", "config.json unreadable", "?"
    epochs, pages = len(cfg.get("history") or []), log.get("n_train_images")
    how = (
        f"{epochs} epochs x {pages} pages ({steps} steps x batch {batch}; best epoch {cfg.get('best_epoch')})"
    )
    wall = sum(e.get("seconds", 0) for e in log.get("epochs") or []) or None
    return f"{steps * batch:,}", how, _wall(wall, stage_s)


def _wall(train_s: float | None, stage_s: float | None) -> str:
    text = "?" if train_s is None else f"{train_s:.0f}"
    return text + (f" (whole stage {stage_s:.0f})" if stage_s is not None else "")
