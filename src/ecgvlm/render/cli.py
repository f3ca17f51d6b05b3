"""Render ECG records as paper printouts (PNG/JPEG) with a JSON sidecar of every sample's pixel.

One record (WFDB .hea/.dat, CinC .hea/.mat; give the path with or without the suffix):
  ecgvlm render data/E07500 --out page.png
  ecgvlm render data/E07500.hea --out page.jpg --layout 6x2 --augment heavy --seed 3 --dpi 100

A folder or dataset (every record; file names from record ids; existing outputs are kept, so an
interrupted run resumes):
  ecgvlm render data/ --out pages/ --workers 2 --augment light --random-style

The sidecar (FILE with .json) lists page size, dpi, px per mm, speed, gain, each lead's box, time
window and sample pixels (after any rotation/perspective), calibration pulses and the homography.
The sample pixels are packed (compact, ~40 kB a page; ecgvlm.render.load_sidecar reads them back);
--sidecar full writes them as plain JSON numbers (~300 kB).
Layouts: 3x4+1 (default), 3x4+3, 6x2, 12x1, 1x1. Presets: none, light, heavy.
"""

from __future__ import annotations

import argparse
import itertools
import re
import zlib
from pathlib import Path

from ecgvlm.errors import ECGVLMError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ecgvlm.render.style import FONTS, GRID_COLORS, LAYOUTS

    parser.add_argument("record", help="a record path, or a folder / dataset of records (batch mode)")
    parser.add_argument("--out", required=True, help="output image (.png/.jpg), or a folder in batch mode")
    parser.add_argument("--layout", default="3x4+1", choices=LAYOUTS)
    parser.add_argument("--augment", default="none", choices=("none", "light", "heavy"))
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds header ids, style sampling and degradations"
    )
    parser.add_argument(
        "--dpi", type=float, default=None, help="resolution (default 200: letter = 2200x1700)"
    )
    parser.add_argument("--paper", choices=("letter", "a4"), default=None)
    parser.add_argument("--speed", type=float, choices=(25.0, 50.0), default=None, help="mm/s")
    parser.add_argument("--gain", type=float, choices=(5.0, 10.0, 20.0), default=None, help="mm/mV")
    parser.add_argument("--grid-color", choices=tuple(GRID_COLORS), default=None)
    parser.add_argument("--font", choices=tuple(FONTS), default=None)
    parser.add_argument("--lead", default=None, help="the lead of the 1x1 layout (default II)")
    parser.add_argument("--no-header", action="store_true", help="no ids, demographics or measurements")
    parser.add_argument("--random-style", action="store_true", help="draw paper/grid/ink/font from the seed")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="image format in batch mode")
    parser.add_argument(
        "--sidecar",
        choices=("compact", "full"),
        default="compact",
        help="sample pixels packed (default; read with ecgvlm.render.load_sidecar) or as plain JSON numbers",
    )
    parser.add_argument("--fs", type=float, default=None, help="resample records to this rate first")
    parser.add_argument("--workers", type=int, default=1, help="processes in batch mode")


def _style(args: argparse.Namespace, seed: int):
    import numpy as np

    from ecgvlm.render.style import RenderStyle

    fixed = {
        k: v
        for k, v in dict(
            dpi=args.dpi,
            paper=args.paper,
            speed=args.speed,
            gain=args.gain,
            grid_color=args.grid_color,
            font=args.font,
            single_lead=_lead_name(args.lead) if args.lead else None,
        ).items()
        if v is not None
    }
    if args.no_header:
        fixed["header"] = False
    if args.random_style:
        return RenderStyle.sample(np.random.default_rng([seed, 7]), **fixed)
    return RenderStyle(**fixed)


