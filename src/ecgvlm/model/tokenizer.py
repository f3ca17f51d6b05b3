"""A small byte-level BPE tokenizer with the Llama-3 special tokens, trained offline.

The tiny model needs a tokenizer that behaves like Llama-3's (same special tokens, same chat
template, `<|image|>` just past the text vocabulary) but is small enough for a 256-wide model.
It is trained on text the package carries: SCP statement descriptions and codes, ECG report
phrases, answer formats and some generic English. Training is deterministic.
"""

from __future__ import annotations

from pathlib import Path

from ecgvlm.signals.vocab import SUPERCLASSES, statements

# Same order as Llama-3 puts them after its BPE vocabulary (ids differ: ours start at n_bpe).
SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]
IMAGE_TOKEN = "<|image|>"  # last id: outside lm_head's range, as in the 11B (128256 = vocab_size)

# The Llama-3.2-Vision chat format (reference section 2), written as our own Jinja template.
# Content is a string or a list of {"type": "image"} / {"type": "text", "text": ...} parts.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(has_image=false) -%}"
    "{%- for m in messages -%}{%- if m['content'] is not string -%}{%- for p in m['content'] -%}"
    "{%- if p['type'] == 'image' -%}{%- set ns.has_image = true -%}{%- endif -%}"
    "{%- endfor -%}{%- elif '<|image|>' in m['content'] -%}{%- set ns.has_image = true -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{- bos_token -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' and ns.has_image -%}"
    "{{- raise_exception('Prompting with images is incompatible with system messages.') -}}"
    "{%- endif -%}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if m['content'] is string -%}{{- m['content'] -}}"
    "{%- else -%}{%- for p in m['content'] -%}"
    "{%- if p['type'] == 'image' -%}{{- '<|image|>' -}}{%- elif p['type'] == 'text' -%}{{- p['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

_GENERIC = """\
The quick brown fox jumps over the lazy dog. Please write a clinical report based on this ECG image.
What is the heart rate? Which diagnostic superclasses does this ECG show? Answer with the letter.
Does this ECG show signs of the following condition? Answer yes or no. Choose one of the options.
Sinus rhythm, normal axis, normal ECG. Sinus bradycardia. Sinus tachycardia. Atrial fibrillation
with rapid ventricular response. Left axis deviation. Right bundle branch block. Left bundle branch
block. Q waves in leads II, III and aVF consistent with an old inferior myocardial infarction.
ST elevation in V1 to V4. T wave inversion in the lateral leads. Non-specific ST-T changes.
Left ventricular hypertrophy by voltage criteria. First degree AV block. PR interval prolonged.
QRS duration is within normal limits. The QT interval is prolonged. Premature ventricular
contractions. Low QRS voltages in the frontal and horizontal leads. Poor R wave progression.
Borderline ECG. Abnormal ECG. Otherwise normal ECG. Compared with the previous tracing, no change.
Lead I, lead II, lead III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6. Rhythm strip. 25 mm/s, 10 mm/mV.
The heart rate is 72 beats per minute. The QRS axis is 60 degrees. QTc 420 ms. PR 160 ms. QRS 96 ms.
Options: A. B. C. D. yes no Yes No true false bpm ms mV Hz degrees. Measure the RR interval.
"""


def _corpus() -> list[str]:
    table = statements()
    lines = _GENERIC.splitlines()
    for st in table.values():
        lines.append(f"{st.code}: {st.description}")
        lines.append(f"The ECG shows {st.description.lower()} ({st.code}).")
    codes = list(table)
    lines += [", ".join(codes[i : i + 5]) for i in range(0, len(codes), 5)]
    lines += [", ".join(SUPERCLASSES), " ".join(SUPERCLASSES)]
    for n in range(0, 400, 7):
        lines.append(f"{n} {n}.0 {n} bpm {n} ms {-n} degrees")
    # Repeat the answer vocabulary so codes and common answers become single tokens.
    answers = codes + list(SUPERCLASSES) + ["yes", "no", "A", "B", "C", "D"]
    lines += [" ".join(answers)] * 20
    return lines


def train_tokenizer(out_dir: str | Path, vocab_size: int = 2048):
    """Train the BPE, wrap it as a ``PreTrainedTokenizerFast`` and save it to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS + [IMAGE_TOKEN])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        padding_side="right",
        model_max_length=4096,
        chat_template=CHAT_TEMPLATE,
    )
    fast.save_pretrained(str(out_dir))
    return fast


# transformers 5 saves its fast tokenizer as "TokenizersBackend", a class 4.x does not have
# (AutoTokenizer fails: "Tokenizer class TokenizersBackend does not exist"). Both read
# "PreTrainedTokenizerFast" (5.x aliases it to the same backend) and a chat template kept in
# tokenizer_config.json (4.45 does not read chat_template.jinja).
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def make_tokenizer_portable(folder: str | Path) -> None:
    """Rewrite ``folder/tokenizer_config.json`` so transformers 4.45+ and 5.x both load it."""
    import json

    from ecgvlm.io import atomic_write_json

    folder = Path(folder)
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return
    doc = json.loads(path.read_text("utf-8"))
    if doc.get("tokenizer_class") in ("TokenizersBackend", None):
        doc["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    doc.pop("backend", None)  # a 5.x-only init argument
    template = folder / "chat_template.jinja"
    if "chat_template" not in doc and template.is_file():
        doc["chat_template"] = template.read_text("utf-8")
    atomic_write_json(path, doc)
