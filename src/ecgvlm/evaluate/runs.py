"""A scored run folder (``Run``, ``load_run``) and the names, order and direction of its metrics.

Run folder (written by ``ecgvlm evaluate`` + ``ecgvlm score``)::

    RUN/predictions.jsonl   rows {id, task, prediction, reference, gold, scores}; "scores" feed the ROC curves
    RUN/metrics.json        {"schema": "ecgvlm.metrics/1",
                             "benchmarks": {BENCHMARK: {MODE: {metric: value, ..., "ci95": {...}}}}}
    RUN/metrics_*.json      optional further files of the same schema, merged in name order
    RUN/point.json          a sweep point's swept values and cost (see evaluate/sweep_table.py)

BENCHMARK is one of ptbxl-super, ptbxl-71, cpsc, code15, mcq, measure, report; MODE is ecgbench or
strict (for report: the judge, findings or llm).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ecgvlm.errors import ECGVLMError

BENCH_ORDER = ["ptbxl-super", "ptbxl-71", "cpsc", "code15", "mcq", "measure", "report"]
MODE_ORDER = ["ecgbench", "strict", "findings", "llm"]
METRIC_ORDER = ["auc", "f1", "hamming", "accuracy", "mae", "score", "diagnosis", "waveform", "rhythm"]
METRIC_NAMES = {
    "auc": "AUC",
    "f1": "macro F1",
    "hamming": "Hamming loss",
    "accuracy": "accuracy",
    "mae": "MAE",
    "score": "report score",
    "diagnosis": "diagnosis (0-10)",
    "waveform": "waveform (0-10)",
    "rhythm": "rhythm (0-10)",
}
LOWER_IS_BETTER = {"hamming", "mae"}
CLASSIFICATION = ["ptbxl-super", "ptbxl-71", "cpsc", "code15"]


@dataclass
class Run:
    name: str
    path: Path
    benchmarks: dict = field(default_factory=dict)
    point: dict | None = None

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.jsonl"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"cannot read JSON ({e})", path) from None


def load_run(path: str | Path, name: str | None = None) -> Run:
    """A run folder's merged metrics (``metrics.json`` then ``metrics_*.json``)."""
    path = Path(path)
    files = sorted(path.glob("metrics*.json"), key=lambda p: (p.name != "metrics.json", p.name))
    if not files:
        raise ECGVLMError("no metrics.json in this run folder (run `ecgvlm score` first)", path)
    run = Run(name or path.name, path)
    for f in files:
        doc = _read_json(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), dict):
            raise ECGVLMError("not an ecgvlm metrics file (no 'benchmarks')", f)
        for bench, modes in doc["benchmarks"].items():
            run.benchmarks.setdefault(bench, {}).update(modes)
    if (path / "point.json").exists():
        run.point = _read_json(path / "point.json")
    return run


def number(x) -> float | None:
    """``x`` as a float when it is a finite number (not a bool), else None."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None
