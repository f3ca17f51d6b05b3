"""ECGInterpreter (the Python API) and ``ecgvlm interpret`` on the real tiny Mllama."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ecgvlm.cli import main as cli_main
from ecgvlm.serve import examples
from ecgvlm.serve.interpreter import ECGInterpreter, InterpretConfig, parse_number
from ecgvlm.serve.loading import resolve

CODES = ("SR", "AFIB", "IMI")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from ecgvlm.model.tiny import build_tiny

    out = tmp_path_factory.getbasetemp() / "serve-tiny"  # shared by the serve/interpret test files
    if not (out / "ecgvlm_tiny.json").is_file():  # written last by build_tiny
        build_tiny(out, seed=0)
    return out


@pytest.fixture(scope="module")
def interp(model_dir):
    config = InterpretConfig(codes=CODES, measurements=("hr", "qrs"), max_new_tokens=10)
    return ECGInterpreter.from_pretrained(model_dir, device="cpu", config=config)


@pytest.fixture(scope="module")
def images():
    names = examples.names()[:3]
    return [Image.open(io.BytesIO(examples.read(n))).convert("RGB") for n in names]


def test_batched_interpretation_equals_one_by_one(interp, images):
    batched = interp.interpret(images, batch_size=3)
    assert len(batched) == 3
    for img, b in zip(images, batched):
        single = interp.interpret(img)
        assert single.report == b.report
        assert single.superclasses == pytest.approx(b.superclasses, abs=1e-3)
        assert {s.code: s.probability for s in single.statements} == pytest.approx(
            {s.code: s.probability for s in b.statements}, abs=1e-3
        )
        assert set(b.superclasses) == {"NORM", "MI", "STTC", "CD", "HYP"}
        assert {s.code for s in b.statements} == set(CODES)
        assert b.timings["batch_size"] == 3


def test_yes_probabilities_match_infer_option_probs(interp, images):
    from ecgvlm.model.infer import option_probs

    prompts = ["Does this ECG show sinus rhythm?", "Does this ECG show myocardial infarction?"] * 2
    imgs = [images[0], images[0], images[1], images[1]]
    ours = interp.yes_probabilities(imgs, prompts)
    ref = option_probs(interp.model, interp.processor, imgs, prompts, ["yes", "no"])[:, 0]
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ours[0] != ours[2]  # the image reaches the model: same question, other image, other answer


def test_interpret_accepts_paths_and_reports_bad_files(interp, tmp_path):
    from ecgvlm.errors import ECGVLMError

    good = tmp_path / "ecg.png"
    good.write_bytes(examples.read())
    assert interp.interpret(str(good)).report == interp.interpret(good).report
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ECGVLMError, match="notes.png: not a PNG, JPEG or WebP"):
        interp.interpret(bad)


def test_parse_number_keeps_plausible_values_only():
    assert parse_number("72 bpm", 15, 350) == 72.0
    assert parse_number("-30 degrees (left axis)", -180, 360) == -30.0
    assert parse_number("about 5000 ms", 30, 300) is None
    assert parse_number("no idea", 30, 300) is None


def test_default_model_is_the_demo_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "runs" / "demo" / "model"
    (demo / "adapter").mkdir(parents=True)
    (demo / "config.json").write_text("{}")
    (demo / "adapter" / "adapter_config.json").write_text("{}")
    base, adapter = resolve(None, None)
    assert base.resolve() == demo.resolve() and adapter.resolve() == (demo / "adapter").resolve()


def test_cli_json(model_dir, tmp_path, capsys):
    img = tmp_path / "a.png"
    img.write_bytes(examples.read())
    assert cli_main(["interpret", str(img), "--model", str(model_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["image"] for o in out] == [str(img)]
    assert set(out[0]["superclasses"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert len(out[0]["statements"]) > 10  # the default probes every synthetic condition


def test_text_output_shows_bars_and_percentages(interp, images):
    from ecgvlm.serve.cli_interpret import format_text

    text = format_text("a.png", interp.interpret(images[0]), show_all=True)
    assert "Report:" in text and "Superclasses:" in text and "Measurements:" in text
    assert text.count("%") == 5 + len(CODES)


def test_cli_bad_image_is_one_line_error(model_dir, tmp_path, capsys):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    assert cli_main(["interpret", str(bad), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty.png" in err and "empty" in err


def test_lora_adapter_is_applied_and_scored_like_infer(model_dir, images, tmp_path):
    """base + LoRA adapter (the demo's layout): the adapter changes answers; the scorer sees it."""
    import torch

    from ecgvlm.model.infer import option_probs
    from ecgvlm.model.load import load_model
    from ecgvlm.model.tuning import apply_tuning

    peft_model = apply_tuning(load_model(model_dir, device="cpu"), "paper")
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a "trained" adapter: LoRA B starts at zero
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    config = InterpretConfig(codes=("SR",), measurements=(), max_new_tokens=4)
    tuned = ECGInterpreter.from_pretrained(model_dir, adapter=adapter, device="cpu", config=config)
    assert tuned.name.endswith("+lora") and tuned.warning is None
    prompts = ["Does this ECG show sinus rhythm?", "Does this ECG show hypertrophy?"]
    ours = tuned.yes_probabilities([images[0], images[0]], prompts)
    ref = option_probs(tuned.model, tuned.processor, [images[0], images[0]], prompts, ["yes", "no"])[:, 0]
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    base = ECGInterpreter.from_pretrained(model_dir, device="cpu", config=config)
    assert abs(base.yes_probabilities([images[0]], prompts[:1])[0] - ours[0]) > 1e-4


def test_plan_asks_only_what_the_model_was_fine_tuned_on():
    from ecgvlm.serve.interpreter import plan_questions

    cfg = InterpretConfig(codes=CODES)
    plan, skipped = plan_questions(None, cfg)  # unknown training: ask everything, as before
    assert plan == {
        "report": "generate",
        "superclasses": "yesno",
        "statements": "yesno",
        "measurements": "generate",
    }
    assert skipped == {}
    plan, skipped = plan_questions(frozenset({"superclass", "report"}), cfg)  # the demo's model
    assert plan == {"report": "generate", "superclasses": "sets", "statements": None, "measurements": None}
    assert set(skipped) == {"statements", "measurements"}
    assert "yes/no" in skipped["statements"] and "report, superclass" in skipped["statements"]
    plan, skipped = plan_questions(frozenset({"yesno"}), cfg)
    assert plan["superclasses"] == "yesno" and plan["statements"] == "yesno" and plan["report"] is None
    assert set(skipped) == {"report", "measurements"}
    plan, _ = plan_questions(frozenset({"report"}), cfg)
    assert plan["superclasses"] is None
    # rows without a task (published ECGInstruct) may teach anything: asked everything
    assert plan_questions(frozenset({"report", "other"}), cfg) == plan_questions(None, cfg)
    plan, skipped = plan_questions(frozenset({"report"}), InterpretConfig(codes=CODES, ask_untrained=True))
    assert None not in plan.values() and skipped == {}
    plan, _ = plan_questions(frozenset({"yesno", "superclass"}), InterpretConfig(superclass_method="sets"))
    assert plan["superclasses"] == "sets"
    with pytest.raises(Exception, match="unknown superclass method"):
        plan_questions(None, InterpretConfig(superclass_method="vote"))


def test_label_set_probs_are_marginals_over_whole_answers(interp, images):
    from ecgvlm.model.infer import option_probs
    from ecgvlm.model.scoring import EOT, label_set_probs, label_subsets

    labels = ("NORM", "MI", "STTC")
    prompts = ["Which diagnostic superclasses does this ECG show?"] * 2
    ours = label_set_probs(interp.model, interp.processor, images[:2], prompts, labels)
    subsets = label_subsets(labels)
    assert subsets[:3] == [("NORM",), ("MI",), ("STTC",)] and subsets[-1] == labels and len(subsets) == 7
    whole = option_probs(
        interp.model, interp.processor, images[:2], prompts, [", ".join(s) + EOT for s in subsets]
    )
    for j, label in enumerate(labels):
        expected = sum(whole[:, k] for k, s in enumerate(subsets) if label in s)
        np.testing.assert_allclose(ours[:, j], expected, atol=1e-5)
    assert ((ours > 0) & (ours < 1)).all()
    assert not np.allclose(ours[0], ours[1])  # the image reaches the scorer


def test_adapter_trained_tasks_decide_the_questions(model_dir, images, tmp_path, capsys):
    """An adapter fine-tuned on superclass + report (the demo's): superclass answer sets, nothing else."""
    from ecgvlm.model.load import load_model
    from ecgvlm.model.scoring import label_set_probs
    from ecgvlm.model.tuning import apply_tuning
    from ecgvlm.serve.cli_interpret import format_text
    from ecgvlm.signals.vocab import SUPERCLASSES

    adapter = tmp_path / "adapter"
    apply_tuning(load_model(model_dir, device="cpu"), "paper").save_pretrained(adapter)
    (adapter / "train_summary.json").write_text(
        json.dumps({"steps": 1, "tasks": {"report": 4, "superclass": 4}})
    )
    config = InterpretConfig(codes=CODES, max_new_tokens=4)
    demo_like = ECGInterpreter.from_pretrained(model_dir, adapter=adapter, device="cpu", config=config)
    assert demo_like.trained_tasks == {"report", "superclass"}
    res = demo_like.interpret(images[0])
    assert (
        res.statements == [] and res.measurements == {} and set(res.skipped) == {"statements", "measurements"}
    )
    expected = label_set_probs(
        demo_like.model, demo_like.processor, images[:1], [demo_like.config.superclass_prompt], SUPERCLASSES
    )[0]
    assert list(res.superclasses) == list(SUPERCLASSES)
    np.testing.assert_allclose(list(res.superclasses.values()), expected, atol=1e-4)
    text = format_text("a.png", res)
    assert "not asked: this model was not fine-tuned on yes/no questions" in text
    # --ask-untrained brings the yes/no and measurement questions back
    img = tmp_path / "a.png"
    img.write_bytes(examples.read())
    argv = ["interpret", str(img), "--model", str(model_dir), "--adapter", str(adapter), "--json"]
    assert cli_main([*argv, "--ask-untrained"]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert out["skipped"] == {} and len(out["statements"]) > 10


def test_bad_train_summary_is_a_one_line_error_naming_it(tmp_path):
    from ecgvlm.errors import ECGVLMError
    from ecgvlm.serve.loading import trained_tasks

    assert trained_tasks(tmp_path) is None  # no record: ask everything
    summary = tmp_path / "train_summary.json"
    summary.write_text(json.dumps({"steps": 3}))
    assert trained_tasks(tmp_path) is None  # written before tasks were recorded
    summary.write_text(json.dumps({"tasks": {"superclass": 2, "report": 2}}))
    assert trained_tasks(tmp_path) == {"superclass", "report"}
    for bad, problem in (("{not json", "not valid JSON"), ("[1]", "expected a JSON object"),
                         (json.dumps({"tasks": ["superclass"]}), "'tasks' must map")):  # fmt: skip
        summary.write_text(bad)
        with pytest.raises(ECGVLMError, match=problem) as err:
            trained_tasks(tmp_path)
        assert "train_summary.json" in str(err.value) and "\n" not in str(err.value)
