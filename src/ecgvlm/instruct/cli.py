"""Build, check or inspect ECGInstruct-format instruction datasets.

  build     render records and write images/ + train.json, val.json, test.json + README.md
  assemble  join the shards of a build (--shard i/n, or a Slurm job array) into the splits
  check     validate a real ECGInstruct / ECGBench file (or one of ours) and print counts
  stats     print the counts of a built dataset (its stats.json)

Examples:
  ecgvlm dataset build --source synth:300 --out data/synth300 --seed 3 --workers 2
  ecgvlm dataset build --source wfdb:records/ --out data/hosp --dpi 200 --augment light
  ecgvlm dataset build --source ptbxl:ptb-xl-1.0.3/ --out data/ptbxl --shard 0/4   (then 1/4 ...,
        then `ecgvlm dataset assemble data/ptbxl`; see docs/scale.md for Slurm job arrays)
  ecgvlm dataset check ECGInstruct.json --root images_root/ --skip
  ecgvlm dataset stats data/synth300

A killed build resumes where it stopped when run again with the same options. The same command
gives byte-identical files whatever --workers is.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ecgvlm.errors import ECGVLMError
from ecgvlm.shards import resolve_shard

if TYPE_CHECKING:
    from ecgvlm.instruct.build import BuildResult

BUILD_HELP = """\
Render every record once (DIR/images/<record>.png) and ask several questions about it. Writes
DIR/train.json, val.json, test.json (JSON lists of ECGInstruct rows, readable by
datasets.load_dataset("json", ...)), DIR/README.md (the dataset card) and DIR/stats.json.

Tasks: report (clinical report), superclass (NORM/MI/STTC/CD/HYP), scp (the 71 PTB-XL
statements), mcq (4 options), yesno (one condition), measure (hr/pr/qrs/qt/qtc/axis with a
tolerance). Answers come from the record's labels and measurements only; metadata.gold carries
them in every split. Test records get one question of every task.

Examples:
  ecgvlm dataset build --source synth:300 --out data/s300 --seed 3 --workers 2
  ecgvlm dataset build --source wfdb:my_archive/ --out data/hosp --dpi 200 --on-error skip
  ecgvlm dataset build --source synth:1000 --out data/cot --tasks superclass,yesno --step-by-step 0.5
"""

CHECK_HELP = """\
Stream a JSON list or JSON-lines file of ECGInstruct / ECGBench rows and validate each row:
keys, roles (human/gpt or user/assistant), <image> token, empty answers, image paths (inside
--root, file present). Prints counts; exit status 0 if every row is good, 1 if rows were
skipped (--skip), 2 with a one-line error at the first bad row (default).

