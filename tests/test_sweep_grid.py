"""`ecgvlm sweep` planning: grid parsing, products, zipped keys, leave-one-source-out, early errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgvlm.cli import main as cli
from ecgvlm.errors import ECGVLMError
from ecgvlm.train.sweep import lock_spec
from ecgvlm.train.sweep_grid import expand, expand_loo, parse_axis, parse_grid

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs/tiny_cpu.yaml")


def _rows(sources: list[str]) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "image": "images/x.png",
            "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "NORM"}],
            "metadata": {"subtask": "superclass", "source": s, "gold": {"superclasses": ["NORM"]}},
        }
        for i, s in enumerate(sources)
    ]


@pytest.fixture
def data(tmp_path) -> Path:
    (tmp_path / "train.json").write_text(json.dumps(_rows(["ptbxl", "synth", "mimic", "synth", "ptbxl"])))
    (tmp_path / "test.json").write_text(json.dumps(_rows(["ptbxl", "synth"])))
    return tmp_path


def test_product_of_axes_first_varies_slowest():
    points = expand(parse_grid(["tuning=paper,partial", "lora.r=16,64,128"]))
    assert [p.values for p in points] == [
        {"tuning": t, "lora.r": r} for t in ("paper", "partial") for r in (16, 64, 128)
    ]
    assert points[0].name == "tuning=paper__lora.r=16"
    assert points[0].overrides == ["tuning=paper", "lora.r=16"]
    assert len({p.name for p in points}) == 6
    assert isinstance(points[0].values["lora.r"], int)  # YAML scalars, as train overrides


def test_zipped_keys_vary_together():
    points = expand(parse_grid(["lora.r=16,32:lora.alpha=32,64"]))
    assert [p.values for p in points] == [{"lora.r": 16, "lora.alpha": 32}, {"lora.r": 32, "lora.alpha": 64}]
    with pytest.raises(ECGVLMError, match="as many values"):
        parse_axis("lora.r=16,32:lora.alpha=32")


def test_loo_expands_to_all_and_each_source(data):
    axis = expand_loo(parse_axis("data.sources=loo"), data / "train.json")
    assert [v for (v,) in axis.values] == ["all", "-mimic", "-ptbxl", "-synth"]
    names = [p.name for p in expand([axis])]
    assert names == [
        "data.sources=all",
        "data.sources=no-mimic",
        "data.sources=no-ptbxl",
        "data.sources=no-synth",
    ]
    # an explicit list is kept as given
    axis = parse_axis("data.sources=all,-ptbxl,ptbxl+synth")
    assert [v for (v,) in axis.values] == ["all", "-ptbxl", "ptbxl+synth"]


@pytest.mark.parametrize(
    "grid, message",
    [
        ("lora.rank=16,32", "unknown config key 'lora.rank'"),
        ("lorax.r=1", "unknown config key 'lorax.r'"),
        ("lora.r=sixteen", "lora.r: value 'sixteen' is not a valid int"),
        ("tuning=paper,partail", "unknown preset 'partail'"),
        ("lora.r=16,,32", "empty value"),
        ("lora.r", "expected KEY=V1,V2"),
        ("output_dir=a,b", "set by the sweep"),
    ],
)
def test_bad_grid_is_one_line_naming_the_key(grid, message):
    with pytest.raises(ECGVLMError, match=message.replace("(", r"\(")) as e:
        parse_grid([grid])
    assert "\n" not in str(e.value)


def test_same_key_in_two_grids_is_refused():
    with pytest.raises(ECGVLMError, match="'lora.r' appears in two"):
        parse_grid(["lora.r=16", "lora.r=32"])


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli(["sweep", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_dry_run_lists_points(data, tmp_path, capsys):
    rc, out, err = _cli(
        [
            "--config",
            CONFIG,
            "--grid",
            "data.sources=loo",
            "--grid",
            "tuning=paper,partial",
            "--out",
            str(tmp_path / "s"),
            f"data.train={data / 'train.json'}",
            "--dry-run",
        ],
        capsys,
    )
    assert rc == 0, err
    assert out.startswith("8 points;") and "benchmarks ptbxl-super" in out
    assert "data.sources=no-mimic__tuning=partial: data.sources=-mimic tuning=partial" in out
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--grid", "lora.rnk=1,2"], "unknown config key 'lora.rnk'"),
        (["--grid", "data.sources=all,-code15"], "no rows with metadata.source 'code15'"),
        (["--grid", "data.sources=ptbxl+synth+mimic,-ptbxl+-synth+-mimic"], "leaves no training rows"),
        (["--grid", "lora.r=8", "--benchmarks", "mcq"], "no 'mcq' rows in the test file"),
        (["--grid", "lora.r=8", "--benchmarks", "ptbxl-5"], "unknown 'ptbxl-5'"),
        (["--grid", "lora.r=8", "nosuch.key=1"], "unknown key 'nosuch'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(data, tmp_path, capsys, extra, message):
    rc, _, err = _cli(
        [
            "--config",
            CONFIG,
            "--out",
            str(tmp_path / "s"),
            f"data.train={data / 'train.json'}",
            "--dry-run",
            *extra,
        ],
        capsys,
    )
    assert rc == 2
    assert err.count("\n") == 1 and message in err, err


def test_loo_needs_two_sources(tmp_path, capsys):
    (tmp_path / "train.json").write_text(json.dumps(_rows(["synth", "synth"])))
    (tmp_path / "test.json").write_text(json.dumps(_rows(["synth"])))
    rc, _, err = _cli(
        [
            "--config",
            CONFIG,
            "--grid",
            "data.sources=loo",
            "--out",
            str(tmp_path / "s"),
            f"data.train={tmp_path / 'train.json'}",
            "--dry-run",
        ],
        capsys,
    )
    assert rc == 2 and "names only ['synth']; nothing to leave out" in err


def test_changed_settings_of_an_existing_sweep_are_refused(tmp_path):
    spec = {"grid": ["lora.r=16,32"], "test": "t.json"}
    lock_spec(tmp_path, spec)
    lock_spec(tmp_path, dict(spec))  # same settings: fine (a resume)
    with pytest.raises(ECGVLMError, match="different grid; use another --out"):
        lock_spec(tmp_path, {**spec, "grid": ["lora.r=16,64"]})
