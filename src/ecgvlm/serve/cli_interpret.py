"""Interpret ECG images: a report, the detected statements with probabilities, measurements.

Examples:
  ecgvlm interpret ecg.png                      # runs/demo/model if present, else the tiny base
  ecgvlm interpret a.png b.png --json > out.json
  ecgvlm interpret scans/*.png --model runs/x/base --adapter runs/x/adapter --batch-size 16

Probabilities are the model's P(yes) to "Does this ECG show <statement>?"; measurements are parsed
from its answers to measurement questions and left out when it gives no plausible number.
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


def bar(p: float, width: int = 20) -> str:
    filled = round(p * width)
    return "#" * filled + "." * (width - filled)


def format_text(path: str, result, show_all: bool = False) -> str:
    from ecgvlm.serve.interpreter import MEASUREMENTS

    lines = [f"== {path}  (model {result.model})", "", "Report:", f"  {result.report or '(empty)'}", ""]
    lines.append("Superclasses:")
    for code, p in result.superclasses.items():
        lines.append(f"  {code:<5} {bar(p)} {p * 100:5.1f}%")
    shown = result.statements if show_all else result.detected()
    lines += ["", "Statements:" if show_all else "Detected statements (p >= 50%):"]
    if not shown:
        lines.append("  (none)")
    for s in shown:
        lines.append(f"  {s.code:<7} {bar(s.probability)} {s.probability * 100:5.1f}%  {s.description}")
    lines += ["", "Measurements:"]
    if not result.measurements:
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
    interp = ECGInterpreter.from_pretrained(args.model, args.adapter, args.device)
    if interp.warning:
        print(f"ecgvlm interpret: warning: {interp.warning}", file=sys.stderr)
    results = interp.interpret(images, batch_size=args.batch_size)
    if args.json:
        out = [{"image": p, **r.to_dict()} for p, r in zip(args.images, results)]
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print("\n".join(format_text(p, r, args.all) for p, r in zip(args.images, results)), end="")
    return 0
