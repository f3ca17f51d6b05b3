"""How often the superclass answer's top code is the page's superclass, from a predictions file.

    python benchmarks/superclass_top1.py --data runs/demo/data --predictions runs/demo/finetuned/predictions.jsonl

Prints the count over every superclass test row with scores, the confusion (gold -> top answer),
and the count on the 20 pages `benchmarks/demo_reports.py` sends to `ecgvlm interpret` (4 per
superclass, the first in test.json order), here from the evaluation's first-token scores rather
than from `interpret`'s answer-set probabilities, so the two can differ by a page or two.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path


def interpret_pages(data: Path, per_class: int = 4) -> dict[str, str]:
    """Record id -> gold superclass of the pages demo_reports.py interprets."""
    from ecgvlm.instruct.reader import read_rows

    pages: dict[str, list[str]] = {}
    for row in read_rows(data / "test.json"):
        if row.task == "superclass":
            chosen = pages.setdefault(row.answer, [])
            if len(chosen) < per_class and row.image not in chosen:
                chosen.append(row.image)
    return {Path(img).stem: gold for gold, imgs in pages.items() for img in imgs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the dataset folder (its test.json)")
    ap.add_argument("--predictions", type=Path, required=True)
    args = ap.parse_args()
    picked = interpret_pages(args.data)
    right = total = right20 = 0
    confusion: dict[str, Counter] = defaultdict(Counter)
    for line in args.predictions.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if not row.get("scores"):
            continue
        top = max(row["scores"], key=row["scores"].get)
        gold = row["gold"]["superclasses"]
        total += 1
        right += top in gold
        confusion["+".join(gold)][top] += 1
        record = row["id"].rsplit("-superclass", 1)[0]
        right20 += record in picked and top == picked[record]
    print(f"top superclass = gold: {right}/{total}; on the 20 interpret pages: {right20}/{len(picked)}")
    for gold in sorted(confusion):
        print(f"  {gold:5s} answered {dict(confusion[gold].most_common())}")


if __name__ == "__main__":
    main()