def _lead_name(name: str) -> str:
    """Accept any case ("v1", "AVR"): records and users spell leads in many ways."""
    from ecgvlm.signals.record import LEADS

    by_lower = {lead.lower(): lead for lead in LEADS}
    if name.lower() not in by_lower:
        raise ECGVLMError(f"unknown lead {name!r} for --lead; known: {', '.join(LEADS)}")
    return by_lower[name.lower()]


def _record_seed(seed: int, record_id: str) -> int:
    """Per-record seed from the run seed and the record id: independent of order and workers."""
    return zlib.crc32(f"{seed}:{record_id}".encode()) & 0x7FFFFFFF


def _safe_name(record_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", record_id).strip("._") or "record"


def _render_one(args: argparse.Namespace, record, out: Path, seed: int) -> None:
    from ecgvlm.render.page import render

    page = render(record, layout=args.layout, augment=args.augment, seed=seed, style=_style(args, seed))
    page.save(out, sidecar=args.sidecar)


def _batch_worker(job: tuple) -> str | None:
    import cv2

    cv2.setNumThreads(1)  # one page per process; OpenCV's own threads would only oversubscribe
    args, record, out, seed = job
    try:
        _render_one(args, record, out, seed)
    except ECGVLMError as e:
        return str(e)
    return None


def _reader():
    try:
        from ecgvlm.signals.readers import iter_records, read_record
    except ImportError as e:  # the readers live in another stage of the package
        raise ECGVLMError(
            f"reading records needs ecgvlm.signals.readers, which failed to import ({e})"
        ) from None
    return read_record, iter_records


def _is_render_output(image: Path) -> bool:
    """An earlier `ecgvlm render` page: its sidecar is a render sidecar that names this image."""
    import json

    try:
        side = json.loads(image.with_suffix(".json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (
        isinstance(side, dict) and side.get("image") == image.name and "record_id" in side and "leads" in side
    )


def main(args: argparse.Namespace) -> int:
    import cv2

    from ecgvlm.outputs import claim_output_dir, claim_output_file

    cv2.setNumThreads(1)
    src, out = Path(args.record), Path(args.out)
    read_record, iter_records = _reader()
    if not src.is_dir():
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ECGVLMError("--out must end in .png, .jpg or .jpeg for a single record", out)
        claim_output_file(out, "render", sidecars=[out.with_suffix(".json")], is_ours=_is_render_output)
        record = read_record(src, fs=args.fs)
        _render_one(args, record, out, args.seed)
        print(f"wrote {out} and {out.with_suffix('.json')}")
        return 0

    from tqdm import tqdm

    if out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        raise ECGVLMError("--out must be a folder when RECORD is a folder", out)
    claim_output_dir(out, "render")

    def jobs():
        seen: set[str] = set()
        for record in iter_records(src, fs=args.fs, on_error="skip"):
            name = _safe_name(record.id)
            if name in seen:
                raise ECGVLMError(f"two records map to the output name {name!r}", src)
            seen.add(name)
            target = out / f"{name}.{args.format}"
            if target.exists() and target.with_suffix(".json").exists():
                yield None  # done in an earlier run
            else:
                yield (args, record, target, _record_seed(args.seed, record.id))

    errors: list[str] = []
    done = skipped = 0
    bar = tqdm(desc="render", unit="page")
    pool = None
    if args.workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(args.workers)
    try:
        stream = jobs()
        # Bounded chunks keep memory flat on a million-record dataset.
        while chunk := list(itertools.islice(stream, 64 * max(1, args.workers))):
            skipped += sum(j is None for j in chunk)
            todo = [j for j in chunk if j is not None]
            results = pool.map(_batch_worker, todo, chunksize=4) if pool else map(_batch_worker, todo)
            for err in results:
                done += 1
                bar.update(1)
                if err:
                    errors.append(err)
    finally:
        bar.close()
        if pool:
            pool.terminate()
    for err in errors:
        print(f"failed: {err}")
    print(f"rendered {done - len(errors)} pages into {out} ({skipped} already there, {len(errors)} failed)")
    return 1 if errors else 0
