"""The interpretation API: ECG image(s) in, report + statement probabilities + measurements out.

    from ecgvlm.serve import ECGInterpreter
    interp = ECGInterpreter.from_pretrained()          # runs/demo/model, else the tiny base
    result = interp.interpret("ecg.png")               # one image -> Interpretation
    results = interp.interpret([img1, img2], batch_size=8)

Probabilities are the model's own answers, not a separate classifier: for each superclass (and
each probed SCP code) the model is asked "Does this ECG show <description>?" and the probability
is P(yes) / (P(yes) + P(no)). A model fine-tuned on the superclass question but not on yes/no
questions (``ecgvlm demo``'s) gets the superclass question instead, and P(superclass) is the
probability mass of the answers ("MI, STTC", ...) that name it (``label_set_probs``). The report
and the measurements are generated text; measurements are parsed from the answers to measurement
questions and left out when the answer holds no plausible number.

Only questions the model was trained to answer are asked: an adapter's train_summary.json records
its training tasks, and a kind of question missing there (a report, yes/no, measurements) is
skipped with the reason in ``Interpretation.skipped``, because an untrained head answers noise
that reads like a finding. Models without that record are asked everything.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from ecgvlm.errors import ECGVLMError
from ecgvlm.instruct.tasks import SUPERCLASS_NAMES, SUPERCLASS_Q
from ecgvlm.signals.vocab import SUPERCLASSES, statements

# The same phrasings the instruction data trains on (ecgvlm.instruct.tasks), so the model is asked
# questions it has seen. (question, unit, plausible range): out-of-range answers are dropped.
MEASUREMENTS = {
    "hr": ("What is the heart rate on this ECG?", "bpm", (15.0, 350.0)),
    "pr": ("What is the PR interval on this ECG?", "ms", (40.0, 600.0)),
    "qrs": ("What is the QRS duration on this ECG?", "ms", (30.0, 300.0)),
    "qt": ("What is the QT interval on this ECG?", "ms", (150.0, 800.0)),
    "qtc": ("What is the corrected QT interval (QTc) on this ECG?", "ms", (150.0, 800.0)),
    "axis": ("What is the QRS axis on this ECG?", "degrees", (-180.0, 360.0)),
}

REPORT_PROMPT = "Please write a clinical report based on this ECG image."
YESNO_PROMPT = "Does this ECG show {description}?"
SUPERCLASS_PROMPT = SUPERCLASS_Q[0]
SUPERCLASS_METHODS = ("auto", "yesno", "sets")


@dataclass
class InterpretConfig:
    """What the interpreter asks the model. Smaller lists are faster on large models."""

    report_prompt: str = REPORT_PROMPT
    yesno_prompt: str = YESNO_PROMPT
    superclass_prompt: str = SUPERCLASS_PROMPT
    # auto: yes/no questions, or the superclass question's answer sets for a model trained on that
    # question and not on yes/no; yesno and sets force one.
    superclass_method: str = "auto"
    ask_untrained: bool = False  # ask kinds of question the model was not trained on (noise)
    codes: tuple[str, ...] | None = None  # SCP codes to probe besides the superclasses; None = synth's
    measurements: tuple[str, ...] = tuple(MEASUREMENTS)
    threshold: float = 0.5
    max_new_tokens: int = 96
    measure_tokens: int = 16


@dataclass
class StatementProb:
    code: str
    description: str
    superclass: str | None
    probability: float


@dataclass
class Interpretation:
    report: str
    statements: list[StatementProb]
    superclasses: dict[str, float]
    measurements: dict[str, float]
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # section -> why it was not asked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def detected(self, threshold: float = 0.5) -> list[StatementProb]:
        return [s for s in self.statements if s.probability >= threshold]


def load_image(source: str | Path | Image.Image) -> Image.Image:
    """An RGB image from a path or a PIL image; a bad file raises ECGVLMError naming it."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    from ecgvlm.serve.limits import Limits, UploadRejected, decode_image, refuse_non_ecg

    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ECGVLMError(f"cannot read image: {e.strerror}", path) from None
    try:
        return refuse_non_ecg(decode_image(data, Limits(max_bytes=max(len(data), 1)), name="image"), "image")
    except UploadRejected as e:
        raise ECGVLMError(e.message.removeprefix("image: "), path) from None


def parse_number(text: str, lo: float, hi: float) -> float | None:
    """The first number in ``text`` if it lies in [lo, hi]."""
    m = re.search(r"[-+]?\d+(?:\.\d+)?", text)
    if not m:
        return None
    value = float(m.group())
    return value if lo <= value <= hi else None


