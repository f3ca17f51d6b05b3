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


def make_json_object_file(folder: Path) -> Path:
    """A pretty-printed JSON object where a list or JSON lines are expected."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "object.json"
    path.write_text(json.dumps({"id": "a", "image": "x.png", "conversations": []}, indent=2) + "\n")
    return path


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
    make_json_object_file(out / "shape")
    make_user_folder(out / "user_folder")
    print(f"wrote the bad-input corpus to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
