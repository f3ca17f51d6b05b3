"""What every report judge shares: the three aspects, the score record and the total."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

ASPECTS = ("diagnosis", "waveform", "rhythm")


@dataclass(frozen=True)
class JudgeScore:
    diagnosis: float | None
    waveform: float | None
    rhythm: float | None
    total: float
    rationale: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def total_of(aspects: dict[str, float | None]) -> float:
    judged = [v for v in aspects.values() if v is not None]
    return round(10.0 * sum(judged) / len(judged), 2) if judged else 0.0


class Judge(Protocol):
    name: str

    def score(self, candidate: str, reference: str) -> JudgeScore: ...
