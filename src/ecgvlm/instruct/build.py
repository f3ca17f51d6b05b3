"""Build an ECGInstruct-format dataset: render each record once, ask several questions about it.

Work is split per record. Each record becomes a *unit*: its image ``images/<name>.png`` and a
small JSON file in ``.staging/units/`` holding that record's rows. Units are written atomically
and independently, so a killed build resumes where it stopped, any number of workers (or machines,
with ``shard``) can share the work, and the result does not depend on who did what. At the end the
units are read back in source order and concatenated into ``train.json``, ``val.json``,
``test.json`` plus the dataset card ``README.md``.

Everything random about a record (split, page style, augmentation, questions) is drawn from a
generator seeded by (seed, record id), never from shared state.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.report import REPORT_LEADS
from ecgvlm.instruct.tasks import DEFAULT_TASKS, TASKS, make_questions
from ecgvlm.io import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_csv_rows,
    resolve_inside,
)
from ecgvlm.outputs import check_output_dir, claim_output_dir
from ecgvlm.signals.record import ECGRecord
from ecgvlm.signals.vocab import superclasses_of

FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
AUGMENTS: tuple[str, ...] = ("none", "light", "heavy")
# "mixed" draws per record with these weights.
MIXED_AUGMENT = {"none": 0.4, "light": 0.4, "heavy": 0.2}
MIXED_LAYOUT = {"3x4+1": 0.55, "3x4+3": 0.15, "6x2": 0.2, "12x1": 0.1}


@dataclass(frozen=True)
class BuildConfig:
    """Options that decide the dataset's content. Two builds with equal configs give equal bytes."""

    source: str  # "synth:N" | "ptbxl:PATH" | "wfdb:DIR"
    seed: int = 0
    layout: str = "3x4+1"  # a layout name, a comma list, or "mixed"
    augment: str = "mixed"  # none | light | heavy | mixed
    dpi: float = 40.0
    style: str = "sampled"  # sampled (varied looks) or a RenderStyle preset name ("tiny", "default")
    tasks: tuple[str, ...] = DEFAULT_TASKS
    questions_per_record: int = 4
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    step_by_step: float = 0.0  # fraction of non-report answers in step-by-step form
    report_lead: str = "rhythm"  # rhythm (PTB-XL's order) | diagnosis (statements and conclusion first)
    test_all_tasks: bool = True  # test records get one question of every task (complete evaluation)
    on_error: str = "raise"  # raise | skip (a record that cannot be read or rendered)
    image_format: str = "png"  # png | jpg (heavy augmentation makes PNGs large; JPEG is ~5x smaller)
    sidecars: str = "none"  # none | compact | full: the renderer's sidecar beside each image
    # synth only: each record gets exactly one of these conditions (drawn per record from the seed)
    conditions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ECGVLMError(f"unknown task(s) {', '.join(bad) or '(none)'}; known: {', '.join(TASKS)}")
        from ecgvlm.render.style import RenderStyle

        RenderStyle.preset(self.style)  # an unknown name raises, listing the known looks
        if self.augment not in (*AUGMENTS, "mixed"):
            raise ECGVLMError(f"unknown augment {self.augment!r}; known: none, light, heavy, mixed")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1.0) > 1e-6:
            raise ECGVLMError(f"split must be three fractions summing to 1, got {self.split}")
        if self.questions_per_record < 1:
            raise ECGVLMError("questions per record must be >= 1")
        if not 0.0 <= self.step_by_step <= 1.0:
            raise ECGVLMError("step-by-step fraction must be in 0..1")
        if self.report_lead not in REPORT_LEADS:
            raise ECGVLMError(
                f"report lead must be one of {', '.join(REPORT_LEADS)}, got {self.report_lead!r}"
            )
        if self.image_format not in ("png", "jpg"):
            raise ECGVLMError(f"image format must be png or jpg, got {self.image_format!r}")
        if isinstance(self.sidecars, bool):  # the API took a bool before sidecars had two forms
            object.__setattr__(self, "sidecars", "compact" if self.sidecars else "none")
        if self.sidecars not in ("none", "compact", "full"):
            raise ECGVLMError(f"sidecars must be none, compact or full, got {self.sidecars!r}")
        if self.on_error not in ("raise", "skip"):
            raise ECGVLMError(f"on_error must be raise or skip, got {self.on_error!r}")
        kind, _ = parse_source(self.source)
        if self.conditions:
            from ecgvlm.signals.synth import CONDITIONS

            if kind != "synth":
                raise ECGVLMError("--conditions applies to synth:N sources only")
            bad = [c for c in self.conditions if c not in CONDITIONS]
            if bad:
                raise ECGVLMError(
                    f"unknown synthetic condition(s) {', '.join(bad)}; known: {', '.join(CONDITIONS)}"
                )
        self.layouts()

    def layouts(self) -> dict[str, float]:
        from ecgvlm.render.style import LAYOUTS

        if self.layout == "mixed":
            return MIXED_LAYOUT
        names = [x.strip() for x in self.layout.split(",") if x.strip()]
        bad = [n for n in names if n not in LAYOUTS]
        if bad or not names:
            raise ECGVLMError(
                f"unknown layout(s) {', '.join(bad) or '(none)'}; known: {', '.join(LAYOUTS)}, mixed"
            )
        return {n: 1.0 / len(names) for n in names}


