"""Scoring as Python functions: predictions -> metrics for one benchmark, merged into metrics.json.

    from ecgvlm.evaluate.score import score, write_metrics
    s = score("runs/ft/predictions.jsonl", "ptbxl-super", "strict",
              val_predictions="runs/ft/val/predictions.jsonl")
    s.metrics["auc"], s.headline()
    write_metrics("runs/ft/metrics.json", s)

``ecgvlm score`` (``cli_score``) is a thin layer over these; the demo and the sweep call them too.
See ``cli_score``'s help for the benchmarks and the modes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_json, read_jsonl

# benchmark -> the task of the prediction rows it scores
BENCHMARK_TASKS = {
    "ptbxl-super": "superclass",
    "ptbxl-71": "scp",
    "cpsc": "cpsc",
    "code15": "code15",
    "mcq": "mcq",
    "measure": "measure",
    "report": "report",
}
METRICS_SCHEMA = "ecgvlm.metrics/1"
MODES = ("ecgbench", "strict")


@dataclass(frozen=True)
class JudgeSettings:
    """Which report judge scores ``report`` rows; the ``llm`` fields fall back to the environment."""

    name: str = "findings"  # findings (offline) or llm (an OpenAI-compatible endpoint)
    base_url: str | None = None
    model: str | None = None
    concurrency: int = 4
    cache: str | None = None


@dataclass(frozen=True)
class Scored:
    """One benchmark's metrics for one predictions file."""

    benchmark: str
    mode: str  # the key under benchmarks[benchmark] in metrics.json: ecgbench, strict or the judge's name
    metrics: dict = field(repr=False)
    predictions: str = ""

    def headline(self) -> str:
        """One line: the main numbers and their 95% intervals."""
        m = self.metrics
        keys = ["auc", "f1", "hamming", "accuracy", "mae", "score", "diagnosis", "waveform", "rhythm"]
        parts = [f"{k}={m[k]}" for k in keys if m.get(k) is not None]
        ci = m.get("ci95") or {}
        parts += [f"{k}95=[{v[0]}, {v[1]}]" for k, v in ci.items() if v]
        return f"{self.benchmark} [{self.mode}] n={m.get('n')}: " + " ".join(parts)

    def warnings(self, label: str | None = None) -> list[str]:
        """The image-dependence warnings (the outputs do not depend on the image, answers loop)."""
        from ecgvlm.evaluate.dependence import dependence_warnings

        return dependence_warnings(
            self.metrics["image_dependence"], label or f"{self.benchmark} [{self.mode}]"
        )


def load_rows(path: str | Path, task: str) -> list[dict]:
    """Rows of a predictions file for one task; rows without a task are all taken."""
    from ecgvlm.errors import ECGVLMError

    rows = list(read_jsonl(path))
    if not rows:
        raise ECGVLMError("no rows", path)
    # a row without an answer is not an empty answer: scoring it as one reports F1 0.0 as a result
    missing = [i for i, r in enumerate(rows, 1) if "prediction" not in r]
    if missing:
        raise ECGVLMError(
            f"{len(missing)} of {len(rows)} rows have no 'prediction' (first: row {missing[0]}); "
            "score the predictions.jsonl that `ecgvlm evaluate` writes",
            path,
        )
    if all("error" in r for r in rows):
        raise ECGVLMError(
            f"all {len(rows)} rows failed in `ecgvlm evaluate` (first: {rows[0]['error']}); nothing to score: "
            "rerun evaluate to ask them again",
            path,
        )
    for i, r in enumerate(rows, 1):
        if not isinstance(r["prediction"], str):
            raise ECGVLMError(f"row {i}: 'prediction' must be a string", path)
    if all("task" not in r for r in rows):
        return rows
    picked = [r for r in rows if r.get("task") == task]
    if not picked:
        tasks = sorted({str(r.get("task")) for r in rows})
        raise ECGVLMError(f"no rows with task {task!r} (tasks present: {', '.join(tasks)})", path)
    return picked


def cap_answers(rows: list[dict]) -> tuple[list[dict], dict]:
    """Rows with each prediction cut to the part that is read, and the cap as metrics state it."""
    from ecgvlm.evaluate.labels import ANSWER_CAP_CHARS, capped

    n = sum(len(r.get("prediction") or "") > ANSWER_CAP_CHARS for r in rows)
    if n:
        rows = [dict(r, prediction=capped(r.get("prediction"))) for r in rows]
    return rows, {"chars": ANSWER_CAP_CHARS, "answers_capped": n}


def score(
    predictions: str | Path,
    benchmark: str,
    mode: str = "strict",
    *,
    val_predictions: str | Path | None = None,
    task: str | None = None,
    judge: JudgeSettings = JudgeSettings(),
    bootstrap: int = 1000,
    seed: int = 0,
) -> Scored:
    """Score ``benchmark``'s rows of ``predictions`` (its task's rows, or ``task``'s) in ``mode``.

    ``val_predictions`` (strict): validation predictions whose rows tune the F1 thresholds. For
    ``report`` the judge replaces the mode. The metrics carry the rows' image-dependence check
    and the answer cap.
    """
    from ecgvlm.evaluate.dependence import image_dependence

    if benchmark not in BENCHMARK_TASKS:
        raise ECGVLMError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARK_TASKS)}")
    task = task or BENCHMARK_TASKS[benchmark]
    rows, cap = cap_answers(load_rows(predictions, task))
    key, metrics = _score_rows(
        rows, benchmark, mode, task, val_predictions, judge, bootstrap, seed, str(predictions)
    )
    metrics = dict(metrics, image_dependence=image_dependence(rows), answer_cap=cap)
    if cap["answers_capped"]:
        note = (
            f"{cap['answers_capped']} answers are longer than {cap['chars']} characters; "
            "only their first part was read"
        )
        metrics["notes"] = [*metrics.get("notes", []), note]
    return Scored(benchmark, key, metrics, str(predictions))


