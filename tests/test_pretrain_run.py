"""`ecgvlm pretrain-base`: the same seed twice gives identical weights; a resumed run equals a straight one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ARGS = ["--geometry", "micro", "--eval-examples", "4", "--warmup", "2", "--save-every", "1", "--no-progress",
        "--record-pool", "16", "--first-task-steps", "2"]  # fmt: skip
STAGE1 = ["--vision-steps", "2", "--vision-batch-size", "2"]


def _run(out, *extra):
    cmd = [sys.executable, "-m", "ecgvlm", "pretrain-base", "--out", str(out), *ARGS, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_same_seed_twice_gives_identical_weights_and_resume_matches(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out in (a, b):
        r = _run(out, "--steps", "4", *STAGE1)
        assert r.returncode == 0, r.stderr[-2000:]
    wa = (a / "model.safetensors").read_bytes()
    assert wa == (b / "model.safetensors").read_bytes()
    card = json.loads((a / "pretrain.json").read_text())
    assert card["steps"] == 4 and len(card["loss"]) == 4 and all(x > 0 for x in card["loss"])
    assert (a / "loss.png").stat().st_size > 1000
    from safetensors.torch import load_file

    weights = load_file(str(a / "model.safetensors"))
    assert {str(t.dtype) for t in weights.values()} == {"torch.float16"}
    # stage 1 trained the vision tower; stage 2 left it exactly as stage 1 did (frozen)
    stage1 = load_file(str(a / "_work" / "vision.safetensors"))
    init = load_file(str(a / "_work" / "init" / "model.safetensors"))
    name = "vision_model.patch_embedding.weight"  # the saved (checkpoint) key layout
    assert not (stage1["patch_embedding.weight"] == init[name]).all()
    for k, v in stage1.items():
        assert (weights["vision_model." + k] == v.half()).all(), k
    assert card["vision_loss"] and len(card["vision_loss"]) == 2

    # stop after 2 steps (still before the decay of a 4-step run), then resume to 4
    assert _run(c, "--steps", "2", *STAGE1).returncode == 0
    r = _run(c, "--steps", "4", "--resume", *STAGE1)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (c / "model.safetensors").read_bytes() == wa
    # a resume with other stage-1 options must not reuse the tower silently
    r = _run(c, "--steps", "4", "--resume", "--vision-steps", "3", "--vision-batch-size", "2")
    assert r.returncode == 2 and "vision_steps 2 -> 3" in r.stderr, r.stderr[-2000:]
    assert (c / "model.safetensors").read_bytes() == wa


def test_refuses_a_used_folder_without_resume(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    r = _run(tmp_path, "--steps", "1")
    assert r.returncode == 2
    assert "not empty" in r.stderr and str(tmp_path) in r.stderr
    assert (tmp_path / "x.txt").read_text() == "keep me"


def test_other_seed_gives_other_weights(tmp_path):
    from safetensors.torch import load_file

    assert _run(tmp_path / "s0", "--steps", "1").returncode == 0
    assert _run(tmp_path / "s1", "--steps", "1", "--seed", "1").returncode == 0
    w0 = load_file(str(tmp_path / "s0" / "model.safetensors"))
    w1 = load_file(str(tmp_path / "s1" / "model.safetensors"))
    name = next(k for k in w0 if "lm_head" in k)
    assert not (w0[name] == w1[name]).all()


def test_lr_is_independent_of_the_step_count_until_the_decay():
    from ecgvlm.train.pretrain import decay_start, lr_factor

    for s in range(0, 600, 7):
        assert lr_factor(s, 1000, 100, 0.25, 0.05) == lr_factor(s, 4000, 100, 0.25, 0.05)
    assert decay_start(1000, 0.25) == 750
    assert lr_factor(999, 1000, 100, 0.25, 0.05) < 0.06
    assert lr_factor(50, 1000, 100, 0.25, 0.05) == 0.51


@pytest.mark.slow
def test_text_stage_is_reproducible_and_leaves_the_image_side_alone(tmp_path):
    from safetensors.torch import load_file

    two, three, again, alone = (tmp_path / n for n in ("two", "three", "again", "alone"))
    assert _run(two, "--steps", "2").returncode == 0
    for out in (three, again):
        r = _run(out, "--steps", "2", "--text-steps", "3", "--text-batch-size", "2")
        assert r.returncode == 0, r.stderr[-2000:]
    w3 = (three / "model.safetensors").read_bytes()
    assert w3 == (again / "model.safetensors").read_bytes()  # the rebuild gives the same bytes
    # stage 3 alone on the exported stage-2 base equals the three-stage run
    cmd = [sys.executable, "-m", "ecgvlm", "pretrain-base", "--out", str(alone), "--from-base", str(two),
           "--text-steps", "3", "--text-batch-size", "2", "--no-progress"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (alone / "model.safetensors").read_bytes() == w3
    before, after = load_file(str(two / "model.safetensors")), load_file(str(three / "model.safetensors"))
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert any("lm_head" in k for k in changed) and any(
        "language_model.model.layers.0." in k for k in changed
    )
    assert not any("vision_model" in k or "multi_modal_projector" in k for k in changed)
    assert not any("language_model.model.layers.1." in k for k in changed)  # micro's cross-attention layer
    card = json.loads((three / "pretrain.json").read_text())
    assert card["text_stage"]["steps"] == 3 and len(card["text_stage"]["loss"]) == 3
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # a used folder is refused
    assert r.returncode == 2 and "holds an earlier `ecgvlm pretrain-base` output" in r.stderr