def _default_codes() -> tuple[str, ...]:
    """The statements the bundled synthetic generator produces (what the tiny model can learn)."""
    try:
        from ecgvlm.signals.synth import CONDITIONS
    except ImportError:
        return ()
    table = statements()
    # NORM is both a statement and a superclass; the superclass question already asks it.
    return tuple(c for c in CONDITIONS if c in table and c not in SUPERCLASSES)


def plan_questions(tasks: frozenset[str] | None, cfg: InterpretConfig) -> tuple[dict, dict[str, str]]:
    """(how each section is produced, or None; why each None section is skipped).

    ``tasks``: what the model was fine-tuned on (None: unknown, so everything is asked). Rows
    without a task ("other", e.g. the published ECGInstruct files) may teach anything, so a record
    holding them counts as unknown too.
    """
    if cfg.superclass_method not in SUPERCLASS_METHODS:
        raise ECGVLMError(
            f"unknown superclass method {cfg.superclass_method!r} (use {', '.join(SUPERCLASS_METHODS)})"
        )
    known = tasks is not None and "other" not in tasks and not cfg.ask_untrained
    untrained = [t for t in ("report", "superclass", "yesno", "measure") if known and t not in tasks]
    superclasses = cfg.superclass_method
    if superclasses == "auto":
        superclasses = (
            "yesno" if "yesno" not in untrained else "sets" if "superclass" not in untrained else None
        )
    plan = {
        "report": None if "report" in untrained else "generate",
        "superclasses": superclasses,
        "statements": None if "yesno" in untrained or not cfg.codes else "yesno",
        "measurements": None if "measure" in untrained or not cfg.measurements else "generate",
    }
    need = {
        "report": "report questions",
        "superclasses": "superclass or yes/no questions",
        "statements": "yes/no questions",
        "measurements": "measurement questions",
    }
    trained_on = ", ".join(sorted(tasks or ()))
    skipped = {
        k: f"not asked: this model was not fine-tuned on {need[k]} (only on {trained_on}), so its "
        "answers would be noise (ask_untrained / --ask-untrained asks anyway)"
        for k, v in plan.items()
        if v is None
    }
    if not cfg.codes:
        skipped["statements"] = "not asked: no statements to probe (InterpretConfig.codes is empty)"
    if not cfg.measurements:
        skipped["measurements"] = "not asked: InterpretConfig.measurements is empty"
    return plan, skipped


