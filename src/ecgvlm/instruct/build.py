"""Build an ECGInstruct-format dataset: render each record once, ask several questions about it.

Work is split per record. Each record becomes a *unit* (``ecgvlm.instruct.unit``): its image
``images/<name>.png`` and a small JSON file in ``.staging/units/`` holding that record's rows.
Units are written atomically and independently, so a killed build resumes where it stopped, any
number of workers (or machines, with ``shard``) can share the work, and the result does not depend
on who did what. At the end the units are read back in source order (``ecgvlm.instruct.sources``)
and concatenated into ``train.json``, ``val.json``, ``test.json`` plus the dataset card
``README.md``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.config import BuildConfig
from ecgvlm.instruct.sources import count_items, safe_name, source_items
from ecgvlm.instruct.unit import load_record, make_unit
from ecgvlm.io import atomic_open, atomic_write_json, atomic_write_text
from ecgvlm.outputs import check_output_dir, claim_output_dir

FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class BuildResult:
    out: Path
    counts: dict[str, Any] = field(default_factory=dict)
    done: int = 0  # units finished in this run
    resumed: int = 0  # units found from an earlier run
    assembled: bool = False


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
