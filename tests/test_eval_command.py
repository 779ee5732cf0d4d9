"""`vqi2i eval` and `vqi2i train-classifier` end to end on a tiny checkpoint and a handful of glyphs."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from PIL import Image

from vqi2i.checkpoint import save_checkpoint
from vqi2i.cli import main
from vqi2i.config import load_config
from vqi2i.data import glyphs
from vqi2i.models.build import build_model

CHARS = "永字書法山水"  # 3 train + 3 test characters
SIZE = 16


@pytest.fixture(scope="module")
def glyph_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("glyphs") / "g"
    fonts = glyphs.find_font(glyphs.DEFAULT_FONT_A), glyphs.find_font(glyphs.DEFAULT_FONT_B)
    glyphs.build_glyph_dataset(root, *fonts, size=SIZE, characters=CHARS, test_ratio=0.5, progress=False)
    return root


def tiny_checkpoint(folder, variant: str):
    cfg = load_config("configs/tiny.yaml", [
        "model.in_channels=1", "data.channels=1", f"data.size={SIZE}", f"data.crop={SIZE}", f"model.variant={variant}",
    ])
    torch.manual_seed(0)
    return save_checkpoint(folder, 7, cfg, {"model": build_model(cfg)})


def copy_data(src, dst, ground_truth: bool = True):
    shutil.copytree(src, dst)
    if not ground_truth:
        for p in (dst / "testB").iterdir():
            p.rename(p.with_name("other_" + p.name))
    return dst


def finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_eval_with_ground_truth_writes_report_table_and_sheet(glyph_data, tmp_path, capsys):
    data = copy_data(glyph_data, tmp_path / "data")
    ckpt = tiny_checkpoint(tmp_path / "run", "multimodal")
    out = tmp_path / "report.json"
    rc = main(["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--out", str(out),
               "--classifier-steps", "20", "--num-samples", "3", "--no-progress", "--device", "cpu"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "| metric | A→B | B→A |" in stdout and "L1 to ground truth" in stdout and "content kept" in stdout
    assert "reconstruction content kept" in stdout and "reconstruction colour / layout error" in stdout
    assert "tokens kept" in stdout and "dead channels" in stdout
    report = json.loads(out.read_text())
    assert report["step"] == 7 and report["checkpoint"] == str(ckpt) and report["variant"] == "multimodal"
    assert report["ground_truth_pairs"] == 3 and report["num_test"] == {"a": 3, "b": 3}
    for key in ("a_to_b", "b_to_a"):
        d = report["directions"][key]
        assert 0 <= d["ground_truth"]["l1"] <= 1 and finite(d["ground_truth"]["psnr"])
        assert -1 <= d["ground_truth"]["ssim"] <= 1 and finite(d["identity"]["ssim"])
        assert 0 <= d["ground_truth"]["coarse_l1"] <= d["ground_truth"]["l1"] + 1e-6  # pooling only averages errors
        assert 0 <= d["nearer_than_input"] <= 1
        assert 0 <= d["retrieval"]["output"] <= 1 and 0 <= d["retrieval"]["identity"] <= 1
        assert 0 <= d["style_accuracy"] <= 1 and 0 <= d["tokens_kept"] <= 1
        assert d["classifier_features"]["fd"] >= 0 and finite(d["classifier_features"]["kid"])
        assert d["diversity"]["pixel_l1"] > 0  # random styles change a multimodal model's output
    for d in "ab":  # the style path: how many of the style encoder's last channels are dead on the whole test set
        assert 0 <= report["style"][d]["dead"] <= 1
    for d in "ab":  # the codec's own content-kept bar
        assert 0 <= report["reconstruction"][d]["kept"] <= 1 and -1 <= report["reconstruction"][d]["ssim"] <= 1
        assert 0 <= report["reconstruction"][d]["coarse_l1"] <= report["reconstruction"][d]["l1"] + 1e-6
    # the identity baseline is the same pair compared both ways
    assert report["directions"]["a_to_b"]["identity"]["l1"] == pytest.approx(
        report["directions"]["b_to_a"]["identity"]["l1"])
    cb = report["codebook"]
    assert 1 <= cb["all"]["codes_used"] <= 64 and 1 <= cb["all"]["perplexity"] <= cb["all"]["codes_used"] + 1e-6
    assert 0 <= cb["token_agreement"] <= 1 and "token_agreement_across_looks" not in cb  # glyphs have no looks
    assert report["classifier"]["source"] == "trained" and 0 <= report["classifier"]["test_accuracy"] <= 1
    assert (data / "domain_classifier.safetensors").is_file()  # cached beside the data
    # sheet: 3 inputs per direction, each row input | 3 samples | ground truth, 16-px cells, 2-px padding
    sheet = Image.open(report["sheet"])
    assert report["sheet"] == str(tmp_path / "report-samples.png")
    assert sheet.height == 6 * SIZE + 7 * 2 and sheet.width > 5 * SIZE + 6 * 2
    assert any("Inception" in s for s in report["skipped"])

    # an existing report is kept unless --overwrite
    again = ["eval", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--no-progress"]
    assert main(again) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(again + ["--overwrite", "--classifier-steps", "20"]) == 0
    assert json.loads(out.read_text())["classifier"]["source"] == "cache"


def test_eval_without_ground_truth_skips_those_metrics_and_runs_the_rest(glyph_data, tmp_path, capsys):
    data = copy_data(glyph_data, tmp_path / "data", ground_truth=False)
    tiny_checkpoint(tmp_path / "run", "unimodal")
    from safetensors.torch import save_file
    from torchvision.models import inception_v3

    weights = tmp_path / "inception.safetensors"
    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    out = tmp_path / "r.json"
    rc = main(["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--out", str(out),
               "--classifier-steps", "20", "--max-images", "2", "--inception-weights", str(weights), "--no-progress"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "skipped: ground-truth metrics" in stdout and "no ground truth" in stdout
    report = json.loads(out.read_text())
    assert report["ground_truth_pairs"] == 0 and "token_agreement" not in report["codebook"]
    for d in report["directions"].values():
        assert "ground_truth" not in d and "identity" not in d and "nearer_than_input" not in d
        assert "retrieval" not in d
        assert finite(d["classifier_features"]["fd"]) and 0 <= d["style_accuracy"] <= 1
        assert d["inception"]["fd"] >= 0 and finite(d["inception"]["kid"])
        assert d["diversity"]["pixel_l1"] == 0.0  # the unimodal variant has one output per input
    assert Image.open(report["sheet"]).height == 4 * SIZE + 5 * 2


def test_eval_bad_input_is_one_line(glyph_data, tmp_path, capsys):
    tiny_checkpoint(tmp_path / "run", "multimodal")
    data = copy_data(glyph_data, tmp_path / "data")
    base = ["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--no-progress",
            "--classifier-steps", "20"]
    not_weights = tmp_path / "w.pt"
    not_weights.write_bytes(b"garbage")
    cases = [
        (base + ["--inception-weights", str(tmp_path / "missing.pt")], "never downloads"),
        (base + ["--inception-weights", str(not_weights), "--out", str(tmp_path / "x.json")], "cannot read Inception"),
        (base + ["--num-samples", "1"], "at least 2"),
        (["eval", "--checkpoint", str(tmp_path / "nothing"), "--data", str(data)], "does not exist"),
        (["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(tmp_path / "nodata")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (data / "domain_classifier.safetensors").exists()  # every case failed before any long work


def test_train_classifier_caches_beside_the_data(glyph_data, tmp_path, capsys):
    data = copy_data(glyph_data, tmp_path / "data")
    argv = ["train-classifier", "--data", str(data), "--steps", "20", "--no-progress"]
    assert main(argv) == 0
    assert "accuracy train" in capsys.readouterr().out
    meta = json.loads((data / "domain_classifier.json").read_text())
    assert meta["settings"]["channels"] == 1 and meta["settings"]["image_size"] == SIZE
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0


def test_eval_on_scenes_reports_same_tokens_under_another_look(tmp_path):
    """On the synthetic scenes the codebook block also holds how often a test scene keeps its tokens when drawn in
    its own season with another look: the control for same-scene agreement across seasons."""
    from vqi2i.checkpoint import load_model
    from vqi2i.data.scenes import make_scenes, test_scenes_with_looks

    data = make_scenes(tmp_path / "scenes", n_train=2, n_test=4, size=SIZE, progress=False)
    cfg = load_config("configs/tiny.yaml", [f"data.size={SIZE}", f"data.crop={SIZE}"])
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "run", 3, cfg, {"model": build_model(cfg)})
    out = tmp_path / "r.json"
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--out", str(out),
                 "--classifier-steps", "5", "--no-progress", "--device", "cpu"]) == 0
    looks = json.loads(out.read_text())["codebook"]["token_agreement_across_looks"]
    model, _ = load_model(tmp_path / "run")
    from vqi2i.images import from_uint8 as unit
    own, other = test_scenes_with_looks(data, 0), test_scenes_with_looks(data, 1)
    with torch.no_grad():
        for d in "ab":
            expected = (model.encode_content(unit(own[d]))[0] == model.encode_content(unit(other[d]))[0])
            assert looks[d] == pytest.approx(float(expected.float().mean()))
    assert test_scenes_with_looks(tmp_path / "run", 1) is None  # not a scenes data set
