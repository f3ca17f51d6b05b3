"""Interpretation API, CLI and HTTP server with a web page.

``ECGInterpreter.from_pretrained(...).interpret(image)`` is the Python API; ``ecgvlm interpret`` and
``ecgvlm serve`` are the commands.
"""

from ecgvlm.serve.interpreter import ECGInterpreter, Interpretation, InterpretConfig, StatementProb

__all__ = ["ECGInterpreter", "InterpretConfig", "Interpretation", "StatementProb"]
