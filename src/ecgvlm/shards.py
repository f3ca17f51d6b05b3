"""Which shard of a job this process makes: ``--shard i/n``, or a Slurm job array's task.

A Slurm array (``sbatch --array=0-15``) runs the same command in every task and tells each task
its place in ``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT``; ids need not start at 0 or be
consecutive (``--array=1-16``, ``--array=0-30:2``), so the shard is the task's rank among them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ecgvlm.errors import ECGVLMError

Shard = tuple[int, int]


def parse_shard(text: str, flag: str = "--shard") -> Shard:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ECGVLMError(f"{flag} must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ECGVLMError(f"{flag} must be i/n with 0 <= i < n, got {text!r}")
    return i, n


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of this Slurm array task, or None outside an array (or in an array of one)."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        count = int(env.get("SLURM_ARRAY_TASK_COUNT", "1"))
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(env.get("SLURM_ARRAY_TASK_STEP", "1")) or 1
    except ValueError:
        raise ECGVLMError("SLURM_ARRAY_TASK_ID / _COUNT / _MIN / _STEP are not integers") from None
    if count <= 1:
        return None
    index = (task - first) // step
    if not 0 <= index < count:
        raise ECGVLMError(
            f"Slurm array task {task} is not one of {count} tasks from {first} in steps of {step}; "
            "pass --shard i/n"
        )
    return index, count


def resolve_shard(text: str | None) -> Shard | None:
    """``--shard`` when given, else the Slurm array task's shard, else None (the whole job)."""
    return parse_shard(text) if text is not None else shard_from_env()
