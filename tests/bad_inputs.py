"""A corpus of hostile inputs, generated (never committed as blobs), one maker per defect class.

Each ``make_*`` function writes its case under a folder the caller owns and returns the path(s) the
test feeds to a command. Run as a script to write the whole corpus somewhere to try by hand:

    python tests/bad_inputs.py /tmp/bad-corpus

Classes (issue 21): runaway answers (scoring time), lost files (outputs over someone else's
files), tracebacks (bad bytes, wrong JSON shapes, bad config values), silent nonsense (impossible
signals, tiny images, empty results).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNAWAY_BYTES = 50 * 1024 * 1024


def runaway_phrase_text(n_chars: int) -> str:
    """Unpunctuated clinical words that hit the lexicon and the negation cues on every few words:
    the shape that made the strict reader quadratic (one clause, a mention every 10 characters)."""
    unit = "no anterior infarction and sinus rhythm with lbbb not excluded "
    return (unit * (n_chars // len(unit) + 1))[:n_chars]


def make_runaway_predictions(folder: Path, n_bytes: int = RUNAWAY_BYTES) -> Path:
    """predictions.jsonl with 12 ordinary rows and one answer of ``n_bytes`` (a looping model)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.jsonl"
    gold = [["NORM"], ["MI"], ["CD"], ["STTC"], ["HYP"], ["MI", "CD"]] * 2
    with path.open("w", encoding="utf-8") as f:
        for i, labels in enumerate(gold):
            row = {
                "id": f"r{i}",
                "task": "superclass",
                "prediction": " ".join(labels),
                "gold": {"labels": labels},
            }
            f.write(json.dumps(row) + "\n")
        row = {"id": "runaway", "task": "superclass", "prediction": runaway_phrase_text(n_bytes)}
        row["gold"] = {"labels": ["MI"]}
        f.write(json.dumps(row) + "\n")
    return path


def make_invalid_utf8_jsonl(folder: Path) -> Path:
    """A JSON-lines file whose second line holds a byte that is not UTF-8 (a Latin-1 'é')."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "latin1.jsonl"
    good = json.dumps({"id": "a", "task": "superclass", "prediction": "NORM", "gold": {"labels": ["NORM"]}})
    bad = b'{"id": "b", "task": "superclass", "prediction": "r\xe9sum\xe9", "gold": {"labels": ["MI"]}}'
    path.write_bytes(good.encode() + b"\n" + bad + b"\n")
    return path


def make_json_object_files(folder: Path) -> list[Path]:
    """JSON objects where a list of rows or JSON lines is expected: a row pretty-printed over
    several lines, and a wrapper object holding the rows on one line."""
    folder.mkdir(parents=True, exist_ok=True)
    row = {"id": "a", "image": "x.png", "conversations": [{"from": "human", "value": "<image>\nq"}]}
    pretty, wrapper = folder / "pretty.json", folder / "wrapper.json"
    pretty.write_text(json.dumps(row, indent=2) + "\n")
    wrapper.write_text(json.dumps({"data": [row], "version": 1}) + "\n")
    return [pretty, wrapper]


def make_invalid_utf8_rows(folder: Path) -> Path:
    """An ECGInstruct JSON list with a Latin-1 byte in an answer."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rows.json"
    path.write_bytes(
        b'[{"id": "a", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\\nq"}, '
        b'{"from": "gpt", "value": "r\xe9sum\xe9"}]}]'
    )
    return path


def make_unanswered_predictions(folder: Path) -> Path:
    """predictions.jsonl rows that carry gold labels but no 'prediction' at all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.jsonl"
    rows = [{"id": f"r{i}", "task": "superclass", "gold": {"labels": ["NORM"]}} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


LEADS12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def write_wfdb(folder: Path, name: str, digital, gain: float = 1000.0, fs_field: str = "500") -> Path:
    """A 12-lead WFDB record written by hand (16-bit .dat, ``gain`` adu/mV), so a test can put
    anything into the header's rate field and any scale into the samples."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    d = np.asarray(digital, dtype=np.int64).clip(-32767, 32767).astype("<i2")  # (12, n)
    (folder / f"{name}.dat").write_bytes(d.T.copy().tobytes())
    lines = [f"{name} 12 {fs_field} {d.shape[1]}"]
    for i, lead in enumerate(LEADS12):
        checksum = int(d[i].astype(np.int64).sum()) % 65536
        checksum = checksum - 65536 if checksum >= 32768 else checksum
        lines.append(f"{name}.dat 16 {gain:g}/mV 16 0 {int(d[i, 0])} {checksum} 0 {lead}")
    hea = folder / f"{name}.hea"
    hea.write_text("\n".join(lines) + "\n")
    return hea


