"""Training throughput: the paper's recipe as plain transformers + PEFT vs ecgvlm's trainer step.

Same model weights, same batches (one image per sample, fixed-length text, the last answer tokens
labelled), one run. The baseline is what a user writes from the HF docs: LoRA on every linear but
lm_head, `model(**batch, labels=labels)` (full-vocab logits for every position), the image padded
to the checkpoint's max tiles, non-reentrant gradient checkpointing. ecgvlm's step adds its levers:
padded tiles skipped (`model.max_num_tiles=1` for 1-tile pages, ecgvlm.model.tiles), logits only at
label positions (boolean `logits_to_keep`, never a full-vocab tensor), SDPA attention.

    python benchmarks/train_throughput.py                       # tiny 4-tile Mllama on CPU
    python benchmarks/train_throughput.py --mode 11b-random     # Llama-3.2-11B-Vision shape, random bf16 weights, GPU

Aim (issue 8, GPU): >= 2x the paper recipe's 2.43 samples/s at batch 4 (one image, 512 tokens),
peak <= 60 GiB, loss equal within bf16 noise. Skipping padded tiles changes the function slightly
(Mllama lets valid tokens attend to padded tiles), so the two losses agree only approximately.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from ecgvlm.model.tiles import shrink_tiles  # noqa: E402
from ecgvlm.model.tiny import build_tiny, llama_11b_config, set_gates  # noqa: E402
from ecgvlm.model.tuning import LoraSettings, apply_tuning, lora_targets  # noqa: E402
from ecgvlm.train.components import enable_checkpointing  # noqa: E402
from ecgvlm.train.loss import causal_lm_loss  # noqa: E402

PAPER_SAMPLES_PER_S = 2.43  # reference section 5: one H200, batch 4, 4 tiles, checkpointing
FOUR_TILE_RATIOS = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]


def build_model(mode: str, device: str, dtype: torch.dtype, workdir: Path, config=None):
    """The same random weights for both rows: a 4-tile Mllama (tiny from disk, or a config built in code)."""
    from transformers import MllamaForConditionalGeneration

    if mode == "tiny":
        path = build_tiny(
            workdir / "tiny4",
            seed=0,
            vision={"max_num_tiles": 4, "supported_aspect_ratios": FOUR_TILE_RATIOS},
        )
        return MllamaForConditionalGeneration.from_pretrained(
            str(path), dtype=dtype, attn_implementation="sdpa"
        ).to(device)
    config = config or llama_11b_config(max_num_tiles=4)  # mode 11b-random; tests pass a small config
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MllamaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(old)
    set_gates(model, 0.5)
    return model


def make_batches(
    config, n_batches: int, batch_size: int, text_len: int, answer_len: int, tiles: int, seed: int = 0
):
    """Token ids drawn at random (no tokenizer needed), one 1-tile image per sample padded to ``tiles``."""
    g = torch.Generator().manual_seed(seed)
    v = config.vision_config
    image_id = config.image_token_index
    vocab = config.text_config.vocab_size
    out = []
    for _ in range(n_batches):
        ids = torch.randint(0, min(vocab, 100_000), (batch_size, text_len), generator=g)
        ids[:, 0] = config.text_config.bos_token_id
        ids[:, 1] = image_id
        labels = torch.full_like(ids, -100)
        labels[:, -answer_len:] = ids[:, -answer_len:]
        pixels = torch.zeros(batch_size, 1, tiles, 3, v.image_size, v.image_size)
        pixels[:, :, 0] = torch.randn(batch_size, 1, 3, v.image_size, v.image_size, generator=g)
        ar_mask = torch.zeros(batch_size, 1, tiles, dtype=torch.long)
        ar_mask[:, :, 0] = 1
        cross = torch.zeros(batch_size, text_len, 1, tiles, dtype=torch.long)
        cross[:, 1:, :, 0] = 1
        out.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "labels": labels,
                "pixel_values": pixels,
                "aspect_ratio_ids": torch.ones(batch_size, 1, dtype=torch.long),
                "aspect_ratio_mask": ar_mask,
                "cross_attention_mask": cross,
            }
        )
    return out


def peak_memory(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process RSS high-water mark, GiB


def timed_steps(
    model, batches, step_fn, device: str, dtype, warmup: int, lr: float
) -> tuple[float, float, list[float]]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses, t0, n = [], None, 0
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i, batch in enumerate(batches):
        if i == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0, n = time.perf_counter(), 0
        batch = {k: v.to(device) for k, v in batch.items()}
        batch["pixel_values"] = batch["pixel_values"].to(dtype)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = step_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        n += batch["input_ids"].shape[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return n / dt, peak_memory(device), losses


def hf_step(model, batch):
    return model(**batch, use_cache=False).loss  # full logits, HF's loss


def ecgvlm_step(model, batch):
    return causal_lm_loss(model, batch, label_logits_only=True)


def run(
    mode: str = "tiny",
    steps: int = 6,
    warmup: int = 2,
    batch_size: int = 4,
    text_len: int | None = None,
    answer_len: int = 64,
    checkpointing: bool = True,
    every_n_layers: int = 1,
    rows: tuple[str, ...] = ("hf-peft", "ecgvlm"),
    config=None,
    device: str | None = None,
) -> list[dict]:
    """Both rows on one model. ``config``/``device`` let a test run the 11b-random path at tiny sizes."""
    from peft import LoraConfig, get_peft_model

    device = device or ("cuda" if mode == "11b-random" else "cpu")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    text_len = text_len or (512 if mode == "11b-random" else 128)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(mode, device, dtype, Path(tmp), config)
        batches4 = make_batches(model.config, steps + warmup, batch_size, text_len, answer_len, tiles=4)
        if "hf-peft" in rows:
            targets = lora_targets(model, "paper")  # every nn.Linear but lm_head, as the paper
            torch.manual_seed(0)
            peft_model = get_peft_model(
                model, LoraConfig(r=64, lora_alpha=128, lora_dropout=0.05, target_modules=targets)
            )
            if checkpointing:  # as a user following the HF docs writes it
                peft_model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
            peft_model.train()
            sps, mem, losses = timed_steps(peft_model, batches4, hf_step, device, dtype, warmup, 2e-4)
            results.append(
                {
                    "row": "hf-peft (paper recipe, 4 tiles, full logits)",
                    "samples_s": sps,
                    "peak_gib": mem,
                    "loss_first": losses[0],
                    "loss_last": losses[-1],
                }
            )
            model = peft_model.unload()  # LoRA never changes base weights: the same model for row 2
            del peft_model
            gc.collect()
        if "ecgvlm" in rows:
            shrink_tiles(model, 1)
            batches1 = [
                {
                    **b,
                    "pixel_values": b["pixel_values"][:, :, :1],
                    "aspect_ratio_mask": b["aspect_ratio_mask"][:, :, :1],
                    "cross_attention_mask": b["cross_attention_mask"][..., :1],
                }
                for b in batches4
            ]
            torch.manual_seed(0)
            tuned = apply_tuning(model, "paper", LoraSettings(64, 128, 0.05))
            if checkpointing:
                enable_checkpointing(tuned, every_n_layers)
            tuned.train()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            sps, mem, losses = timed_steps(tuned, batches1, ecgvlm_step, device, dtype, warmup, 2e-4)
            results.append(
                {
                    "row": f"ecgvlm (1 tile, label-only logits, ckpt 1/{every_n_layers})",
                    "samples_s": sps,
                    "peak_gib": mem,
                    "loss_first": losses[0],
                    "loss_last": losses[-1],
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["tiny", "11b-random"], default="tiny")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per row (after warm-up)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument(
        "--text-len", type=int, default=None, help="tokens per sample (default 128 tiny, 512 11b)"
    )
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument(
        "--every-n-layers",
        type=int,
        default=None,
        help="ecgvlm row: checkpoint every n-th layer (default 2 on the 11B, 1 on tiny)",
    )
    ap.add_argument("--row", choices=["both", "hf-peft", "ecgvlm"], default="both")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (used for per-row processes)")
    args = ap.parse_args(argv)
    if args.mode == "11b-random" and not torch.cuda.is_available():
        print(
            "--mode 11b-random needs a CUDA GPU (about 60-90 GiB); use --mode tiny on a CPU", file=sys.stderr
        )
        return 2
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    every = args.every_n_layers or (2 if args.mode == "11b-random" else 1)
    if args.mode == "tiny" and args.row == "both":
        # a CPU has no per-row peak counter (RSS only rises): one process per row
        res = []
        for row in ("hf-peft", "ecgvlm"):
            cmd = [
                sys.executable,
                __file__,
                "--mode",
                "tiny",
                "--row",
                row,
                "--json",
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--batch-size",
                str(args.batch_size),
                "--every-n-layers",
                str(every),
            ]
            cmd += ["--text-len", str(args.text_len)] if args.text_len else []
            cmd += ["--no-checkpointing"] if args.no_checkpointing else []
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res += json.loads(done.stdout.strip().splitlines()[-1])
    else:
        rows = ("hf-peft", "ecgvlm") if args.row == "both" else (args.row,)
        res = run(
            args.mode,
            args.steps,
            args.warmup,
            args.batch_size,
            args.text_len,
            checkpointing=not args.no_checkpointing,
            every_n_layers=every,
            rows=rows,
        )
    if args.json:
        print(json.dumps(res))
        return 0
    print(
        f"mode {args.mode}, batch {args.batch_size}, {args.steps} timed steps"
        + (f", paper figure {PAPER_SAMPLES_PER_S} samples/s on one H200" if args.mode == "11b-random" else "")
    )
    print(f"{'row':<48} {'samples/s':>10} {'peak GiB':>9} {'loss[0]':>9} {'loss[-1]':>9}")
    for r in res:
        print(
            f"{r['row']:<48} {r['samples_s']:>10.3f} {r['peak_gib']:>9.2f} {r['loss_first']:>9.4f} {r['loss_last']:>9.4f}"
        )
    if len(res) == 2:
        print(f"speed-up {res[1]['samples_s'] / res[0]['samples_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
