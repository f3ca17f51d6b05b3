"""Interpretation API, CLI and HTTP server with a web page.

``ECGInterpreter.from_pretrained(...).interpret(image)`` is the Python API; ``ecgvlm interpret`` and
``ecgvlm serve`` are the commands. Names are imported lazily so ``ecgvlm serve --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ECGInterpreter", "InterpretConfig", "Interpretation", "StatementProb"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ecgvlm.serve import interpreter

        return getattr(interpreter, name)
    raise AttributeError(f"module 'ecgvlm.serve' has no attribute {name!r}")