def _beats(n: int, fs: float = 500.0, mv: float = 1.0):
    """A plausible trace: 1 Hz spikes of ``mv`` on a small sine, the same on every lead."""
    import numpy as np

    t = np.arange(n) / fs
    x = 0.05 * np.sin(2 * np.pi * 0.3 * t) + mv * np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.01**2))
    return np.tile(x, (12, 1))


def make_bad_signals(folder: Path) -> dict[str, tuple[Path, str]]:
    """Records that are no ECG, each with the words its refusal must hold: {name: (header, words)}."""
    import numpy as np

    n = 5000  # 10 s at 500 Hz
    square = np.where((np.arange(n) // 250) % 2 == 0, 1, -1)
    cases = {
        # 1 mV beats stored at a gain of 1e-6 adu/mV: 1e9 mV in physical units
        "huge": (write_wfdb(folder, "huge", _beats(n) * 1000, gain=1e-6), "mV; an ECG stays within"),
        # a raw ADC square wave at full scale: +-32.8 mV at 1000 adu/mV
        "square": (write_wfdb(folder, "square", np.tile(square * 32767, (12, 1))), "reaches 32.8 mV"),
        # values x1e30
        "scaled": (write_wfdb(folder, "scaled", _beats(n) * 1000, gain=1e-30), "an ECG stays within"),
        # a +-5 mV square wave: in range, but pinned at its limits
        "saturated": (write_wfdb(folder, "saturated", np.tile(square * 5000, (12, 1))), "is saturated"),
        "flat": (write_wfdb(folder, "flat", np.zeros((12, n))), "every lead is flat"),
        "short": (write_wfdb(folder, "short", _beats(250) * 1000), "lasts 0.50 s"),
        "negative_rate": (
            write_wfdb(folder, "negative_rate", _beats(n) * 1000, fs_field="-500"),
            "'-500' Hz",
        ),
        "garbage_rate": (write_wfdb(folder, "garbage_rate", _beats(n) * 1000, fs_field="fast"), "'fast'"),
    }
    return cases


def make_good_signal(folder: Path) -> Path:
    """One plausible record, to show the gates let an ECG through."""
    return write_wfdb(folder, "good", _beats(5000) * 1000)


def make_tiny_images(folder: Path) -> dict[str, tuple[Path, str]]:
    """Images no ECG page can be: 1x1 px, 40x30 px, and a blank page of ECG size."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, size, colour, words in [
        ("dot", (1, 1), (0, 0, 0), "1x1 px"),
        ("icon", (40, 30), (200, 10, 10), "40x30 px"),
        ("blank", (440, 340), (255, 255, 255), "single colour"),
    ]:
        path = folder / f"{name}.png"
        img = Image.new("RGB", size, colour)
        if name == "icon":
            img.putpixel((5, 5), (0, 0, 0))
        img.save(path)
        out[name] = (path, words)
    return out


def make_failed_predictions(folder: Path) -> Path:
    """predictions.jsonl whose every row failed at the endpoint (empty prediction, an error)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.jsonl"
    rows = [
        {
            "id": f"r{i}",
            "task": "superclass",
            "prediction": "",
            "error": "HTTP 500",
            "gold": {"labels": ["MI"]},
        }
        for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# train config values that must stop at load, each with the words the error must hold
BAD_CONFIG_VALUES = [
    ("train.max_steps=abc", "train.max_steps must be an integer, got 'abc'"),
    ("train.max_steps=-5", "train.max_steps must be >= 1, got -5"),
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.batch_size=four", "train.batch_size must be an integer, got 'four'"),
    ("lora.r=-1", "lora.r must be >= 1, got -1"),
    ("train.gradient_checkpointing=maybe", "train.gradient_checkpointing must be true or false, got 'maybe'"),
    ("train.lr=0", "train.lr must be > 0"),
    ("lora.dropout=1.5", "lora.dropout must be >= 0 and < 1"),
    ("train.precision=fp16", "train.precision must be one of auto, bf16, fp32"),
]


def make_user_folder(
    folder: Path, names: tuple[str, ...] = ("README.md", "train.json", "stats.json")
) -> Path:
    """A folder of someone else's files, with the names our commands write."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"the user's own {name}; not ours to replace\n")
    return folder


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/bad_inputs.py OUT_FOLDER", file=sys.stderr)
        return 2
    out = Path(argv[0])
    make_runaway_predictions(out / "runaway")
    make_invalid_utf8_jsonl(out / "utf8")
    make_json_object_files(out / "shape")
    make_invalid_utf8_rows(out / "utf8_rows")
    make_unanswered_predictions(out / "unanswered")
    make_failed_predictions(out / "failed")
    make_user_folder(out / "user_folder")
    make_bad_signals(out / "signals")
    make_good_signal(out / "signals")
    make_tiny_images(out / "images")
    print(f"wrote the bad-input corpus to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
