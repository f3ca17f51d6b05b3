"""Load test of ``ecgvlm serve``: requests/s and p50/p95 latency at 1, 4 and 16 concurrent clients.

Starts the real app under uvicorn on loopback with the tiny model (random weights: speed does not
depend on what the model learned) and posts a bundled example image to ``/v1/interpret``.
Baseline in the same run: micro-batching off (``--max-batch 1``) against on (``--max-batch 8``).
Bounded: each (mode, clients) point stops after --requests requests or --seconds seconds.

    python benchmarks/serve_load.py                 # light question set (5 statements, HR)
    python benchmarks/serve_load.py --full          # the served default (all synthetic conditions)
    python benchmarks/serve_load.py --burst 64,128  # overload: N clients at once, served defaults

Burst mode (issue 21) starts the server with the served defaults (queue, time limit), sends N
requests at the same instant, and reports per status how many answers came and how late (every one
must be a 200 or a 503 within the limit + 1 s), how long /health's waiting count takes to reach 0
once the clients have their answers, and the p50 of single requests before and after the burst.
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


def _single_p50(url: str, image: bytes, n: int = 5) -> float:
    import httpx

    times = []
    with httpx.Client(timeout=600) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            http.post(
                f"{url}/v1/interpret", files={"image": ("ecg.png", image, "image/png")}
            ).raise_for_status()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_burst(url: str, image: bytes, clients: int, limit_s: float) -> dict:
    """N requests released together; each client waits up to limit + 5 s for its answer."""
    import httpx

    barrier = threading.Barrier(clients)
    results: list[tuple[object, float]] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(timeout=limit_s + 5) as http:
            barrier.wait()
            t0 = time.perf_counter()
            try:
                code: object = http.post(
                    f"{url}/v1/interpret", files={"image": ("ecg.png", image, "image/png")}
                ).status_code
            except httpx.TimeoutException:
                code = "no answer"
            with lock:
                results.append((code, time.perf_counter() - t0))

    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(one) for _ in range(clients)]:
            f.result()
    left = time.perf_counter()
    drained = None
    while time.perf_counter() - left < 60:
        if httpx.get(f"{url}/health").json()["queue"]["waiting"] == 0:
            drained = time.perf_counter() - left
            break
        time.sleep(0.05)
    by: dict[object, list[float]] = {}
    for code, dt in results:
        by.setdefault(code, []).append(dt)
    return {
        "statuses": {str(k): len(v) for k, v in sorted(by.items(), key=lambda kv: str(kv[0]))},
        "slowest": {str(k): round(max(v), 2) for k, v in by.items()},
        "late": sum(dt > limit_s + 1 for _, dt in results),
        "drained_s": drained,
    }


def burst_main(args: argparse.Namespace, interp, image: bytes) -> int:
    from ecgvlm.serve.app import ServeConfig, create_app
    from ecgvlm.serve.local import running_server

    config = ServeConfig(max_batch=args.max_batch)
    if args.timeout_s:
        config.timeout_s = args.timeout_s
    print(
        f"served defaults: queue {config.queue_size}, time limit {config.timeout_s:g} s, max batch {config.max_batch}"
    )
    with running_server(create_app(interp, config)) as url:
        _single_p50(url, image, 1)  # first-call allocations
        idle = _single_p50(url, image)
        print(f"idle single request p50 {idle:.2f} s")
        ok = True
        for clients in [int(c) for c in args.burst.split(",")]:
            r = run_burst(url, image, clients, config.timeout_s)
            after = _single_p50(url, image)
            good = (
                set(r["statuses"]) <= {"200", "503"}
                and not r["late"]
                and r["drained_s"] is not None
                and r["drained_s"] <= 2
                and after <= 1.5 * idle
            )
            ok &= good
            print(
                f"burst {clients:>4}: {r['statuses']} slowest {r['slowest']} s, late {r['late']}, "
                f"waiting 0 after {r['drained_s'] if r['drained_s'] is None else round(r['drained_s'], 2)} s, "
                f"single p50 after {after:.2f} s ({after / idle:.2f}x idle) -> {'ok' if good else 'FAIL'}",
                flush=True,
            )
    return 0 if ok else 1


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
    parser.add_argument("--burst", default=None, help="overload mode: comma list of simultaneous clients")
    parser.add_argument(
        "--timeout-s", type=float, default=None, help="burst mode: time limit (default: served)"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from ecgvlm.model.base import default_base
    from ecgvlm.serve import examples
    from ecgvlm.serve.app import ServeConfig, create_app
    from ecgvlm.serve.interpreter import ECGInterpreter, InterpretConfig
    from ecgvlm.serve.local import running_server

    model_dir = args.model or default_base()
    config = (
        None
        if args.full
        else InterpretConfig(
            codes=("SR", "AFIB", "IMI", "LVH", "CLBBB"), measurements=("hr",), max_new_tokens=32
        )
    )
    interp = ECGInterpreter.from_pretrained(model_dir, device="cpu", config=config)
    image = examples.read()
    if args.burst:
        return burst_main(args, interp, image)
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
