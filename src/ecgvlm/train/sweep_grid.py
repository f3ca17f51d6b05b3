"""Sweep grids: ``--grid KEY=V1,V2`` options -> the list of points (a Cartesian product).

    --grid lora.r=16,32,64,128                        4 points
    --grid tuning=paper,language,partial --grid lora.r=16,64     3 x 2 = 6 points
    --grid lora.r=16,32:lora.alpha=32,64              keys joined by ':' vary together (2 points)
    --grid data.sources=loo                           all + leave each source of the train file out

Values are YAML scalars, as in ``ecgvlm train`` overrides; a data.sources value keeps its own
syntax ("-ptbxl", "ptbxl+synth"). Every key and value is checked before anything trains, so a typo
fails in a second, not after the first point's hour of training.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.train.config import RecipeCfg, _parse_value

RESERVED = {"output_dir"}  # the sweep decides where each point writes
LOO = "loo"


@dataclass
class Axis:
    """One --grid option: one or more keys that take their values together."""

    keys: list[str]
    values: list[tuple]  # one tuple per step, aligned with keys


@dataclass
class Point:
    name: str
    values: dict[str, Any]  # key -> value, in grid order

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={_yaml_scalar(v)}" for k, v in self.values.items()]


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_types() -> dict[str, str]:
    """Every settable dotted key of the recipe -> its annotation text (e.g. ``"int | None"``)."""
    out: dict[str, str] = {}

    def walk(cls, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
            if sub is not None and dataclasses.is_dataclass(sub):
                walk(sub, f"{prefix}{f.name}.")
            else:
                out[prefix + f.name] = str(f.type)

    walk(RecipeCfg, "")
    return out


def check_key(key: str) -> str:
    types = field_types()
    if key in RESERVED:
        raise ECGVLMError(f"--grid {key}: set by the sweep itself (each point writes under SWEEP/points/)")
    if key not in types:
        section = key.rsplit(".", 1)[0] + "." if "." in key else ""
        near = sorted(k for k in types if section and k.startswith(section)) or sorted(types)
        raise ECGVLMError(f"--grid: unknown config key {key!r}; known: {', '.join(near)}")
    return types[key]


def check_value(key: str, value: Any, annotation: str) -> None:
    """Refuse a value whose type cannot be what the recipe field expects (``lora.r=sixteen``)."""
    kinds = {a.strip() for a in annotation.split("|")}
    ok = (
        ("None" in kinds and value is None)
        or ("bool" in kinds and isinstance(value, bool))
        or ("int" in kinds and isinstance(value, int) and not isinstance(value, bool))
        or ("float" in kinds and isinstance(value, (int, float)) and not isinstance(value, bool))
        or ("str" in kinds and isinstance(value, (str, int, float)) and not isinstance(value, bool))
    )
    if not ok:
        raise ECGVLMError(f"--grid {key}: value {value!r} is not a valid {annotation}")
    if key == "tuning":
        from ecgvlm.model.tuning import PRESETS

        if value not in PRESETS:
            raise ECGVLMError(f"--grid tuning: unknown preset {value!r}; known: {', '.join(PRESETS)}")


def parse_axis(text: str) -> Axis:
    """``K=V1,V2`` or ``K1=V1,V2:K2=W1,W2`` (zipped) -> an Axis; values parsed as YAML scalars."""
    keys, columns = [], []
    for part in text.split(":"):
        if "=" not in part:
            raise ECGVLMError(f"--grid {text!r}: expected KEY=V1,V2,...")
        key, raw = (s.strip() for s in part.split("=", 1))
        annotation = check_key(key)
        if key in keys:
            raise ECGVLMError(f"--grid {text!r}: key {key!r} given twice")
        items = [s.strip() for s in raw.split(",")]
        if not raw.strip() or any(not s for s in items):
            raise ECGVLMError(f"--grid {key}: empty value in {raw!r}")
        # data.sources keeps its own mini-syntax ("-ptbxl" would otherwise stay a string anyway)
        values = items if key == "data.sources" else [_parse_value(s) for s in items]
        for v in values:
            if not (key == "data.sources" and v == LOO):
                check_value(key, v, annotation)
        keys.append(key)
        columns.append(values)
    if len({len(c) for c in columns}) != 1:
        sizes = ", ".join(f"{k}: {len(c)}" for k, c in zip(keys, columns))
        raise ECGVLMError(f"--grid {text!r}: keys joined by ':' need as many values each ({sizes})")
    if any(LOO in c for k, c in zip(keys, columns) if k == "data.sources") and len(keys) > 1:
        raise ECGVLMError("--grid data.sources=loo cannot be zipped with other keys")
    return Axis(keys, list(zip(*columns)))


def parse_grid(texts: Iterable[str]) -> list[Axis]:
    axes = [parse_axis(t) for t in texts]
    if not axes:
        raise ECGVLMError("give at least one --grid KEY=V1,V2,...")
    seen: set[str] = set()
    for a in axes:
        for k in a.keys:
            if k in seen:
                raise ECGVLMError(f"--grid: key {k!r} appears in two --grid options")
            seen.add(k)
    return axes


# ---------------------------------------------------------------- data sources
def sources_of(train_file: str | Path) -> list[str]:
    """The distinct ``metadata.source`` values of a train file, sorted (rows without one: "unknown")."""
    from ecgvlm.instruct.reader import read_rows

    return sorted({str(r.metadata.get("source") or "unknown") for r in read_rows(train_file)})


def expand_loo(axis: Axis, train_file: str | Path) -> Axis:
    """Replace ``loo`` by all + one "-source" per source the train file names."""
    if axis.keys != ["data.sources"] or (LOO,) not in axis.values:
        return axis
    sources = sources_of(train_file)
    if len(sources) < 2:
        raise ECGVLMError(
            f"data.sources=loo: the train file names only {sources}; nothing to leave out", train_file
        )
    values: list[tuple] = []
    for (v,) in axis.values:
        for new in ["all"] + [f"-{s}" for s in sources] if v == LOO else [v]:
            if (new,) not in values:
                values.append((new,))
    return Axis(axis.keys, values)


def check_sources(value: str, train_file: str | Path) -> None:
    """A data.sources value must name sources the train file has and keep at least one row."""
    from ecgvlm.instruct.reader import read_rows
    from ecgvlm.train.data import select_sources

    if value in ("", "all"):
        return
    present = sources_of(train_file)
    named = [s.strip().lstrip("-") for s in value.replace(",", "+").split("+") if s.strip()]
    missing = [s for s in named if s not in present]
    if missing:
        raise ECGVLMError(
            f"data.sources={value}: no rows with metadata.source {missing[0]!r} (sources: {', '.join(present)})",
            train_file,
        )
    if not select_sources(read_rows(train_file), value):
        raise ECGVLMError(f"data.sources={value}: leaves no training rows", train_file)


# ---------------------------------------------------------------- points
def _slug(value: Any) -> str:
    text = _yaml_scalar(value)
    if text.startswith("-") and not re.fullmatch(r"-[\d.e+-]+", text):
        text = "no-" + text[1:]  # "-ptbxl" -> "no-ptbxl" (a folder name must not start with '-')
    text = text.replace("/", "_").replace(",", "+")
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", text)[:60]


def point_name(values: dict[str, Any]) -> str:
    return "__".join(f"{k}={_slug(v)}" for k, v in values.items())


def expand(axes: list[Axis]) -> list[Point]:
    """The Cartesian product of the axes, first axis varying slowest; names unique."""
    points: list[Point] = []
    names: set[str] = set()
    for combo in itertools.product(*[a.values for a in axes]):
        values: dict[str, Any] = {}
        for axis, step in zip(axes, combo):
            values.update(zip(axis.keys, step))
        name = point_name(values)
        if name in names:  # two values with the same slug ("1" vs 1.0): keep both, apart
            name = f"{name}__{len(points)}"
        names.add(name)
        points.append(Point(name, values))
    return points
