"""ecgvlm: ECG image interpretation with multimodal LLMs.

Stages, in the order data flows: signals -> render -> instruct -> model/train -> evaluate -> serve.
"""

__version__ = "0.1.0"
