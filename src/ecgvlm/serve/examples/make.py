"""Regenerate the bundled example printouts: ``python -m ecgvlm.serve.examples.make``.

Synthetic records (fixed seeds) rendered with the default style at a small dpi, so the files stay
small and the same command always writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES = {
    "normal-sinus-rhythm": ["NORM", "SR"],
    "atrial-fibrillation": ["AFIB"],
    "inferior-mi": ["IMI", "SR"],
    "left-bundle-branch-block": ["CLBBB", "SR"],
    "lvh": ["LVH", "SR"],
}
SEED = 2024
DPI = 80


def main() -> None:
    from ecgvlm.io import atomic_write_bytes
    from ecgvlm.render import RenderStyle, render
    from ecgvlm.signals.synth import synthesize_record

    out = Path(__file__).parent
    for index, (name, codes) in enumerate(EXAMPLES.items()):
        record = synthesize_record(SEED, index, conditions=codes)
        page = render(record, layout="3x4+1", augment="none", seed=index, style=RenderStyle(dpi=DPI))
        atomic_write_bytes(out / f"{name}.png", page.encode("png"))
        (out / f"{name}.png").chmod(0o644)  # package data: readable by everyone (mkstemp made it 0600)
        print(f"{name}.png: {sorted(record.labels)}")


if __name__ == "__main__":
    main()
