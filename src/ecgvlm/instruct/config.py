"""The options of a dataset build (``BuildConfig``), checked as they are made.

Two builds with equal options write equal bytes, so the options are saved with a build and a
resumed or sharded run must match them (``ecgvlm.instruct.build``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.report import REPORT_LEADS
from ecgvlm.instruct.tasks import DEFAULT_TASKS, TASKS

AUGMENTS: tuple[str, ...] = ("none", "light", "heavy")
# "mixed" draws per record with these weights (augmentation: ``unit.MIXED_AUGMENT``).
MIXED_LAYOUT = {"3x4+1": 0.55, "3x4+3": 0.15, "6x2": 0.2, "12x1": 0.1}


@dataclass(frozen=True)
class BuildConfig:
    """Options that decide the dataset's content. Two builds with equal configs give equal bytes."""

    source: str  # "synth:N" | "ptbxl:PATH" | "wfdb:DIR"
    seed: int = 0
    layout: str = "3x4+1"  # a layout name, a comma list, or "mixed"
    augment: str = "mixed"  # none | light | heavy | mixed
    dpi: float = 40.0
    style: str = "sampled"  # sampled (varied looks) or a RenderStyle preset name ("tiny", "default")
    tasks: tuple[str, ...] = DEFAULT_TASKS
    questions_per_record: int = 4
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    step_by_step: float = 0.0  # fraction of non-report answers in step-by-step form
    report_lead: str = "rhythm"  # rhythm (PTB-XL's order) | diagnosis (statements and conclusion first)
    test_all_tasks: bool = True  # test records get one question of every task (complete evaluation)
    on_error: str = "raise"  # raise | skip (a record that cannot be read or rendered)
    image_format: str = "png"  # png | jpg (heavy augmentation makes PNGs large; JPEG is ~5x smaller)
    sidecars: str = "none"  # none | compact | full: the renderer's sidecar beside each image
    # synth only: each record gets exactly one of these conditions (drawn per record from the seed)
    conditions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ECGVLMError(f"unknown task(s) {', '.join(bad) or '(none)'}; known: {', '.join(TASKS)}")
        from ecgvlm.render.style import RenderStyle

        RenderStyle.preset(self.style)  # an unknown name raises, listing the known looks
        if self.augment not in (*AUGMENTS, "mixed"):
            raise ECGVLMError(f"unknown augment {self.augment!r}; known: none, light, heavy, mixed")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1.0) > 1e-6:
            raise ECGVLMError(f"split must be three fractions summing to 1, got {self.split}")
        if self.questions_per_record < 1:
            raise ECGVLMError("questions per record must be >= 1")
        if not 0.0 <= self.step_by_step <= 1.0:
            raise ECGVLMError("step-by-step fraction must be in 0..1")
        if self.report_lead not in REPORT_LEADS:
            raise ECGVLMError(
                f"report lead must be one of {', '.join(REPORT_LEADS)}, got {self.report_lead!r}"
            )
        if self.image_format not in ("png", "jpg"):
            raise ECGVLMError(f"image format must be png or jpg, got {self.image_format!r}")
        if isinstance(self.sidecars, bool):  # the API took a bool before sidecars had two forms
            object.__setattr__(self, "sidecars", "compact" if self.sidecars else "none")
        if self.sidecars not in ("none", "compact", "full"):
            raise ECGVLMError(f"sidecars must be none, compact or full, got {self.sidecars!r}")
        if self.on_error not in ("raise", "skip"):
            raise ECGVLMError(f"on_error must be raise or skip, got {self.on_error!r}")
        kind, _ = parse_source(self.source)
        if self.conditions:
            from ecgvlm.signals.synth import CONDITIONS

            if kind != "synth":
                raise ECGVLMError("--conditions applies to synth:N sources only")
            bad = [c for c in self.conditions if c not in CONDITIONS]
            if bad:
                raise ECGVLMError(
                    f"unknown synthetic condition(s) {', '.join(bad)}; known: {', '.join(CONDITIONS)}"
                )
        self.layouts()

    def layouts(self) -> dict[str, float]:
        from ecgvlm.render.style import LAYOUTS

        if self.layout == "mixed":
            return MIXED_LAYOUT
        names = [x.strip() for x in self.layout.split(",") if x.strip()]
        bad = [n for n in names if n not in LAYOUTS]
        if bad or not names:
            raise ECGVLMError(
                f"unknown layout(s) {', '.join(bad) or '(none)'}; known: {', '.join(LAYOUTS)}, mixed"
            )
        return {n: 1.0 / len(names) for n in names}


def parse_source(source: str) -> tuple[str, str]:
    kind, sep, arg = source.partition(":")
    if not sep or kind not in ("synth", "ptbxl", "wfdb") or not arg:
        raise ECGVLMError(f"source must be synth:N, ptbxl:PATH or wfdb:DIR, got {source!r}")
    if kind == "synth" and not (arg.isdigit() and int(arg) > 0):
        raise ECGVLMError(f"synth:N needs a positive record count, got {source!r}")
    if kind in ("ptbxl", "wfdb") and not Path(arg).exists():
        raise ECGVLMError("source folder does not exist", arg)
    return kind, arg
