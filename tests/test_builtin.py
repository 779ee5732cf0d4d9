"""The built-in models: each shipped model loads by name, has its recorded checkpoint id and still gives
its recorded result; names work wherever a run folder does; `vqi2i models` lists them."""

from __future__ import annotations

import json

import pytest
import torch

from vqi2i.builtin import MODELS_DIR, available, get, locate
from vqi2i.cli import main
from vqi2i.errors import UserError

SHIPPED = {"scenes", "scenes-prior", "glyphs", "emoji"}
TOTAL_LIMIT = 30 * 2**20  # the repository's budget for shipped models


def test_the_shipped_models_are_all_there_and_small():
    assert SHIPPED <= set(available())
    total = sum(get(n).size_bytes for n in available())
    assert 0 < total <= TOTAL_LIMIT, f"built-in models take {total / 2**20:.1f} MB"
    for name in available():
        card = get(name).card
        for key in ("kind", "description", "checkpoint_id", "trained", "license", "attribution", "eval"):
            assert card.get(key), f"{name}: card has no {key}"
        assert card["trained"]["steps"] > 0 and card["trained"]["commands"]


@pytest.mark.parametrize("name", sorted(n for n in SHIPPED))
def test_builtin_model_loads_by_name_with_its_recorded_id(name):
    from vqi2i.checkpoint import checkpoint_id

    assert checkpoint_id(name) == get(name).card["checkpoint_id"]


@pytest.mark.parametrize("name", sorted(n for n in SHIPPED if n != "scenes-prior"))
def test_builtin_translator_gives_its_recorded_result(name):
    from vqi2i.apps.builtin_reference import translate_examples
    from vqi2i.checkpoint import load_model
    from vqi2i.images import load_image

    model, cfg = load_model(name, "cpu")
    m = get(name)
    assert m.examples("a") and m.examples("b")
    outputs = translate_examples(model, m, int(cfg.data.channels))
    assert len(outputs) == len(m.examples("a")) + len(m.examples("b"))
    for key, y in outputs.items():
        ref = load_image(m.path / "reference" / key, int(cfg.data.channels))
        assert y.shape == ref.shape
        diff = (y - ref).abs()  # the reference went through 8-bit PNG: half a level is 1/255 in [-1, 1]
        assert diff.mean() < 2 / 255 and diff.max() < 16 / 255, f"{name} {key}: mean {diff.mean():.4f}"


def test_builtin_prior_gives_its_recorded_bits_per_token():
    from vqi2i.apps.builtin_reference import prior_bits_per_token
    from vqi2i.inference import open_prior_with_codec

    card = get("scenes-prior").card
    prior, _, codec, codec_cfg = open_prior_with_codec("scenes-prior", None, "cpu")
    bits = prior_bits_per_token(prior, codec, get(card["codec"]), int(codec_cfg.data.channels))
    assert bits == pytest.approx(card["reference"]["example_bits_per_token"], abs=1e-3)
    assert bits < 7  # log2(128) = 7 bits: a prior that learnt nothing would not beat it


def test_names_work_as_checkpoints_and_a_local_run_folder_wins(tmp_path, monkeypatch, capsys):
    img = get("glyphs").examples("a")[0]
    assert main(["translate", "-c", "glyphs", "-i", str(img), "-d", "a2b", "-o", str(tmp_path / "o"), "-n", "2"]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 2
    assert locate("glyphs") == MODELS_DIR / "glyphs"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "glyphs").mkdir()  # an unrelated folder of that name does not hide the built-in model
    assert locate("glyphs") == MODELS_DIR / "glyphs"
    (tmp_path / "glyphs" / "checkpoints").mkdir()
    (tmp_path / "glyphs" / "checkpoints" / "latest").write_text("step-0000001\n")  # a run folder does
    assert locate("glyphs").resolve() == (tmp_path / "glyphs").resolve()
    with pytest.raises(UserError, match="no built-in model named 'nope'"):
        get("nope")


def test_models_command_lists_and_shows_cards(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out
    assert "SSIM" in out and "bits/token" in out
    assert main(["models", "emoji"]) == 0
    assert "CC-BY 4.0" in capsys.readouterr().out
    assert main(["models", "nope"]) == 2
    assert "no built-in model named 'nope'" in capsys.readouterr().err
    img = str(get("glyphs").examples("a")[0])
    assert main(["translate", "-c", "nope", "-i", img, "-d", "a2b", "-o", "o"]) == 2
    assert "is not a built-in model" in capsys.readouterr().err


def test_builtin_translation_is_deterministic_per_seed():
    from vqi2i.apps.builtin_reference import translate_examples
    from vqi2i.checkpoint import load_model

    model, cfg = load_model("emoji", "cpu")
    one = translate_examples(model, get("emoji"), 3)
    two = translate_examples(model, get("emoji"), 3)
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_the_readme_table_of_built_in_models_is_generated_from_their_cards():
    from conftest import ROOT, load_script

    table = load_script("train_builtin").readme_table()
    readme = (ROOT / "README.md").read_text()
    assert table in readme, "README's built-in table differs from the cards: python scripts/train_builtin.py --readme"
    assert table.count("\n| `") == 4  # scenes, scenes-prior, glyphs, emoji


def test_a_collapsed_translator_is_not_packaged_as_a_built_in(tmp_path):
    from conftest import load_script

    collapsed = load_script("train_builtin").collapsed
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({"style": {"a": {"spread": 0.42, "dead": 0.6}, "b": {"spread": 0.38, "dead": 0.5}}}))
    assert collapsed(report) == ""
    report.write_text(json.dumps({"style": {"a": {"spread": 0.0, "dead": 1.0}, "b": {"spread": 0.63, "dead": 0.6}}}))
    assert collapsed(report).startswith("a: style spread 0.000, dead channels 1.00")
    report.write_text(json.dumps({"style": {"a": {"spread": 0.3}, "b": {"spread": 0.2, "dead": 1.0}}}))
    assert collapsed(report).startswith("b:")  # a dead layer is a collapse even where noise keeps some spread
    report.write_text(json.dumps({"style": {}}))  # a unimodal model has no style encoder
    assert collapsed(report) == ""
