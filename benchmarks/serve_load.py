"""Load test of ``ecgvlm serve``: requests/s and p50/p95 latency at 1, 4 and 16 concurrent clients.

Starts the real app under uvicorn on loopback with the tiny model (random weights: speed does not
depend on what the model learned) and posts a bundled example image to ``/v1/interpret``.
Baseline in the same run: micro-batching off (``--max-batch 1``) against on (``--max-batch 8``).
Bounded: each (mode, clients) point stops after --requests requests or --seconds seconds.

    python benchmarks/serve_load.py                 # light question set (5 statements, HR)
    python benchmarks/serve_load.py --full          # the served default (all synthetic conditions)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_point(url: str, image: bytes, clients: int, max_requests: int, seconds: float) -> dict:
    import httpx

    lock = threading.Lock()
    sent = [0]
    latencies: list[float] = []
    errors: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while True:
                with lock:
                    if sent[0] >= max_requests or time.perf_counter() > deadline:
                        return
                    sent[0] += 1
                t0 = time.perf_counter()
                r = http.post(f"{url}/v1/interpret", files={"image": ("ecg.png", image, "image/png")})
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors[r.status_code] = errors.get(r.status_code, 0) + 1

    before = httpx.get(f"{url}/health").json()["batches"]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - t0
    after = httpx.get(f"{url}/health").json()["batches"]
    lat = sorted(latencies)
    n_batches = after["count"] - before["count"]
    return {
        "ok": len(lat),
        "errors": errors,
        "rps": len(lat) / wall if wall > 0 else 0.0,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p95": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else float("nan"),
        "mean_batch": (after["items"] - before["items"]) / n_batches if n_batches else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model folder (default: the tiny base: shipped, else built into the cache)",
    )
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=24, help="most requests per point")
    parser.add_argument("--seconds", type=float, default=20.0, help="no new request after this many seconds")
    parser.add_argument("--max-batch", type=int, default=8, help="batch size of the 'on' mode")
    parser.add_argument("--full", action="store_true", help="the served default question set")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from ecgvlm.serve import examples
    from ecgvlm.serve.app import ServeConfig, create_app
    from ecgvlm.serve.interpreter import ECGInterpreter, InterpretConfig
    from ecgvlm.serve.loading import shipped_base, tiny_base_dir
    from ecgvlm.serve.local import running_server

    model_dir = args.model or shipped_base() or tiny_base_dir()
    config = (
        None
        if args.full
        else InterpretConfig(
            codes=("SR", "AFIB", "IMI", "LVH", "CLBBB"), measurements=("hr",), max_new_tokens=32
        )
    )
    interp = ECGInterpreter.from_pretrained(model_dir, device="cpu", config=config)
    image = examples.read()
    levels = [int(c) for c in args.clients.split(",")]
    questions = "full default" if args.full else "light"
    print(
        f"model {interp.name} ({questions} question set, {len(interp.questions)} yes/no + report"
        f" + {len(interp.config.measurements)} measurements per image); torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'mode':<16} {'clients':>7} {'ok':>4} {'err':>4} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'batch':>6}"
    )
    results: dict[tuple[str, int], dict] = {}
    for mode, max_batch in (("batching off", 1), ("batching on", args.max_batch)):
        serve_config = ServeConfig(max_batch=max_batch, batch_wait_ms=10, queue_size=256, timeout_s=600)
        with running_server(create_app(interp, serve_config)) as url:
            run_point(url, image, 1, 1, 60)  # warm-up (first-call allocations)
            for clients in levels:
                r = run_point(url, image, clients, args.requests, args.seconds)
                results[(mode, clients)] = r
                err = sum(r["errors"].values())
                print(
                    f"{mode:<16} {clients:>7} {r['ok']:>4} {err:>4} {r['rps']:>7.2f} {r['p50']:>7.2f}"
                    f" {r['p95']:>7.2f} {r['mean_batch']:>6.1f}",
                    flush=True,
                )
    top = max(levels)
    off, on = results[("batching off", top)], results[("batching on", top)]
    if off["rps"] > 0:
        print(
            f"\nmicro-batching at {top} clients: {on['rps'] / off['rps']:.2f}x requests/s "
            f"({off['rps']:.2f} -> {on['rps']:.2f}), p95 {off['p95']:.2f} s -> {on['p95']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