def _score_rows(
    rows: list[dict],
    benchmark: str,
    mode: str,
    task: str,
    val_predictions: str | Path | None,
    judge: JudgeSettings,
    bootstrap: int,
    seed: int,
    where: str,
) -> tuple[str, dict]:
    from ecgvlm.evaluate.labels import BENCHMARK_LABELS

    if benchmark in BENCHMARK_LABELS:
        if mode == "ecgbench":
            from ecgvlm.evaluate.ecgbench import score_ecgbench

            return "ecgbench", score_ecgbench(rows, BENCHMARK_LABELS[benchmark])
        from ecgvlm.evaluate.strict import score_strict

        val = load_rows(val_predictions, task) if val_predictions else None
        return "strict", score_strict(rows, benchmark, val, bootstrap, seed, path=where)
    if benchmark == "mcq":
        from ecgvlm.evaluate.mcq import score_mcq

        return mode, score_mcq(rows, mode)
    if benchmark == "measure":
        from ecgvlm.evaluate.measure import score_measure

        return mode, score_measure(rows)
    from ecgvlm.evaluate.judges import make_judge, score_reports

    kwargs = {}
    if judge.name == "llm":
        kwargs = {
            "base_url": judge.base_url,
            "model": judge.model,
            "concurrency": judge.concurrency,
            "cache_dir": judge.cache,
        }
    return judge.name, score_reports(rows, make_judge(judge.name, **kwargs))


def metrics_file(predictions: str | Path, out: str | Path | None = None) -> Path:
    """Where a score goes: ``out`` (a file, or a run folder holding metrics.json), else beside the predictions."""
    path = Path(out) if out else Path(predictions).with_name("metrics.json")
    return path / "metrics.json" if path.is_dir() else path


def write_metrics(out: str | Path, scored: Scored) -> dict:
    """Merge ``scored`` into the metrics file ``out`` (benchmarks[benchmark][mode]); returns the whole file."""
    return merge_metrics(Path(out), scored.benchmark, scored.mode, scored.metrics, scored.predictions)


def merge_metrics(out: Path, benchmark: str, mode: str, metrics: dict, source: str) -> dict:
    """Read ``out`` (if any), set benchmarks[benchmark][mode], write atomically; returns the whole file."""
    from ecgvlm.errors import ECGVLMError

    doc = {"schema": METRICS_SCHEMA, "benchmarks": {}}
    if out.exists():
        try:
            doc = json.loads(out.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ECGVLMError(f"existing metrics file is unreadable ({e}); move it away first", out) from None
        if not isinstance(doc, dict) or doc.get("schema") != METRICS_SCHEMA:
            raise ECGVLMError(f"not an ecgvlm metrics file (schema {METRICS_SCHEMA!r} expected)", out)
    metrics = dict(metrics, predictions=source)
    doc.setdefault("benchmarks", {}).setdefault(benchmark, {})[mode] = metrics
    atomic_write_json(out, doc)
    return doc


def dependence_line(dep: dict) -> str:
    parts = [
        f"{dep['distinct_answers']} distinct answers in {dep['rows']} rows",
        f"majority {dep['majority_share']:.0%}" if dep["majority_share"] is not None else "",
        f"answer change rate {dep['answer_change_rate']:.2f}"
        if dep["answer_change_rate"] is not None
        else "",
        f"max per-class score std {dep['max_score_std']:.4f}" if dep["max_score_std"] is not None else "",
        f"{dep['loops']} looping",
    ]
    verdict = {True: "does NOT depend on the image", False: "depends on the image", None: "not judged"}
    return "image dependence: " + ", ".join(p for p in parts if p) + f" -> {verdict[dep['independent']]}"


def score_and_write(
    predictions: str | Path, benchmark: str, mode: str = "strict", out: str | Path | None = None, **options
) -> Scored:
    """``score`` then ``write_metrics``, printing what ``ecgvlm score`` prints (headline, notes,
    image dependence, warnings, judge cost, the file written)."""
    scored = score(predictions, benchmark, mode, **options)
    path = metrics_file(predictions, out)
    write_metrics(path, scored)
    print(scored.headline())
    for note in scored.metrics.get("notes", []):
        print(f"note: {note}")
    print(dependence_line(scored.metrics["image_dependence"]))
    for warning in scored.warnings(f"{benchmark} [{scored.mode}] of {predictions}"):
        print(f"WARNING: {warning}")
    if scored.metrics.get("cost"):
        print("judge: " + ", ".join(f"{k}={v}" for k, v in scored.metrics["cost"].items()))
    print(f"wrote {path}")
    return scored