Example:
  ecgvlm dataset check ECGBench/ptb-test-report.json --root ECGBench/ --skip
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="build|assemble|check|stats")

    b = sub.add_parser(
        "build",
        help="build a dataset from ECG records",
        description=BUILD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _source_options(b)
    _page_options(b)
    _question_options(b)
    _output_options(b)

    a = sub.add_parser(
        "assemble",
        help="join the shards of a build into train/val/test.json and the card",
        description="Join the records that `ecgvlm dataset build --shard i/n` (or a Slurm job array) made "
        "in DIR into train.json, val.json, test.json, README.md and stats.json: the same bytes as one "
        "process running the same build command. Stops, naming the first, if a record is missing.",
    )
    a.add_argument("dir")

    c = sub.add_parser(
        "check",
        help="validate an ECGInstruct/ECGBench file",
        description=CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("file")
    c.add_argument(
        "--root", default=None, help="folder the image paths are relative to (default: the file's)"
    )
    c.add_argument("--skip", action="store_true", help="count bad rows instead of stopping at the first")
    c.add_argument("--no-images", action="store_true", help="do not check that image files exist")
    c.add_argument("--image-token", choices=["auto", "require", "optional"], default="auto")

    s = sub.add_parser("stats", help="print the counts of a built dataset")
    s.add_argument("dir")


def _source_options(b: argparse.ArgumentParser) -> None:
    """Which records, where the build goes, and who makes which part of it."""
    b.add_argument("--source", required=True, help="synth:N | ptbxl:PATH | wfdb:DIR")
    b.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    b.add_argument(
        "--overwrite",
        action="store_true",
        help="start --out over when it holds an earlier build (never removes files ecgvlm did not write)",
    )
    b.add_argument(
        "--seed", type=int, default=0, help="decides splits (synth/wfdb), page styles and questions"
    )
    b.add_argument(
        "--conditions",
        default="",
        help="synth only: each record gets exactly one of these SCP conditions (one listed twice is drawn twice as often), e.g. "
        "NORM,IMI,ASMI,ISC_,ISCAL,CLBBB,CRBBB,LVH (default: the generator's full label prior)",
    )
    b.add_argument("--workers", type=int, default=1, help="processes (output does not depend on it)")
    b.add_argument(
        "--shard",
        default=None,
        help="i/n: make only this shard's records, do not assemble (default inside a Slurm job array: "
        "the task's shard from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT)",
    )


def _page_options(b: argparse.ArgumentParser) -> None:
    """How each record's page looks."""
    b.add_argument("--augment", default="mixed", choices=["none", "light", "heavy", "mixed"])
    b.add_argument(
        "--layout", default="3x4+1", help="a layout (3x4+1, 3x4+3, 6x2, 12x1, 1x1), a comma list, or mixed"
    )
    b.add_argument(
        "--dpi",
        type=float,
        default=40.0,
        help="page resolution: 40 -> ~440x340 px (tiny model); 200 for real models",
    )
    b.add_argument(
        "--style",
        default="sampled",
        help="page look: sampled (varied paper, grid, ink, speed, gain; default) or a fixed preset: "
        "tiny (50 mm/s, 20 mm/mV, no header: what the embedded 224-px model can read), default",
    )


def _question_options(b: argparse.ArgumentParser) -> None:
    """What is asked about each page, and how the records are split."""
    b.add_argument(
        "--tasks",
        default="report,superclass,scp,mcq,yesno,measure",
        help="comma list of tasks: report, superclass, scp, mcq, yesno, measure (the default set) and "
        "diagnosis (the diagnostic statements and conclusion in words: a diagnosis-first report's "
        "opening, alone)",
    )
    b.add_argument("--questions-per-record", type=int, default=4, help="questions per image (train/val)")
    b.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions (PTB-XL uses its folds)")
    b.add_argument(
        "--step-by-step",
        type=float,
        nargs="?",
        const=1.0,
        default=0.0,
        metavar="FRACTION",
        help="answer step by step (all answers, or this fraction of them)",
    )
    b.add_argument(
        "--report-lead",
        choices=["rhythm", "diagnosis"],
        default="rhythm",
        help="what a report starts with: the rhythm, as PTB-XL's reports do (default), or the diagnostic "
        "statements and conclusion (a small model then names the diagnosis where it reads the page best)",
    )
    b.add_argument(
        "--test-sample",
        action="store_true",
        help="test records get --questions-per-record questions too (default: one per task)",
    )


def _output_options(b: argparse.ArgumentParser) -> None:
    """Bad records, the files written for each page, and progress."""
    b.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="a record that cannot be read or rendered: stop, or skip it (counted in the card)",
    )
    b.add_argument("--image-format", choices=["png", "jpg"], default="png")
    b.add_argument(
        "--sidecars",
        nargs="?",
        const="compact",
        default="none",
        choices=["compact", "full"],
        help="also write each page's sidecar JSON (pixel of every sample): compact (the default form, "
        "~40 kB a page, read with ecgvlm.render.load_sidecar) or full (plain JSON, ~300 kB)",
    )
    b.add_argument("--no-progress", action="store_true")


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ECGVLMError(f"--split must be three fractions like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise ECGVLMError(f"--split must be three fractions like 0.8,0.1,0.1, got {text!r}")
    return parts  # type: ignore[return-value]


def main(args: argparse.Namespace) -> int:
    if args.action == "build":
        return _build(args)
    if args.action == "assemble":
        return _assemble(args)
    if args.action == "check":
        return _check(args)
    return _stats(args)


def _build(args: argparse.Namespace) -> int:
    from ecgvlm.instruct.build import build
    from ecgvlm.instruct.config import BuildConfig

    cfg = BuildConfig(
        source=args.source,
        seed=args.seed,
        layout=args.layout,
        augment=args.augment,
        dpi=args.dpi,
        style=args.style,
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
        questions_per_record=args.questions_per_record,
        split=_split(args.split),
        step_by_step=args.step_by_step,
        report_lead=args.report_lead,
        test_all_tasks=not args.test_sample,
        on_error=args.on_error,
        image_format=args.image_format,
        sidecars=args.sidecars,
        conditions=tuple(c.strip() for c in args.conditions.split(",") if c.strip()),
    )
    shard = resolve_shard(args.shard)
    if shard is not None and args.overwrite:
        raise ECGVLMError("--overwrite with a shard would empty the folder the other shards write into")
    if shard is not None and args.shard is None:
        print(f"shard {shard[0]}/{shard[1]} from the Slurm job array (SLURM_ARRAY_TASK_ID)")
    res = build(
        cfg,
        args.out,
        workers=args.workers,
        shard=shard,
        command=_build_command(),
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    if not res.assembled:
        print(
            f"shard {shard[0]}/{shard[1]}: {res.done} records made, {res.resumed} already done; "
            f"when every shard is done: ecgvlm dataset assemble {shlex.quote(str(args.out))}"
        )
        return 0
    return _report(res)


def _build_command() -> str:
    """The build command for the card, without --shard: every shard of a job, and one process
    running the whole job, write the same card."""
    argv = sys.argv[sys.argv.index("build") :] if "build" in sys.argv else ["build"]
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip or arg.startswith("--shard="):
            skip = False
            continue
        if arg == "--shard":
            skip = True
            continue
        kept.append(arg)
    return "ecgvlm dataset " + shlex.join(kept)


def _assemble(args: argparse.Namespace) -> int:
    from ecgvlm.instruct.build import assemble_shards

    return _report(assemble_shards(args.dir))


def _report(res: BuildResult) -> int:
    c = res.counts
    if not sum(c["rows"].values()):
        skipped = sum(c["skipped"].values())
        why = "; ".join(f"{v} x {k}" for k, v in c["skipped"].items()) or "the source has no records"
        raise ECGVLMError(f"no rows were made ({skipped} records skipped: {why})", res.out)
    print(
        f"{res.out}: {sum(c['records'].values())} records ({res.done} made now, {res.resumed} resumed), "
        + ", ".join(f"{s} {c['rows'].get(s, 0)} rows" for s in ("train", "val", "test"))
    )
    if c["skipped"]:
        print(
            f"skipped {sum(c['skipped'].values())} records: "
            + "; ".join(f"{v} x {k}" for k, v in c["skipped"].items())
        )
    print(f"dataset card: {Path(res.out) / 'README.md'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ecgvlm.instruct.reader import check_file

    summary = check_file(
        args.file,
        args.root,
        on_error="skip" if args.skip else "raise",
        check_images=not args.no_images,
        image_token=args.image_token,
    )
    print(f"{args.file}:")
    for line in summary.lines():
        print("  " + line)
    if not summary.rows:
        why = (
            f"all {sum(summary.skipped.values())} rows were skipped"
            if summary.skipped
            else "the file is empty"
        )
        raise ECGVLMError(f"no valid rows ({why})", args.file)
    return 1 if summary.skipped else 0


def _stats(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "stats.json"
    if not path.is_file():
        raise ECGVLMError("no stats.json: not a built dataset (or the build has not finished)", args.dir)
    c = json.loads(path.read_text("utf-8"))
    print("records: " + ", ".join(f"{k} {v}" for k, v in c["records"].items()))
    print("rows:    " + ", ".join(f"{k} {v}" for k, v in c["rows"].items()))
    for name in ("tasks", "superclass"):
        print(f"{name}:")
        for key, per in c[name].items():
            print(f"  {key:<12} " + ", ".join(f"{s} {n}" for s, n in per.items()))
    for facet, per in c["style"].items():
        print(f"style {facet}: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    return 0