class ECGInterpreter:
    """Wraps a loaded Mllama model + processor; thread-compatible (call from one thread at a time)."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        name: str,
        config: InterpretConfig | None = None,
        trained_tasks: frozenset[str] | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.name = name
        self.warning: str | None = None  # shown to users, e.g. when serving an untrained model
        config = config or InterpretConfig()
        if config.codes is None:
            config = replace(config, codes=_default_codes())
        self.config = config
        table = statements()
        unknown = [c for c in self.config.codes if c not in table]
        if unknown:
            raise ECGVLMError(f"unknown SCP codes to probe: {', '.join(unknown)}")
        self.trained_tasks = trained_tasks
        self.plan, self.skipped = plan_questions(trained_tasks, self.config)
        self.questions = self._build_questions()

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path | None = None,
        adapter: str | Path | None = None,
        device: str | None = None,
        config: InterpretConfig | None = None,
    ) -> ECGInterpreter:
        """Load a model folder (+ optional LoRA adapter). Without one: the demo's model, else the tiny base."""
        from ecgvlm.serve.loading import load

        loaded = load(model_dir, adapter, device)
        interp = cls(loaded.model, loaded.processor, loaded.name, config, loaded.tasks)
        if loaded.untrained:
            interp.warning = (
                "no fine-tuned model found (runs/demo/model): this is the tiny base model, never trained "
                "on ECGs, so its answers are noise. Run `ecgvlm demo` or pass --model."
            )
        return interp

    def _build_questions(self) -> list[tuple[str, str, str | None, str]]:
        """(kind, key, superclass, prompt) for every yes/no question asked of each image."""
        table = statements()
        qs = []
        if self.plan["superclasses"] == "yesno":
            qs += [
                ("super", s, s, self.config.yesno_prompt.format(description=SUPERCLASS_NAMES[s]))
                for s in SUPERCLASSES
            ]
        for code in self.config.codes if self.plan["statements"] == "yesno" else ():
            st = table[code]
            qs.append(
                ("code", code, st.superclass, self.config.yesno_prompt.format(description=st.description))
            )
        return qs

    # ---- batched model calls -------------------------------------------------------------
    def chat(self, images: list[Image.Image], prompts: list[str], max_new_tokens: int = 96) -> list[str]:
        """The model's free-text answers, one per (image, prompt) pair."""
        from ecgvlm.model.infer import generate

        if len(images) != len(prompts):
            raise ValueError("one prompt per image")
        batch = max(8, min(len(prompts), 32))
        return list(
            generate(
                self.model, self.processor, images, prompts, max_new_tokens=max_new_tokens, batch_size=batch
            )
        )

    def complete(
        self,
        images: list[Image.Image],
        conversations: list[list[dict]],
        samplings: list[Any],
        on_token: list[Any] | None = None,
    ) -> list[Any]:
        """Chat completions (``model.decode.Completion``): whole conversations, sampling, log-probabilities."""
        from ecgvlm.model.decode import chat_prompt_ids, complete

        tok = self.processor.tokenizer
        seqs = [chat_prompt_ids(tok, messages) for messages in conversations]
        return complete(self.model, self.processor, images, seqs, samplings, on_token)

    def yes_probabilities(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        """P(yes) over {yes, no}, one per (image, prompt) pair; each distinct image is encoded once."""
        from ecgvlm.model.scoring import batched_option_probs

        probs = batched_option_probs(self.model, self.processor, images, prompts, ["yes", "no"])
        return [float(p) for p in probs[:, 0]]

    def interpret(self, images: Any, batch_size: int = 8) -> Interpretation | list[Interpretation]:
        """Interpret one image (path or PIL) -> Interpretation, or a list -> list of Interpretations."""
        single = not isinstance(images, (list, tuple))
        items = [load_image(x) for x in ([images] if single else images)]
        out: list[Interpretation] = []
        for start in range(0, len(items), max(1, batch_size)):
            out.extend(self.interpret_batch(items[start : start + batch_size]))
        return out[0] if single else out

    def interpret_batch(self, images: list[Image.Image]) -> list[Interpretation]:
        """One pass over a batch of already-decoded RGB images."""
        from ecgvlm.model.scoring import label_set_probs

        cfg, plan = self.config, self.plan
        n = len(images)
        t0 = time.perf_counter()
        reports = (
            self.chat(images, [cfg.report_prompt] * n, cfg.max_new_tokens) if plan["report"] else [""] * n
        )
        t1 = time.perf_counter()
        # Every (image, question) pair in one flat batch; the scorer encodes each image only once.
        q = self.questions
        flat_imgs = [img for img in images for _ in q]
        flat_prompts = [prompt for _ in images for (_, _, _, prompt) in q]
        flat = self.yes_probabilities(flat_imgs, flat_prompts) if q else []
        sets = None
        if plan["superclasses"] == "sets":
            sets = label_set_probs(
                self.model, self.processor, images, [cfg.superclass_prompt] * n, SUPERCLASSES
            )
        t2 = time.perf_counter()
        measured: list[dict[str, float]] = [{} for _ in images]
        if plan["measurements"]:
            keys = [k for k in cfg.measurements if k in MEASUREMENTS]
            m_imgs = [img for img in images for _ in keys]
            m_prompts = [MEASUREMENTS[k][0] for _ in images for k in keys]
            answers = self.chat(m_imgs, m_prompts, cfg.measure_tokens) if keys else []
            for i in range(n):
                for j, k in enumerate(keys):
                    value = parse_number(answers[i * len(keys) + j], *MEASUREMENTS[k][2])
                    if value is not None:
                        measured[i][k] = value
        t3 = time.perf_counter()
        table = statements()
        timings = {
            "batch_size": n,
            "report_ms": round((t1 - t0) * 1000, 1),
            "probabilities_ms": round((t2 - t1) * 1000, 1),
            "measurements_ms": round((t3 - t2) * 1000, 1),
            "total_ms": round((t3 - t0) * 1000, 1),
        }
        results = []
        for i in range(n):
            probs = flat[i * len(q) : (i + 1) * len(q)]
            if sets is not None:
                supers = {c: round(float(p), 4) for c, p in zip(SUPERCLASSES, sets[i])}
            else:
                supers = {key: round(p, 4) for (kind, key, _, _), p in zip(q, probs) if kind == "super"}
            stmts = [
                StatementProb(key, table[key].description, sup, round(p, 4))
                for (kind, key, sup, _), p in zip(q, probs)
                if kind == "code"
            ]
            stmts.sort(key=lambda s: -s.probability)
            results.append(
                Interpretation(
                    report=reports[i].strip(),
                    statements=stmts,
                    superclasses=supers,
                    measurements=measured[i],
                    model=self.name,
                    timings=dict(timings),
                    skipped=dict(self.skipped),
                )
            )
        return results
