"""The training stage of one sweep point, run in its own process so its peak memory is its own.

    python -m ecgvlm.train.sweep_point SWEEP/points/<name>/train_spec.json

The spec names the recipe YAML, the point's overrides and where to write ``train_cost.json``. The
stage always trains with ``resume=True``: a point killed half-way continues from its latest
checkpoint (or starts at step 0 if it has none). Peak memory is ``ru_maxrss`` of this process on
CPU and ``torch.cuda.max_memory_allocated`` on GPU, so every point is measured alone.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sys
import time
from pathlib import Path


def die_with_parent(parent: int | None) -> None:
    """A SIGKILLed sweep must not leave an orphan training on (Linux: PR_SET_PDEATHSIG)."""
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def peak_rss_gb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**30 if sys.platform == "darwin" else rss / 2**20  # bytes on macOS, KiB on Linux


def peak_mem_gb(cuda: bool) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if cuda else peak_rss_gb()


def trainable_params(summary: dict, out: Path) -> int | None:
    """From the recipe's "tuning ...: trainable params N of M" line; else count the saved tensors."""
    m = re.search(r"trainable params ([\d,]+)", str(summary.get("trainable", "")))
    if m:
        return int(m.group(1).replace(",", ""))
    from safetensors import safe_open

    for name in ("adapter_model.safetensors", "partial_model.safetensors"):
        if (out / name).is_file():
            with safe_open(str(out / name), "pt") as f:
                return sum(_numel(f.get_slice(k).get_shape()) for k in f)
    return None


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def run(spec: dict) -> dict:
    import torch

    from ecgvlm.io import atomic_write_json
    from ecgvlm.train.config import load_config
    from ecgvlm.train.recipe import train

    cfg = load_config(spec["config"], spec["overrides"])
    out = Path(cfg.output_dir)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    finished = (out / "train_summary.json").is_file()  # killed after training, before the cost was written
    if not finished:
        train(cfg, resume=True)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "train_summary.json").read_text())
    cost = {
        "trainable_params": trainable_params(summary, out),
        "wall_s": summary.get("wall_s") if finished else round(wall, 2),
        "train_loop_s": summary.get("wall_s"),
        "samples_per_s": summary.get("samples_per_s"),
        "peak_mem_gb": None if finished else round(peak_mem_gb(cuda), 3),
        "peak_mem_kind": "cuda max_memory_allocated" if cuda else "process max RSS",
        "steps": summary.get("steps"),
        "final_loss": summary.get("final_loss"),
    }
    if os.environ.get("RANK", "0") == "0":  # under accelerate launch: rank 0 reports (its own GPU's peak)
        atomic_write_json(spec["cost"], cost)
    return cost


def main(argv: list[str] | None = None) -> int:
    from ecgvlm.errors import ECGVLMError

    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    die_with_parent(spec.get("parent"))
    try:
        run(spec)
    except ECGVLMError as e:
        print(f"ecgvlm sweep: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
