"""Hugging Face model cards: README.md with a YAML header for adapters, merged models and bases.

The card's inputs are kept beside it in ``card.json`` so a later ``ecgvlm card`` (with the metrics
of an ``ecgvlm score``) can render it again without the training run. No clock time goes into a
card: the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from ecgvlm.errors import ECGVLMError
from ecgvlm.io import atomic_write_json, atomic_write_text

CARD_INPUTS = "card.json"
CARD_SCHEMA = "ecgvlm.model_card/1"
# Files that carry a base model's licence terms; a merged model is the base's weights, so they travel.
LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "NOTICE.txt", "USE_POLICY.md")
# Numeric metrics of metrics.json that go into model-index (others stay in metrics.json).
CARD_METRICS = ("auc", "f1", "hamming", "accuracy", "score", "diagnosis", "waveform", "rhythm")
TAGS = ["ecgvlm", "ecg", "electrocardiogram", "medical", "mllama", "image-text-to-text"]

NOT_A_DEVICE = (
    "**Not a medical device.** This model has not been cleared or approved by any regulator, has "
    "not been clinically validated, and must not be used to diagnose, treat or triage patients. "
    "Every output needs review by a qualified clinician."
)
INTENDED_USE = (
    "Research on reading ECG printouts (images) with multimodal language models: benchmarking, "
    "ablations, and as a starting point for fine-tuning on your own, governed data. Out of scope: "
    "any clinical decision, unsupervised reporting, and images unlike the training pages (other "
    "layouts, photos, scans) without validation on them."
)


def _front_matter(path: Path) -> dict[str, Any]:
    """The YAML header of a README.md, or {} when there is none or it does not parse."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    try:
        doc = yaml.safe_load(text[4:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def base_licence(base_dir: str | Path) -> dict[str, Any]:
    """The base model's licence: its card's ``license`` field, ecgvlm's own for a base ecgvlm built,
    else ``other`` with a notice to check it. Also lists the licence files found in the base."""
    base_dir = Path(base_dir)
    files = [f for f in LICENCE_FILES if (base_dir / f).is_file()]
    meta = _front_matter(base_dir / "README.md")
    licence = meta.get("license")
    if isinstance(licence, str) and licence:
        info = {"license": licence, "files": files}
        for key in ("license_name", "license_link"):
            if meta.get(key):
                info[key] = str(meta[key])
        if licence.startswith("llama"):
            info["notice"] = (
                f"Built with Llama. The base model is licensed under its community licence ({licence}); "
                "redistributing this model means accepting it and passing on its terms and use policy."
            )
        else:
            info["notice"] = f"The base model's licence ({licence}) applies to these weights as well."
        return info
    if (base_dir / "ecgvlm_tiny.json").is_file() or (base_dir / "pretrain.json").is_file():
        return {
            "license": "apache-2.0",
            "files": files,
            "notice": "The base is an ecgvlm tiny model, built by ecgvlm (Apache-2.0) from its own "
            "synthetic data; no third-party weights.",
        }
    return {
        "license": "other",
        "files": files,
        "notice": f"No licence was found in the base model folder ({base_dir.name}): check the base "
        "model's licence before sharing these weights.",
    }


def copy_licence_files(base_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Copy the base's licence files into a merged model folder (the weights carry its terms)."""
    copied = []
    for name in LICENCE_FILES:
        src = Path(base_dir) / name
        if src.is_file():
            shutil.copyfile(src, Path(out_dir) / name)
            copied.append(name)
    return copied


def load_metrics(path: str | Path, models: list[Path]) -> dict[str, Any]:
    """The benchmarks of an ``ecgvlm score`` metrics.json, refused when its run scored another model.

    ``models`` are the folders the metrics may belong to (an adapter, or the merge of it)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"cannot read metrics ({e})", path) from None
    benchmarks = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benchmarks, dict) or not benchmarks:
        raise ECGVLMError("not an `ecgvlm score` metrics.json (no benchmarks)", path)
    allowed = {Path(m).resolve() for m in models}
    for bench, modes in benchmarks.items():
        for entry in modes.values():
            run = Path(str(entry.get("predictions", ""))).with_name("run.json")
            if not run.is_absolute():
                run = path.parent / run.name
            try:
                scored = json.loads(run.read_text("utf-8")).get("model")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                continue  # predictions made elsewhere: nothing to check against
            if scored and Path(scored).resolve() not in allowed:
                raise ECGVLMError(f"{bench} was scored on another model ({scored}), not this one", path)
    return {"source": str(path), "benchmarks": benchmarks}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _model_index(name: str, metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    results = []
    for bench, modes in sorted((metrics or {}).get("benchmarks", {}).items()):
        for mode, entry in sorted(modes.items()):
            values = [
                {"type": key, "value": entry[key], "name": f"{key} ({mode})"}
                for key in CARD_METRICS
                if _is_number(entry.get(key))
            ]
            if values:
                results.append(
                    {
                        "task": {"type": "image-text-to-text", "name": "ECG interpretation"},
                        "dataset": {"name": bench, "type": bench},
                        "metrics": values,
                    }
                )
    return [{"name": name, "results": results}] if results else []


def _table(rows: dict[str, Any]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items() if v is not None]
    return lines


def render_model_card(info: dict[str, Any]) -> str:
    """README.md text for the card inputs ``info`` (see ``write_model_card``)."""
    kind, name = info["kind"], info["name"]
    lic = info["licence"]
    meta: dict[str, Any] = {}
    if info.get("base_model"):
        meta["base_model"] = info["base_model"]
    meta["library_name"] = info["library_name"]
    meta["pipeline_tag"] = "image-text-to-text"
    meta["license"] = lic["license"]
    for key in ("license_name", "license_link"):
        if key in lic:
            meta[key] = lic[key]
    meta["tags"] = TAGS + {"adapter": ["peft", "lora"], "merged": ["merged-lora"]}.get(kind, [])
    if info.get("datasets"):
        meta["datasets"] = list(info["datasets"])
    index = _model_index(name, info.get("metrics"))
    if index:
        meta["model-index"] = index
    what = {
        "adapter": "A LoRA adapter (PEFT) for",
        "merged": "The base model with a LoRA adapter merged into its weights:",
        "partial": "Fully trained projector and cross-attention weights (ecgvlm `partial` tuning) for",
        "base": "A base model:",
    }[kind]
    out = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    out += [f"# {name}", "", f"{what} `{info.get('base_model') or 'the base named below'}`, made by ecgvlm "]
    out[-1] += "to read 12-lead ECG printouts (images) and answer questions about them."
    out += ["", "## Licence", "", lic["notice"]]
    if lic.get("files"):
        out.append("Licence files of the base: " + ", ".join(f"`{f}`" for f in lic["files"]) + ".")
    out += ["", "## Intended use", "", INTENDED_USE, "", NOT_A_DEVICE, ""]
    if kind == "adapter":
        out += [
            "## Use",
            "",
            "```python",
            "from peft import PeftModel",
            "from transformers import MllamaForConditionalGeneration, MllamaProcessor",
            "",
            'base = MllamaForConditionalGeneration.from_pretrained("BASE_MODEL_FOLDER")',
            'model = PeftModel.from_pretrained(base, "THIS_FOLDER")',
            'processor = MllamaProcessor.from_pretrained("THIS_FOLDER")',
            "```",
            "",
            "or `ecgvlm interpret page.png --model THIS_FOLDER`; `ecgvlm merge` folds it into the base.",
            "",
        ]
    elif kind == "merged":
        out += [
            "## Use",
            "",
            "A plain `MllamaForConditionalGeneration` checkpoint (safetensors, "
            f"{info.get('dtype', 'the base dtype')}): `transformers` (4.45+ or 5.x) loads it, and so do "
            "engines without LoRA support for Mllama, e.g. SGLang (ecgvlm's `docs/deploy_sglang.md`).",
            "",
        ]
    if info.get("recipe"):
        out += ["## Training recipe", ""] + _table(info["recipe"]) + [""]
    if info.get("data"):
        out += ["## Training data", ""] + _table(info["data"]) + [""]
    out += ["## Evaluation", ""]
    metrics = info.get("metrics")
    if metrics:
        out.append(f"From `ecgvlm score` (`{metrics['source']}`):")
        out.append("")
        out += ["| benchmark | mode | rows | metric | value |", "|---|---|---|---|---|"]
        for bench, modes in sorted(metrics["benchmarks"].items()):
            for mode, entry in sorted(modes.items()):
                for key in CARD_METRICS:
                    if _is_number(entry.get(key)):
                        out.append(f"| {bench} | {mode} | {entry.get('n', '')} | {key} | {entry[key]} |")
    else:
        out.append(
            "Not scored yet. After `ecgvlm evaluate` and `ecgvlm score`, "
            "`ecgvlm card THIS_FOLDER --metrics RUN/metrics.json` adds the results here."
        )
    out.append("")
    return "\n".join(out)


def write_model_card(folder: str | Path, info: dict[str, Any]) -> None:
    """Write ``folder/README.md`` and its inputs ``folder/card.json`` (atomically)."""
    folder = Path(folder)
    info = {"schema": CARD_SCHEMA, **info}
    atomic_write_json(folder / CARD_INPUTS, info)
    atomic_write_text(folder / "README.md", render_model_card(info))


def read_card_inputs(folder: str | Path) -> dict[str, Any] | None:
    """The inputs of an ecgvlm-written card, or None when ``folder`` has none."""
    path = Path(folder) / CARD_INPUTS
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == CARD_SCHEMA else None
