"""Interpret ECG images: a report, the detected statements with probabilities, measurements.

Examples:
  ecgvlm interpret ecg.png                      # runs/demo/model if present, else the tiny base
  ecgvlm interpret a.png b.png --json > out.json
  ecgvlm interpret scans/*.png --model runs/x/base --adapter runs/x/adapter --batch-size 16

Probabilities are the model's P(yes) to "Does this ECG show <statement>?", or, for superclasses of
a model fine-tuned on the superclass question but not on yes/no questions (`ecgvlm demo`'s), the
probability that its answer to that question names the superclass. Measurements are parsed from
its answers to measurement questions and left out when it gives no plausible number. A kind of
question the adapter was not fine-tuned on (its train_summary.json lists the tasks) is not asked,
and the output says so; --ask-untrained asks anyway.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="PNG, JPEG or WebP ECG images")
    parser.add_argument(
        "--model", default=None, help="model folder (default: runs/demo/model, else tiny base)"
    )
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder to apply on --model")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward batch")
    parser.add_argument(
        "--all", action="store_true", help="list every probed statement, not only detected ones"
    )
    add_question_arguments(parser)


def add_question_arguments(parser: argparse.ArgumentParser) -> None:
    """What the model is asked (shared with ``ecgvlm serve``)."""
    parser.add_argument(
        "--superclasses",
        choices=["auto", "yesno", "sets"],
        default="auto",
        help="yesno: P(yes) to 'Does this ECG show <superclass>?'; sets: P(the answer to the "
        "superclass question names it); auto (default): yesno unless the model was fine-tuned on "
        "the superclass question and not on yes/no questions",
    )
    parser.add_argument(
        "--ask-untrained",
        action="store_true",
        help="also ask kinds of question the model was not fine-tuned on (their answers are noise)",
    )


def interpret_config(args: argparse.Namespace):
    from ecgvlm.serve.interpreter import InterpretConfig

    return InterpretConfig(superclass_method=args.superclasses, ask_untrained=args.ask_untrained)


def bar(p: float, width: int = 20) -> str:
    filled = round(p * width)
    return "#" * filled + "." * (width - filled)


def format_text(path: str, result, show_all: bool = False) -> str:
    from ecgvlm.serve.interpreter import MEASUREMENTS

    skipped = result.skipped

    def section(name: str) -> list[str]:
        return [f"  ({skipped[name]})"] if name in skipped else []

    lines = [f"== {path}  (model {result.model})", "", "Report:"]
    lines += section("report") or [f"  {result.report or '(empty)'}"]
    lines += ["", "Superclasses:", *section("superclasses")]
    for code, p in result.superclasses.items():
        lines.append(f"  {code:<5} {bar(p)} {p * 100:5.1f}%")
    shown = result.statements if show_all else result.detected()
    lines += ["", "Statements:" if show_all else "Detected statements (p >= 50%):", *section("statements")]
    if not shown and "statements" not in skipped:
        lines.append("  (none)")
    for s in shown:
        lines.append(f"  {s.code:<7} {bar(s.probability)} {s.probability * 100:5.1f}%  {s.description}")
    lines += ["", "Measurements:", *section("measurements")]
    if not result.measurements and "measurements" not in skipped:
        lines.append("  (none given)")
    for k, v in result.measurements.items():
        lines.append(f"  {k:<4} {v:g} {MEASUREMENTS[k][1] if k in MEASUREMENTS else ''}")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.serve.interpreter import ECGInterpreter, load_image

    if args.batch_size < 1:
        raise ECGVLMError("--batch-size must be at least 1")
    images = [load_image(p) for p in args.images]  # fail on a bad file before loading the model
    interp = ECGInterpreter.from_pretrained(args.model, args.adapter, args.device, interpret_config(args))
    if interp.warning:
        print(f"ecgvlm interpret: warning: {interp.warning}", file=sys.stderr)
    results = interp.interpret(images, batch_size=args.batch_size)
    if args.json:
        out = [{"image": p, **r.to_dict()} for p, r in zip(args.images, results)]
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print("\n".join(format_text(p, r, args.all) for p, r in zip(args.images, results)), end="")
    return 0
