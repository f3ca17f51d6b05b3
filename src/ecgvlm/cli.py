"""The ``ecgvlm`` command.

Each sub-command lives in the module of its stage and exposes two functions:
``add_arguments(parser)`` and ``main(args) -> int | None``. Modules are imported only when their
command runs, so ``ecgvlm --help`` stays instant and a broken optional stage cannot break the rest.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ecgvlm import __version__
from ecgvlm.errors import ECGVLMError

# name -> (module, one-line help). Order is the order of the data flow.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("ecgvlm.signals.cli_synth", "generate labelled synthetic 12-lead ECG records (WFDB)"),
    "info": ("ecgvlm.signals.cli_info", "print what an ECG record or dataset folder holds"),
    "render": ("ecgvlm.render.cli", "render records as ECG printout images with a JSON sidecar"),
    "dataset": ("ecgvlm.instruct.cli", "build, check or inspect ECGInstruct-format instruction datasets"),
    "pretrain-base": (
        "ecgvlm.train.cli_pretrain",
        "pretrain the tiny Mllama base on generic trace-reading tasks",
    ),
    "train": ("ecgvlm.train.cli", "LoRA / partial fine-tuning from a YAML recipe"),
    "merge": ("ecgvlm.train.cli_merge", "merge a LoRA adapter into its base for external engines"),
    "card": ("ecgvlm.train.cli_card", "add `ecgvlm score` results to a model's card (README.md)"),
    "sweep": ("ecgvlm.train.sweep", "run a grid of training + evaluation points (ablations)"),
    "evaluate": ("ecgvlm.evaluate.cli_evaluate", "run a model over a test file and write predictions.jsonl"),
    "score": ("ecgvlm.evaluate.cli_score", "score predictions (ECGBench-compatible or strict)"),
    "table": ("ecgvlm.evaluate.cli_table", "Table I (and sweep tables) from evaluation runs"),
    "cnn": ("ecgvlm.evaluate.cnn", "train / evaluate the CNN baseline on the same images"),
    "interpret": ("ecgvlm.serve.cli_interpret", "interpret one or more ECG images"),
    "serve": ("ecgvlm.serve.cli_serve", "serve the model over HTTP with a web page"),
    "demo": ("ecgvlm.demo", "the whole pipeline on the embedded default, end to end"),
}

EPILOG = """\
The data flows left to right: synth/info -> render -> dataset -> train -> evaluate/score/table
-> interpret/serve. `ecgvlm demo` runs all of it on the embedded tiny model.
Run `ecgvlm COMMAND --help` for a command's options."""


def _top_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: ecgvlm [--version] COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines) + "\n\n" + EPILOG + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"ecgvlm {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"ecgvlm: unknown command {name!r}\n\n{_top_help()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            print(f"ecgvlm {name}: not available in this build ({module_name} missing)", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(
        prog=f"ecgvlm {name}",
        description=(module.__doc__ or help_).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    try:  # `train --config X a=1 --resume b=2`: options may sit between KEY=VALUE positionals
        args = parser.parse_intermixed_args(argv[1:])
    except TypeError:  # argparse cannot intermix with sub-commands (dataset build, cnn train)
        args = parser.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except ECGVLMError as e:
        print(f"ecgvlm {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ecgvlm {name}: interrupted; finished work is kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
