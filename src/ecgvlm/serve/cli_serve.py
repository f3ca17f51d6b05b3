"""Serve the model over HTTP: a web page, a JSON API and an OpenAI-compatible chat endpoint.

Examples:
  ecgvlm serve                                  # runs/demo/model if present, else the tiny base
  ecgvlm serve --model runs/x/merged --port 8080
  ECGVLM_API_TOKEN=secret ecgvlm serve --host 0.0.0.0

Then open http://127.0.0.1:8000/ , or:
  curl -F image=@ecg.png http://127.0.0.1:8000/v1/interpret
  curl http://127.0.0.1:8000/health

Endpoints: GET / (web page), POST /v1/interpret (multipart field 'image', or a raw image body),
POST /v1/chat/completions (OpenAI format: one base64 data: image_url, system and earlier turns,
stream, logprobs/top_logprobs, temperature/top_p/seed; see docs/endpoints.md), GET /v1/models,
GET /health. Concurrent requests are micro-batched. A request gets 503 with Retry-After at once
when --queue-size requests are waiting or when the work ahead of it (the measured seconds per page
times the pages ahead) would take it past --timeout-s; a request whose client leaves or times out
is dropped before it reaches the model. Errors are JSON {"error": {"message", "type"}}.

The defaults come from a measurement on a 2-core machine shared with other work (shipped tiny base,
the full default question set, `python benchmarks/serve_load.py --full --burst 64,128`, three runs):
one page alone 0.6 s; 64 pages at once all answered, the last after 33-37 s (about 0.55 s a page in
batches of 8), so a full queue of 64 finishes inside the 60 s limit with room for a slower machine;
128 at once gave 67-70 answers and 58-61 503s, each 503 within 0.7 s. At --timeout-s 10 the same
bursts gave 11-16 answers and the rest 503s, none late (two runs). A larger model costs more per page: the
limit then admits fewer.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ecgvlm.serve.cli_interpret import add_question_arguments, interpret_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--model", default=None, help="model folder (default: runs/demo/model, else tiny base)"
    )
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder to apply on --model")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--max-batch", type=int, default=8, help="most requests per forward batch")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=64,
        help="waiting requests before 503 (64: 33-37 s of the tiny base's work on 2 cores, inside the limit)",
    )
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload")
    parser.add_argument(
        "--max-pixels", type=float, default=40e6, help="largest accepted image (width x height)"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=60.0,
        help="per-request time limit: 503 at once when the expected wait is past it, 504 if a request "
        "still runs over (60: a full queue of the tiny base measured 33-37 s on 2 cores)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("ECGVLM_API_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' on /v1/* (default: env ECGVLM_API_TOKEN; none = open)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_question_arguments(parser)


def config_from_args(args: argparse.Namespace):
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.serve.app import ServeConfig

    if args.max_batch < 1 or args.queue_size < 1:
        raise ECGVLMError("--max-batch and --queue-size must be at least 1")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0 or args.timeout_s <= 0:
        raise ECGVLMError("--max-upload-mb, --max-pixels and --timeout-s must be positive")
    return ServeConfig(
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        queue_size=args.queue_size,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=int(args.max_pixels),
        timeout_s=args.timeout_s,
        token=args.token or None,
    )


def main(args: argparse.Namespace) -> int:
    import uvicorn
    from PIL import Image

    from ecgvlm.serve.app import create_app
    from ecgvlm.serve.interpreter import ECGInterpreter

    config = config_from_args(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Defence in depth: PIL itself refuses images far past our own header check.
    Image.MAX_IMAGE_PIXELS = config.max_pixels
    interpreter = ECGInterpreter.from_pretrained(
        args.model, args.adapter, args.device, interpret_config(args)
    )
    if interpreter.warning:
        print(f"ecgvlm serve: warning: {interpreter.warning}", file=sys.stderr, flush=True)
    app = create_app(interpreter, config)
    auth = "token required" if config.token else "no token"
    print(f"ecgvlm serve: {interpreter.name} on http://{args.host}:{args.port}/ ({auth})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
