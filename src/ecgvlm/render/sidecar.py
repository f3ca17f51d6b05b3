"""The page sidecar on disk: compact by default, the full JSON on request, one reader for both.

A full sidecar lists every plotted sample's pixel as JSON numbers (``leads[i]["x"]``, ``["y"]``),
about 300 kB a page at 200 dpi. The compact form is the same JSON document with those two lists
moved into one ``samples`` entry: the positions in integer tenths of a pixel (the 0.1 px the full
form rounds to, so nothing is lost), as little-endian int32, delta-coded (x of every lead in
order, then y), zlib-compressed and base64-encoded. ``load_sidecar`` returns the full form from
either, identical to what ``Page.save(..., sidecar="full")`` writes. Without ecgvlm::

    q = np.frombuffer(zlib.decompress(base64.b64decode(s["samples"]["data"])), "<i4").cumsum()
    x, y = np.split(q / 10, 2)            # then split each by leads[i]["n_samples"]
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ecgvlm.errors import ECGVLMError

SIDECAR_FORMS = ("compact", "full")
ENCODING = "zlib-base64 int32le delta, tenths of a pixel; x of every lead in order, then y"


def compact(sidecar: dict[str, Any]) -> dict[str, Any]:
    """The compact form of a full sidecar (a new dict; ``sidecar`` is not changed)."""
    leads = sidecar["leads"]
    coords = [np.asarray(lead[k], np.float64) for k in ("x", "y") for lead in leads]
    q = np.rint(np.concatenate(coords) * 10).astype(np.int64) if coords else np.zeros(0, np.int64)
    delta = np.diff(q, prepend=0).astype("<i4")
    data = base64.b64encode(zlib.compress(delta.tobytes(), 3)).decode("ascii")
    out = {k: v for k, v in sidecar.items() if k != "leads"}
    out["leads"] = [{k: v for k, v in lead.items() if k not in ("x", "y")} for lead in leads]
    out["samples"] = {"encoding": ENCODING, "count": int(q.size), "data": data}
    return out


def expand(sidecar: dict[str, Any], where: str | Path = "sidecar") -> dict[str, Any]:
    """The full form of a sidecar in either form (a full one is returned as it is)."""
    samples = sidecar.get("samples")
    if samples is None:
        return sidecar
    if not isinstance(samples, dict) or samples.get("encoding") != ENCODING:
        raise ECGVLMError("unknown 'samples' encoding; was it written by a newer ecgvlm?", where)
    try:
        raw = zlib.decompress(base64.b64decode(samples["data"]))
    except (ValueError, zlib.error, KeyError, TypeError) as e:
        raise ECGVLMError(f"'samples' data cannot be decoded ({e})", where) from None
    q = np.frombuffer(raw, "<i4").astype(np.int64).cumsum()
    sizes = [int(lead["n_samples"]) for lead in sidecar["leads"]]
    if q.size != 2 * sum(sizes) or q.size != samples.get("count"):
        raise ECGVLMError(f"'samples' holds {q.size} values, the leads need {2 * sum(sizes)}", where)
    # q / 10 is the float64 that rounding to 0.1 px gives, so both forms read back equal
    x, y = np.split(q / 10, 2)
    bounds = np.cumsum(sizes)[:-1]
    out = {k: v for k, v in sidecar.items() if k != "samples"}
    out["leads"] = [
        {**lead, "x": xs.tolist(), "y": ys.tolist()}
        for lead, xs, ys in zip(sidecar["leads"], np.split(x, bounds), np.split(y, bounds))
    ]
    return out


def load_sidecar(path: str | Path) -> dict[str, Any]:
    """Read a page sidecar (``page.json``, compact or full) and return its full form.

    Every lead gets ``x`` and ``y``: the pixel of each plotted sample in the final image, at 0.1 px.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text("utf-8"))
    except OSError as e:
        raise ECGVLMError(f"cannot read the sidecar: {e.strerror}", path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ECGVLMError(f"not a JSON sidecar ({e})", path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("leads"), list):
        raise ECGVLMError("not a page sidecar (no 'leads' list)", path)
    return expand(doc, path)
