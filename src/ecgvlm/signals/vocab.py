"""The 71 PTB-XL SCP-ECG statements and their superclasses (NORM, MI, STTC, CD, HYP).

Facts from PTB-XL's scp_statements.csv, kept as a data file of the package.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")


@dataclass(frozen=True)
class Statement:
    code: str
    description: str
    diagnostic: bool
    form: bool
    rhythm: bool
    superclass: str | None  # one of SUPERCLASSES, or None for form/rhythm-only statements
    subclass: str | None
    category: str


@cache
def statements() -> dict[str, Statement]:
    """All 71 statements, keyed by code, in the file's order."""
    text = resources.files("ecgvlm.signals").joinpath("scp_statements.csv").read_text("utf-8")
    out: dict[str, Statement] = {}
    for row in csv.DictReader(text.splitlines()):
        out[row["code"]] = Statement(
            code=row["code"],
            description=row["description"],
            diagnostic=row["diagnostic"] == "1",
            form=row["form"] == "1",
            rhythm=row["rhythm"] == "1",
            superclass=row["superclass"] or None,
            subclass=row["subclass"] or None,
            category=row["category"],
        )
    return out


def codes() -> list[str]:
    return list(statements())


def superclasses_of(labels: Iterable[str]) -> list[str]:
    """The superclasses implied by a set of SCP codes, in SUPERCLASSES order."""
    table = statements()
    found = {table[c].superclass for c in labels if c in table and table[c].superclass}
    return [s for s in SUPERCLASSES if s in found]
