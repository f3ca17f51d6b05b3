"""Generation for chat endpoints: per-row sampling with a seed, token log-probabilities, streaming.

    ids = chat_prompt_ids(tokenizer, [{"role": "system", "content": "..."},
                                      {"role": "user", "content": "<image>\\nWhat is the rate?"}])
    [c] = complete(model, processor, [image], [ids], [Sampling(max_new_tokens=32, top_logprobs=5)])
    c.text, c.finish_reason, c.tokens[0].top

``complete`` runs ``model.generate`` exactly as ``infer.generate`` does (greedy, same padding, same
stop tokens), so at temperature 0 the text is the same. One logits processor sees the raw logits
of every step: it records each row's log-probabilities, and for rows with temperature > 0 it draws
the next token itself (softmax of logits / T, nucleus cut at top_p) from that row's own seeded
generator and masks every other token, so the greedy pick takes it. Rows in one batch thus sample
independently, and a seed reproduces a row's answer. A generated token is known one step later
(it is the last input id of the next call), so ``on_token`` lags one step; the last token is
reported when ``generate`` returns.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from ecgvlm.model.chat import encode_messages
from ecgvlm.model.infer import model_device, model_dtype, prompt_batch

STOP_TOKENS = ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")
ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"


@dataclass
class Sampling:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    top_logprobs: int = 0  # alternatives recorded per generated token


@dataclass
class Token:
    id: int
    logprob: float  # of the raw model distribution (before temperature / top_p)
    top: list[tuple[int, float]] = field(default_factory=list)  # (id, logprob), most likely first


@dataclass
class Completion:
    text: str
    tokens: list[Token]  # the answer's tokens; a stop token is not among them
    finish_reason: str  # "stop" (a stop token) or "length" (max_new_tokens reached)
    prompt_tokens: int
    completion_tokens: int  # generated tokens, the stop token included


def chat_prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a whole conversation (system, earlier turns, the last user turn) + the assistant header.

    ``messages`` are {"role", "content": str}; the image stands where a content holds ``<image>``,
    else at the start of the first user turn: the layout training uses (``encode_messages``). For
    one user turn this equals ``infer.prompt_ids``.
    """
    ids, _ = encode_messages(tokenizer, messages)
    return ids + tokenizer(ASSISTANT_HEADER, add_special_tokens=False)["input_ids"]


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The byte-level BPE alphabet (printable bytes stand for themselves, the rest are shifted past 255)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The bytes a token stands for (exact for byte-level BPE, where a token may hold part of a character)."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    table = _byte_decoder()
    if piece is not None and all(c in table for c in piece):
        return bytes(table[c] for c in piece)
    return tokenizer.decode([int(token_id)]).encode("utf-8")


class _Stepper(LogitsProcessor):
    def __init__(self, settings: list[Sampling], stop_ids: set[int], on_token: list, device) -> None:
        self.settings = settings
        self.stop_ids = stop_ids
        self.stop_id = min(stop_ids)
        self.on_token = on_token
        self.step = 0
        n = len(settings)
        self.done = [False] * n
        self.finish = ["length"] * n
        self.counted = [0] * n
        self.tokens: list[list[Token]] = [[] for _ in range(n)]
        self.forced = [False] * n
        self.logp: torch.Tensor | None = None
        self.gens = [
            None
            if s.temperature <= 0
            else torch.Generator().manual_seed(s.seed if s.seed is not None else secrets.randbits(63))
            for s in settings
        ]

    def settle(self, chosen: list[int]) -> None:
        """Record the tokens picked at the previous step (one per row)."""
        assert self.logp is not None
        for i, t in enumerate(chosen):
            if self.done[i]:
                continue
            if self.forced[i]:  # the row reached its own limit inside a longer batch
                self.done[i] = True
                continue
            self.counted[i] += 1
            if t in self.stop_ids:
                self.done[i], self.finish[i] = True, "stop"
                continue
            k = self.settings[i].top_logprobs
            row = self.logp[i]
            top = []
            if k > 0:
                vals, idx = torch.topk(row, min(k, row.shape[-1]))
                top = [(int(j), float(v)) for j, v in zip(idx.tolist(), vals.tolist())]
            tok = Token(int(t), float(row[t]), top)
            self.tokens[i].append(tok)
            if self.on_token[i] is not None:
                self.on_token[i](tok)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.step > 0:
            self.settle(input_ids[:, -1].tolist())
        self.logp = torch.log_softmax(scores.float(), -1)
        out = scores
        for i, s in enumerate(self.settings):
            if self.done[i]:
                continue
            if self.step >= s.max_new_tokens:
                pick = self.stop_id
                self.forced[i] = True
            elif self.gens[i] is not None:
                pick = _sample(scores[i], s, self.gens[i])
            else:
                continue
            if out is scores:
                out = scores.clone()
            out[i] = float("-inf")
            out[i, pick] = 0.0
        self.step += 1
        return out


def _sample(logits: torch.Tensor, s: Sampling, gen: torch.Generator) -> int:
    probs = torch.softmax(logits.detach().double().cpu() / s.temperature, -1)
    if s.top_p < 1.0:
        p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(p, 0) - p < s.top_p  # the smallest head holding top_p of the mass
        probs = torch.zeros_like(probs).scatter(0, order[keep], p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


@torch.no_grad()
def complete(
    model,
    processor,
    images: list,
    seqs: list[list[int]],
    settings: list[Sampling],
    on_token: list[Callable[[Token], None] | None] | None = None,
) -> list[Completion]:
    """Answers for prompt ids ``seqs`` (one image each), generated together as one left-padded batch."""
    if not (len(images) == len(seqs) == len(settings)):
        raise ValueError("one image and one Sampling per prompt")
    tok = processor.tokenizer
    stop = [tok.convert_tokens_to_ids(t) for t in STOP_TOKENS]
    dev = model_device(model)
    dtype = model_dtype(model)
    batch = prompt_batch(processor, images, seqs, left_pad=True)
    batch = {k: v.to(dev) for k, v in batch.items()}
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    stepper = _Stepper(settings, set(stop), on_token or [None] * len(seqs), dev)
    gen = model.generate(
        **batch,
        max_new_tokens=max(s.max_new_tokens for s in settings),
        do_sample=False,
        eos_token_id=stop,
        pad_token_id=tok.pad_token_id,
        logits_processor=LogitsProcessorList([stepper]),
    )
    new = gen[:, batch["input_ids"].shape[1] :]
    if 0 < stepper.step <= new.shape[1]:
        stepper.settle(new[:, stepper.step - 1].tolist())
    out = []
    for i, seq in enumerate(seqs):
        ids = [t.id for t in stepper.tokens[i]]
        out.append(
            Completion(
                text=tok.decode(ids, skip_special_tokens=True).strip(),
                tokens=stepper.tokens[i],
                finish_reason=stepper.finish[i],
                prompt_tokens=len(seq),
                completion_tokens=stepper.counted[i],
            )
        )
    return out