@dataclass
class BuildResult:
    out: Path
    counts: dict[str, Any] = field(default_factory=dict)
    done: int = 0  # units finished in this run
    resumed: int = 0  # units found from an earlier run
    assembled: bool = False


# ------------------------------------------------------------------ sources
def parse_source(source: str) -> tuple[str, str]:
    kind, sep, arg = source.partition(":")
    if not sep or kind not in ("synth", "ptbxl", "wfdb") or not arg:
        raise ECGVLMError(f"source must be synth:N, ptbxl:PATH or wfdb:DIR, got {source!r}")
    if kind == "synth" and not (arg.isdigit() and int(arg) > 0):
        raise ECGVLMError(f"synth:N needs a positive record count, got {source!r}")
    if kind in ("ptbxl", "wfdb") and not Path(arg).exists():
        raise ECGVLMError("source folder does not exist", arg)
    return kind, arg


def safe_name(key: str) -> str:
    """A file name for a record key (paths inside a WFDB tree become a__b); stable and unique."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("/", "__")).strip("._") or "record"
    if name != key.replace("/", "__"):
        name += "-" + hashlib.sha1(key.encode()).hexdigest()[:6]
    return name


def _wfdb_keys(root: Path) -> list[str]:
    keys = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.hea"))
    if not keys:
        raise ECGVLMError("no WFDB/CinC records (*.hea) found", root)
    return keys


def source_items(cfg: BuildConfig) -> Iterator[tuple[str, Any]]:
    """(key, payload) per record in a fixed order. Payload: synth index, header path, or a record."""
    kind, arg = parse_source(cfg.source)
    if kind == "synth":
        for i in range(int(arg)):
            yield f"synth-{cfg.seed}-{i:06d}", i
    elif kind == "wfdb":
        root = Path(arg)
        for key in _wfdb_keys(root):
            yield key, str(root / key) + ".hea"
    elif (Path(arg) / "ptbxl_database.csv").is_file():
        yield from _ptbxl_items(Path(arg))
    else:
        # Other dataset folders the readers know (MIMIC-IV-ECG, CODE-15): records are read here
        # and shipped to the workers.
        from ecgvlm.signals.readers import iter_records

        for rec in iter_records(arg, on_error=cfg.on_error):
            yield rec.id, rec


def _ptbxl_items(root: Path) -> Iterator[tuple[str, Any]]:
    """One item per row of ptbxl_database.csv; workers read the record file themselves
    (read_record finds the row again and attaches labels, strat_fold and report)."""
    table = root / "ptbxl_database.csv"
    rows = read_csv_rows(table)
    for line, row in enumerate(rows, start=2):
        rel = (row.get("filename_hr") or row.get("filename_lr") or "").strip()
        if not rel:
            raise ECGVLMError(f"line {line}: no filename_hr or filename_lr", table)
        ecg_id = (row.get("ecg_id") or "").strip()
        key = (
            f"ptbxl-{int(float(ecg_id)):05d}"
            if ecg_id.replace(".", "", 1).isdigit()
            else f"ptbxl-{ecg_id or line}"
        )
        yield key, str(resolve_inside(root, rel)) + ".hea"


def count_items(cfg: BuildConfig) -> int | None:
    kind, arg = parse_source(cfg.source)
    if kind == "synth":
        return int(arg)
    if kind == "wfdb":
        return len(_wfdb_keys(Path(arg)))
    if (Path(arg) / "ptbxl_database.csv").is_file():
        return sum(1 for _ in _ptbxl_items(Path(arg)))
    return None  # MIMIC / CODE-15: counting would mean reading the source twice


def load_record(cfg: BuildConfig, key: str, payload: Any) -> ECGRecord:
    if isinstance(payload, ECGRecord):
        return payload
    if isinstance(payload, int):
        from ecgvlm.signals.synth import synthesize_record

        conditions = None
        if cfg.conditions:
            conditions = [cfg.conditions[_hash_unit(cfg.seed, payload, "condition") % len(cfg.conditions)]]
        return synthesize_record(cfg.seed, payload, conditions=conditions)
    from ecgvlm.signals.readers import read_record

    return read_record(payload)


# ------------------------------------------------------------------ per record
def _hash_unit(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little")


def record_rng(seed: int, record_id: str, stream: str = "page") -> np.random.Generator:
    return np.random.default_rng([seed, _hash_unit(stream, record_id)])


def assign_split(record: ECGRecord, cfg: BuildConfig) -> str:
    """PTB-XL folds 1-8 / 9 / 10 when the record has one; otherwise a hash of (seed, record id)."""
    fold = record.meta.get("strat_fold")
    if fold is not None and parse_source(cfg.source)[0] == "ptbxl":
        fold = int(fold)
        return "test" if fold == 10 else "val" if fold == 9 else "train"
    u = _hash_unit("split", cfg.seed, record.id) / 2.0**64
    train, val, _ = cfg.split
    return "train" if u < train else "val" if u < train + val else "test"


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _clean_labels(labels: dict[str, float]) -> dict[str, int]:
    return {str(c): int(round(float(v))) for c, v in labels.items()}


def _clean_measurements(m: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 1) for k, v in m.items() if v is not None and np.isfinite(v)}


def make_unit(cfg: BuildConfig, out: Path, key: str, record: ECGRecord) -> dict[str, Any]:
    """Render one record, write its image, and return its rows and facts (the unit)."""
    from ecgvlm.render import RenderStyle, render

    name = safe_name(key)
    rid = record.id or key
    split = assign_split(record, cfg)
    labels = _clean_labels(record.labels)
    measurements = _clean_measurements(record.measurements)
    n = None if (split == "test" and cfg.test_all_tasks) else cfg.questions_per_record
    # Separate streams for questions and looks, so changing one option does not reshuffle the other.
    qas = make_questions(
        labels,
        measurements,
        cfg.tasks,
        n,
        record_rng(cfg.seed, rid, "questions"),
        cfg.step_by_step,
        cfg.report_lead,
    )
    if not qas:
        # An unlabelled record without measurements: any answer would be invented. Not rendered.
        return {"key": key, "skipped": "no SCP label or measurement to ask about"}

    rng = record_rng(cfg.seed, rid, "page")
    layout = _choose(rng, cfg.layouts())
    augment = _choose(rng, MIXED_AUGMENT) if cfg.augment == "mixed" else cfg.augment
    from ecgvlm.render.style import STYLE_PRESETS

    # --dpi applies unless a preset fixes the resolution it was designed for
    fixed = {} if "dpi" in STYLE_PRESETS.get(cfg.style, {}) else {"dpi": cfg.dpi}
    style = RenderStyle.preset(cfg.style, rng, **fixed)
    render_seed = int(rng.integers(2**31))
    page = render(record, layout=layout, augment=augment, seed=render_seed, style=style)
    image_rel = f"images/{name}.{cfg.image_format}"
    if cfg.sidecars != "none":
        page.save(out / image_rel, sidecar=cfg.sidecars)
    else:
        atomic_write_bytes(out / image_rel, page.encode(cfg.image_format))
    source = str(record.meta.get("source") or parse_source(cfg.source)[0])
    common = {"scp": labels, "superclasses": superclasses_of(labels), "measurements": measurements}
    clinician = record.meta.get("report")
    rows = []
    for k, qa in enumerate(qas):
        gold = {**common, **qa.gold}
        if qa.subtask == "report" and isinstance(clinician, str) and clinician.strip():
            gold["clinician_report"] = clinician.strip()  # PTB-XL's own text (often German), for reference
        rows.append(
            {
                "id": f"{name}-{qa.subtask}-{k}",
                "image": image_rel,
                "conversations": [
                    {"from": "human", "value": "<image>\n" + qa.question},
                    {"from": "gpt", "value": qa.answer},
                ],
                "metadata": {
                    "subtask": qa.subtask,
                    "type": qa.type,
                    "source": source,
                    "record_id": rid,
                    "split": split,
                    "gold": gold,
                },
            }
        )
    height, width = page.array.shape[:2]
    style_facts = {
        "layout": layout,
        "augment": augment,
        "paper": style.paper,
        "grid": style.grid_color,
        "speed": style.speed,
        "gain": style.gain,
        "header_measurements": bool(style.header and style.header_measurements),
        "size": [width, height],
    }
    return {
        "key": key,
        "record_id": rid,
        "image": image_rel,
        "split": split,
        "labels": labels,
        "style": style_facts,
        "rows": rows,
    }


# ------------------------------------------------------------------ the run
_WORKER: dict[str, Any] = {}


def _init_worker(cfg: BuildConfig, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if mp.current_process().name != "MainProcess":
        _die_with_parent()
    _WORKER["cfg"], _WORKER["out"] = cfg, Path(out)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the build process dies, instead of finishing its record
    as an orphan (harmless, units are atomic, but it looks like the kill did not work)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def unit_path(out: Path, key: str) -> Path:
    return out / ".staging" / "units" / f"{safe_name(key)}.json"


def _process(item: tuple[str, Any]) -> str:
    cfg: BuildConfig = _WORKER["cfg"]
    out: Path = _WORKER["out"]
    key, payload = item
    try:
        record = load_record(cfg, key, payload)
        unit = make_unit(cfg, out, key, record)
    except ECGVLMError as e:
        if cfg.on_error == "raise":
            if key in str(e) or (e.path and e.path in str(payload)):
                raise
            raise ECGVLMError(f"record {key}: {e}") from None
        unit = {"key": key, "skipped": str(e)}
    atomic_write_json(unit_path(out, key), unit, indent=None)
    return key


def _check_config(out: Path, cfg: BuildConfig) -> None:
    path = out / ".staging" / "config.json"
    want = {"format": FORMAT_VERSION, **asdict(cfg)}
    want = json.loads(json.dumps(want))
    if path.exists():
        # A build from before an option existed was made with that option's default.
        defaults = json.loads(json.dumps(asdict(BuildConfig(source=cfg.source))))
        have = {**defaults, **json.loads(path.read_text("utf-8"))}
        if isinstance(have.get("sidecars"), bool):  # builds made when sidecars were only full JSON
            have["sidecars"] = "full" if have["sidecars"] else "none"
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise ECGVLMError(
                f"was built with other options ({', '.join(diff)}); use a new --out folder or delete it", out
            )
    else:
        atomic_write_json(path, want)


def build(
    cfg: BuildConfig,
    out: str | Path,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    command: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> BuildResult:
    """Build (or resume) the dataset in ``out``. With ``shard=(i, n)`` only every n-th record from
    the i-th is made and nothing is assembled; a later run without ``shard`` assembles."""
    from tqdm import tqdm

    out = Path(out)
    if shard is not None and shard[1] == 1:
        shard = None  # one shard of one is the whole build
    if shard is not None and not (0 <= shard[0] < shard[1]):
        raise ECGVLMError(f"shard must be i/n with 0 <= i < n, got {shard[0]}/{shard[1]}")
    # builds made before output markers existed are recognised by their staging config
    claim_output_dir(out, "dataset build", overwrite=overwrite, legacy=[".staging/config.json"])
    _check_config(out, cfg)
    if shard is None:
        # Temporary files of a killed run (atomic writes that never finished). Shard runs leave
        # them alone: another shard may be writing into the same folder right now.
        for folder in (out / "images", out / ".staging" / "units", out):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                tmp.unlink(missing_ok=True)
    result = BuildResult(out=out)

    keys: list[str] = []

    def todo() -> Iterator[tuple[str, Any]]:
        for pos, (key, payload) in enumerate(source_items(cfg)):
            keys.append(key)
            if shard is not None and pos % shard[1] != shard[0]:
                continue
            if unit_path(out, key).exists():
                result.resumed += 1
                bar.update(1)
                continue
            yield key, payload

    def tick() -> None:
        result.done += 1
        bar.update(1)

    total = count_items(cfg)
    if total is not None and shard is not None:
        total = len(range(shard[0], total, shard[1]))
    bar = tqdm(
        total=total, unit="rec", desc="dataset", disable=not progress, mininterval=1.0, dynamic_ncols=True
    )
    with bar:
        if workers <= 1:
            _init_worker(cfg, str(out))
            for item in todo():
                _process(item)
                tick()
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, str(out))) as pool:
                # A bounded window of tasks in flight: a PTB-XL source yields whole records, and
                # Pool.imap would read the entire source into its queue ahead of the workers.
                pending: deque = deque()
                for item in todo():
                    pending.append(pool.apply_async(_process, (item,)))
                    while len(pending) >= 4 * workers or (pending and pending[0].ready()):
                        pending.popleft().get()
                        tick()
                while pending:
                    pending.popleft().get()
                    tick()

    if shard is not None:
        if command is not None:  # `dataset assemble` writes it into the card, as a whole build would
            atomic_write_text(out / ".staging" / "command.txt", command + "\n")
        return result
    result.counts = _assemble_all(out, keys, cfg, command)
    result.assembled = True
    return result


def _assemble_all(out: Path, keys: list[str], cfg: BuildConfig, command: str | None) -> dict[str, Any]:
    missing = [k for k in keys if not unit_path(out, k).exists()]
    if missing:
        raise ECGVLMError(
            f"{len(missing)} records have no finished unit (first: {missing[0]}); rerun to resume", out
        )
    return assemble(out, keys, cfg, command)


def assemble_shards(out: str | Path) -> BuildResult:
    """Join the shards of a build made with ``shard`` (or a Slurm array) in ``out``: the same files
    a one-process build of the same command writes. Raises if any record has no finished unit."""
    out = Path(out)
    check_output_dir(out, "dataset build", legacy=[".staging/config.json"])
    path = out / ".staging" / "config.json"
    if not path.is_file():
        raise ECGVLMError("no .staging/config.json: not a dataset build folder", out)
    saved = json.loads(path.read_text("utf-8"))
    if saved.pop("format", None) != FORMAT_VERSION:
        raise ECGVLMError("was built by another version of the dataset format; rebuild it", out)
    for name in ("tasks", "split", "conditions"):
        saved[name] = tuple(saved[name])
    try:
        cfg = BuildConfig(**saved)
    except TypeError as e:
        raise ECGVLMError(f"unreadable build options ({e})", path) from None
    command_file = out / ".staging" / "command.txt"
    command = command_file.read_text("utf-8").strip() if command_file.is_file() else None
    keys = [key for key, _ in source_items(cfg)]
    result = BuildResult(out=out, resumed=len(keys), assembled=True)
    result.counts = _assemble_all(out, keys, cfg, command)
    return result


def _dumps_row(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


def assemble(out: Path, keys: list[str], cfg: BuildConfig, command: str | None) -> dict[str, Any]:
    """Concatenate the units, in source order, into train/val/test.json (JSON lists, one row per line)."""
    from ecgvlm.instruct.card import Counts, write_card

    counts = Counts()
    seen_ids: dict[str, str] = {}
    with ExitStack() as stack:
        files = {s: stack.enter_context(atomic_open(out / f"{s}.json", "w")) for s in SPLITS}
        first = dict.fromkeys(SPLITS, True)
        for f in files.values():
            f.write("[\n")
        for key in keys:
            unit = json.loads(unit_path(out, key).read_text("utf-8"))
            if "skipped" in unit:
                counts.skip(unit["skipped"])
                continue
            rid, split = unit["record_id"], unit["split"]
            if seen_ids.setdefault(rid, split) != split:
                raise ECGVLMError(
                    f"record id {rid!r} appears in two splits; ids must be unique per source", out
                )
            counts.add_unit(unit)
            for row in unit["rows"]:
                files[split].write(("" if first[split] else ",\n") + _dumps_row(row))
                first[split] = False
        for f in files.values():
            f.write("\n]\n")
    write_card(out, counts.to_dict(), cfg, command)
    return counts.to_dict()
