"""ECGInstruct-format instruction datasets: building them from records, and reading real ones.

from ecgvlm.instruct import BuildConfig, build, iter_rows
build(BuildConfig(source="synth:300", seed=3), "data/synth300", workers=2)
for row in iter_rows("data/synth300/test.json"):
    row.question, row.answer, row.metadata["gold"]
"""

import importlib

# Lazy, so `ecgvlm dataset --help` does not import numpy and the renderer.
_WHERE = {
    "BuildConfig": "config",
    "BuildResult": "build",
    "build": "build",
    "ReadSummary": "reader",
    "Row": "reader",
    "check_file": "reader",
    "iter_rows": "reader",
    "make_report": "report",
    "parse_codes": "report",
    "TASKS": "tasks",
    "make_questions": "tasks",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ecgvlm.instruct.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ecgvlm.instruct' has no attribute {name!r}")
