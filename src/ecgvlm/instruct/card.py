"""The dataset card (README.md) of a built dataset: what is in it and how it was made.

Counts only, in sorted order, and no clock time: the card is as deterministic as the data.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecgvlm.io import atomic_write_json, atomic_write_text
from ecgvlm.signals.vocab import SUPERCLASSES, statements, superclasses_of

SPLITS = ("train", "val", "test")


@dataclass
class Counts:
    records: Counter = field(default_factory=Counter)  # split -> records
    rows: Counter = field(default_factory=Counter)  # split -> rows
    tasks: dict = field(default_factory=lambda: defaultdict(Counter))  # task -> split -> rows
    superclass: dict = field(default_factory=lambda: defaultdict(Counter))  # class -> split -> records
    scp: dict = field(default_factory=lambda: defaultdict(Counter))  # code -> split -> records
    style: dict = field(default_factory=lambda: defaultdict(Counter))  # facet -> value -> records
    answers: dict = field(default_factory=lambda: defaultdict(Counter))  # task -> answer kind -> rows
    skipped: Counter = field(default_factory=Counter)  # reason -> records
    sizes: list = field(default_factory=list)

    def add_unit(self, unit: dict[str, Any]) -> None:
        split = unit["split"]
        self.records[split] += 1
        labels = unit["labels"]
        for s in superclasses_of(labels) or ["(none)"]:
            self.superclass[s][split] += 1
        for c in labels:
            self.scp[c][split] += 1
        for facet, value in unit["style"].items():
            if facet != "size":
                self.style[facet][str(value)] += 1
        self.sizes.append(tuple(unit["style"]["size"]))
        for row in unit["rows"]:
            meta = row["metadata"]
            task, gold = meta["subtask"], meta["gold"]
            self.rows[split] += 1
            self.tasks[task][split] += 1
            if task == "yesno":
                self.answers["yesno"][gold["answer"]] += 1
            elif task == "mcq":
                self.answers["mcq"][gold["answer"]] += 1
            elif task == "measure":
                self.answers["measure"][gold["quantity"]] += 1
            if gold.get("step_by_step"):
                self.answers["step_by_step"][task] += 1

    def skip(self, reason: str) -> None:
        # Group by the problem, not the file: "path: problem" -> "problem".
        self.skipped[re.sub(r"^\S+: ", "", reason)[:120]] += 1

    def to_dict(self) -> dict[str, Any]:
        def plain(d: Any) -> Any:
            if isinstance(d, dict):
                return {str(k): plain(v) for k, v in sorted(d.items(), key=lambda kv: str(kv[0]))}
            return d

        w = [s[0] for s in self.sizes] or [0]
        h = [s[1] for s in self.sizes] or [0]
        return {
            "records": plain(dict(self.records)),
            "rows": plain(dict(self.rows)),
            "tasks": plain({k: dict(v) for k, v in self.tasks.items()}),
            "superclass": plain({k: dict(v) for k, v in self.superclass.items()}),
            "scp": plain({k: dict(v) for k, v in self.scp.items()}),
            "style": plain({k: dict(v) for k, v in self.style.items()}),
            "answers": plain({k: dict(v) for k, v in self.answers.items()}),
            "skipped": plain(dict(self.skipped)),
            "image_px": {"width": [min(w), max(w)], "height": [min(h), max(h)]},
        }


def _table(title: str, rows: dict[str, dict[str, int]], names: dict[str, str] | None = None) -> list[str]:
    head = f"| {title} | " + " | ".join(SPLITS) + " | total |"
    lines = [head, "|" + "---|" * (len(SPLITS) + 2)]
    for key, per in rows.items():
        label = f"{key} ({names[key]})" if names and key in names else key
        vals = [per.get(s, 0) for s in SPLITS]
        lines.append(f"| {label} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    return lines


# The file of each split and its name on a hub ("val" is "validation" there, as datasets names it).
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}

# `image` is relative to this folder, so the loader joins it before decoding (tests run this block).
LOADING = [
    "## Load",
    "",
    "```python",
    "from pathlib import Path",
    "",
    "import datasets",
    "",
    'root = Path("path/to/this/folder")',
    "ds = datasets.load_dataset(str(root))  # the splits of the `configs` block above",
    'ds = ds.map(lambda row: {"image": str(root / row["image"])})  # paths are relative to this folder',
    'ds = ds.cast_column("image", datasets.Image())',
    'page = ds["train"][0]["image"]  # a PIL.Image',
    "```",
    "",
    'Or `ecgvlm.instruct.reader.iter_rows("train.json")`.',
]


def front_matter(rows: dict[str, int], source: str) -> list[str]:
    """The YAML header hubs and ``datasets.load_dataset(FOLDER)`` read: one config, a split per
    non-empty file (an empty JSON list is not a loadable split)."""
    import yaml

    files = [{"split": HUB_SPLITS[s], "path": f"{s}.json"} for s in SPLITS if rows.get(s, 0)]
    meta = {
        "configs": [{"config_name": "default", "data_files": files}],
        "task_categories": ["image-text-to-text"],
        "tags": ["ecg", "electrocardiogram", "medical", "ecgvlm"]
        + (["synthetic"] if source.startswith("synth") else []),
        "pretty_name": "ECG instruction dataset (ecgvlm)",
    }
    return ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", ""]


def render_card(counts: dict[str, Any], config: Any, command: str | None) -> str:
    from ecgvlm.instruct.tasks import SUPERCLASS_NAMES

    descr = {c: s.description for c, s in statements().items()}
    total_rows = sum(counts["rows"].values())
    total_recs = sum(counts["records"].values())
    cfg = asdict(config)
    out = [
        *front_matter(counts["rows"], str(cfg["source"])),
        "# ECG instruction dataset",
        "",
        "ECGInstruct-format rows (`id`, `image`, `conversations` with `from: human|gpt`, `metadata`)",
        f"built by ecgvlm from `{cfg['source']}`: {total_recs} records, {total_rows} rows, one image per record.",
        "Every answer is derived from the record's SCP labels and measurements; `metadata.gold` holds",
        "the label set, the measurements and the machine-readable answer in every split.",
        "",
        "Synthetic or research ECGs rendered as printouts: for research, **not for clinical use**.",
        "",
        *LOADING,
        "",
        "## Command",
        "",
        "```",
        command or "(built through the Python API)",
        "```",
        "",
        "Options: " + ", ".join(f"{k}={v}" for k, v in cfg.items()),
        "",
        "## Splits",
        "",
        "| split | records | rows |",
        "|---|---|---|",
    ]
    out += [f"| {s} | {counts['records'].get(s, 0)} | {counts['rows'].get(s, 0)} |" for s in SPLITS]
    out += ["", "## Tasks (rows)", ""] + _table("task", counts["tasks"])
    out += ["", "## Superclasses (records)", ""]
    sup = {k: counts["superclass"][k] for k in (*SUPERCLASSES, "(none)") if k in counts["superclass"]}
    out += _table("superclass", sup, SUPERCLASS_NAMES)
    out += ["", "## SCP statements (records)", ""] + _table("code", counts["scp"], descr)
    out += ["", "## Answer balance", ""]
    for task, per in counts["answers"].items():
        out.append(f"- {task}: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    out += ["", "## Image styles (records)", ""]
    for facet, per in counts["style"].items():
        out.append(f"- {facet}: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    px = counts["image_px"]
    out.append(
        f"- image size: width {px['width'][0]}-{px['width'][1]} px, height {px['height'][0]}-{px['height'][1]} px"
    )
    if counts["skipped"]:
        out += ["", "## Skipped records", ""]
        out += [f"- {v} x {k}" for k, v in counts["skipped"].items()]
    out += [
        "",
        "## Notes",
        "",
        "- Splits are by record: no record appears in two splits (PTB-XL: strat_fold 1-8 / 9 / 10;",
        "  other sources: a hash of seed and record id).",
        "- Measurement tolerances (gold.tolerance): heart rate +-max(5 bpm, 10%), PR and QRS +-20 ms,",
        "  QT and QTc +-30 ms, axis +-20 degrees.",
        "- Pages with `header_measurements` print the measured values in the header, as many real",
        "  machines do; measurement questions on those pages can be answered by reading the text.",
        "",
    ]
    return "\n".join(out)


def write_card(out: Path, counts: dict[str, Any], config: Any, command: str | None) -> None:
    atomic_write_json(out / "stats.json", counts)
    atomic_write_text(out / "README.md", render_card(counts, config, command))
