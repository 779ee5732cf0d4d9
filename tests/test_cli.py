"""The `vqi2i` command end to end: train, translate, encode, info, interpolate, and one line + exit 2
for each user mistake."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqi2i.apps.encode import read_tokens
from vqi2i.apps.interpolate import column_weights, style_map, transition
from vqi2i.checkpoint import checkpoint_id, load_model
from vqi2i.cli import main
from vqi2i.images import load_image

TINY_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def ok(capsys, *args) -> str:
    rc, out, err = cli(capsys, *args)
    assert rc == 0, err
    return out


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size  # (W, H)


def test_train_stop_and_resume(capsys, tmp_path, scenes_dir):
    run = tmp_path / "run"
    common = ["train.batch_size=2", "train.log_every=1", "train.ckpt_every=1", "--device", "cpu", "--no-progress"]
    data = f"data.root={scenes_dir}"
    out = ok(capsys, "train", TINY_CONFIG, data, "train.max_steps=2", *common, "--out", run, "--stop-at", "1")
    assert "step 1" in out and (run / "checkpoints" / "latest").read_text().strip() == "step-0000001"
    ok(capsys, "train", "--resume", run, "--no-progress")
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000002"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png"]


def test_translate_folder_samples_grid_and_seed(capsys, tmp_path, tiny_run, scenes_dir):
    args = ["translate", "-c", tiny_run, "-i", scenes_dir / "testA", "-d", "a2b", "-n", "3", "--grid"]
    ok(capsys, *args, "-o", tmp_path / "one")
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["0000_a2b_0.png", "0000_a2b_1.png", "0000_a2b_2.png",
                     "0001_a2b_0.png", "0001_a2b_1.png", "0001_a2b_2.png", "grid.png"]  # fmt: skip
    assert _size(tmp_path / "one" / "0000_a2b_0.png") == (32, 32)
    assert _size(tmp_path / "one" / "grid.png")[0] > 4 * 32  # input + 3 outputs per row
    samples = [load_image(tmp_path / "one" / f"0000_a2b_{k}.png") for k in range(3)]
    assert not torch.equal(samples[0], samples[1])  # different random styles

    ok(capsys, *args, "-o", tmp_path / "two")  # same --seed (0): the same files
    ok(capsys, *args, "-o", tmp_path / "other", "--seed", "5")
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert (tmp_path / "one" / "0000_a2b_0.png").read_bytes() != (tmp_path / "other" / "0000_a2b_0.png").read_bytes()


def test_translate_reference_style_intra_and_odd_size(capsys, tmp_path, tiny_run, scenes_dir):
    src = scenes_dir / "testA" / "0000.png"
    ok(capsys, "translate", "-c", tiny_run, "-i", src, "-d", "a2b", "--style", scenes_dir / "testB" / "0001.png",
       "-o", tmp_path / "ref")  # fmt: skip
    ok(capsys, "translate", "-c", tiny_run, "-i", src, "-d", "a2b", "-o", tmp_path / "rand")
    assert load_image(tmp_path / "ref" / "0000_a2b_0.png").shape == (3, 32, 32)
    assert not torch.equal(
        load_image(tmp_path / "ref" / "0000_a2b_0.png"), load_image(tmp_path / "rand" / "0000_a2b_0.png")
    )

    ok(capsys, "translate", "-c", tiny_run, "-i", src, "-d", "a2b", "--intra", "-o", tmp_path / "intra")
    assert [p.name for p in (tmp_path / "intra").iterdir()] == ["0000_a2a_0.png"]

    odd = tmp_path / "odd" / "odd.png"
    odd.parent.mkdir()
    Image.open(src).convert("RGB").resize((37, 29)).save(odd)
    ok(capsys, "translate", "-c", tiny_run, "-i", odd, "-d", "b2a", "--fit", "pad", "-o", tmp_path / "odd_out")
    assert _size(tmp_path / "odd_out" / "odd_b2a_0.png") == (37, 29)


def test_encode(capsys, tmp_path, tiny_run, scenes_dir):
    folder = tmp_path / "images"
    shutil.copytree(scenes_dir / "testA", folder)
    Image.open(folder / "0000.png").convert("RGB").resize((37, 29)).save(folder / "odd.png")
    out = ok(capsys, "encode", "-c", tiny_run, "-i", folder, "-o", tmp_path / "tokens")
    assert "3 token grid(s)" in out
    manifest = json.loads((tmp_path / "tokens" / "tokens.json").read_text())
    assert manifest["checkpoint_id"] == checkpoint_id(tiny_run)
    assert (manifest["factor"], manifest["n_embed"], manifest["dtype"]) == (4, 64, "int16")
    by_name = {e["tokens"]: e for e in manifest["files"]}
    assert by_name["odd.npy"]["image_size"] == [29, 37] and by_name["odd.npy"]["grid"] == [8, 10]  # padded up

    model, _ = load_model(tiny_run)
    grid = np.load(tmp_path / "tokens" / "0001.npy")
    assert grid.dtype == np.int16 and grid.shape == (8, 8)
    with torch.no_grad():
        expected, _ = model.encode_content(load_image(folder / "0001.png")[None])
    assert np.array_equal(grid, expected[0].numpy())

    manifest, grids = read_tokens(tmp_path / "tokens")
    assert sorted(grids) == ["0000.npy", "0001.npy", "odd.npy"] and np.array_equal(grids["0001.npy"], grid)

    ok(capsys, "encode", "-c", tiny_run, "-i", folder / "0001.png", "-o", tmp_path / "single", "--fit", "crop")
    assert np.array_equal(np.load(tmp_path / "single" / "0001.npy"), grid)


def test_info(capsys, tiny_run, scenes_dir):
    text = ok(capsys, "info", tiny_run)
    for expected in ("variant         multimodal", "training step   4", "K=64, D=32", "factor f=4", "style dim       8",
                     "content encoder", "quantizer (codebook)", "style encoders", "decoders", "discriminators",
                     "from the training log", "weights         model.safetensors\n",
                     "style spread    from the training log: A "):  # fmt: skip
        assert expected in text, expected  # the tiny run keeps no moving average

    info = json.loads(ok(capsys, "info", tiny_run, "--json", "--data", scenes_dir))
    params = info["parameters"]
    assert params["total"] == sum(v for k, v in params.items() if k != "total")
    assert params["quantizer (codebook)"] == 64 * 32 and info["discriminators"]["parameters"] > 0
    usage = info["codebook_usage"]["measured"]
    assert usage["images"] == 20 and set(usage["folders"]) == {"trainA", "trainB", "testA", "testB"}
    assert 1 < usage["codes_used"] <= 64 and 1 < usage["perplexity"] <= usage["codes_used"]
    assert all(f["style_spread"] >= 0 for f in usage["folders"].values())  # each domain's own style encoder

    one = json.loads(ok(capsys, "info", tiny_run, "--json", "--data", scenes_dir / "testA"))
    assert one["codebook_usage"]["measured"]["images"] == 2 and one["codebook_usage"]["measured"]["folders"] == {}


def test_info_and_interpolate_on_a_bare_unimodal_checkpoint(capsys, tmp_path, make_tiny_cfg, scenes_dir):
    from vqi2i.checkpoint import save_checkpoint
    from vqi2i.models.build import build_model

    cfg = make_tiny_cfg("model.variant=unimodal")
    ckpt = save_checkpoint(tmp_path / "uni", 0, cfg, {"model": build_model(cfg)})  # no disc, no metrics
    text = ok(capsys, "info", ckpt)
    assert "variant         unimodal" in text and "domain styles (unimodal)" in text
    assert "none (one fixed style per domain)" in text and "not in checkpoint" in text
    assert "codebook usage  unknown" in text
    _expect_error(capsys, "interpolate", "-c", ckpt, "-i", scenes_dir / "testA" / "0000.png", "-d", "a2b",
                  "-o", tmp_path / "o", match="unimodal")  # fmt: skip


def test_interpolate(capsys, tmp_path, tiny_run, scenes_dir):
    src = scenes_dir / "testA" / "0000.png"
    args = ["interpolate", "-c", tiny_run, "-i", src, "-d", "a2b", "--steps", "4"]
    ok(capsys, *args, "-o", tmp_path / "one")
    ok(capsys, *args, "-o", tmp_path / "two")
    ok(capsys, *args, "-o", tmp_path / "one", "--mode", "smooth")
    refs = f"{scenes_dir / 'testB' / '0000.png'},{scenes_dir / 'testB' / '0001.png'}"
    ok(capsys, *args, "-o", tmp_path / "ref", "--styles", refs)
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "0000_a2b_smooth.png", "0000_a2b_smooth_strip.png", "0000_a2b_steps.png", "0000_a2b_steps_strip.png"
    ]  # fmt: skip
    assert _size(tmp_path / "one" / "0000_a2b_steps.png") == (32, 32)
    for name in ("0000_a2b_steps.png", "0000_a2b_steps_strip.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "ref" / "0000_a2b_steps.png").read_bytes() != (
        tmp_path / "one" / "0000_a2b_steps.png"
    ).read_bytes()


def test_transition_style_map(tiny_run, scenes_dir):
    assert column_weights(8, 4, "steps").tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert column_weights(5, 3, "smooth").tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    s1, s2 = torch.zeros(8), torch.ones(8)
    assert style_map(s1, s2, torch.tensor([0.0, 0.5, 1.0])).shape == (1, 8, 1, 3)
    assert style_map(s1, s2, torch.tensor([0.0, 0.5, 1.0]))[0, :, 0, 1].tolist() == [0.5] * 8

    model, _ = load_model(tiny_run)
    x = load_image(scenes_dir / "testA" / "0000.png")[None]
    g = torch.Generator().manual_seed(0)
    a, b = model.sample_style(2, g)
    image, strip = transition(model, x, a, b, "b", 4, "steps")
    assert image.shape == x.shape and strip.shape == (4, *x.shape[1:])
    # the strip's ends are plain decodes with style 1 and style 2
    with torch.no_grad():
        _, z_q = model.encode_content(x)
        torch.testing.assert_close(strip[:1], model.decode(z_q, a[None], "b"), rtol=0, atol=1e-4)
        torch.testing.assert_close(strip[3:], model.decode(z_q, b[None], "b"), rtol=0, atol=1e-4)
    # the transition image starts like style 1 at the left and ends like style 2 at the right
    left, right = slice(0, 8), slice(24, 32)
    err = lambda y, ref, cols: float((y[..., cols] - ref[..., cols]).abs().mean())  # noqa: E731
    assert err(image, strip[:1], left) < err(image, strip[3:], left)
    assert err(image, strip[3:], right) < err(image, strip[:1], right)
    # with one style on both sides it is exactly that style's decode
    same, _ = transition(model, x, a, a, "b", 4, "smooth")
    torch.testing.assert_close(same, strip[:1], rtol=0, atol=1e-4)


def test_console_script(tmp_path, tiny_run):
    script = Path(sys.executable).with_name("vqi2i")
    assert script.is_file(), f"console script missing next to {sys.executable}; pip install -e ."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([script, "info", str(tiny_run), "--json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checkpoint_id"] == checkpoint_id(tiny_run)


# ------------------------------------------------------------------ user mistakes: one line, exit 2


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("bad")
    corrupt = root / "corrupt"
    shutil.copytree(tiny_run, corrupt)
    latest = corrupt / "checkpoints" / (corrupt / "checkpoints" / "latest").read_text().strip()
    (latest / "model.safetensors").write_bytes(os.urandom(64) + b"this is not a safetensors file")
    (root / "not_an_image.png").write_text("hello, I am text")
    return root


def _expect_error(capsys, *args, match: str) -> str:
    rc, out, err = cli(capsys, *args)
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"vqi2i {args[0]}: error:") and match in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["translate", "encode", "info", "interpolate"])
def test_missing_and_corrupt_checkpoints(capsys, tmp_path, bad_inputs, scenes_dir, command):
    image = scenes_dir / "testA" / "0000.png"
    for checkpoint, match in ((tmp_path / "nowhere", "does not exist"), (bad_inputs / "corrupt", "not a readable")):
        if command == "info":
            args = ["info", checkpoint]
        else:
            args = [command, "-c", checkpoint, "-i", image, "-o", tmp_path / "out"]
            args += ["-d", "a2b"] if command in ("translate", "interpolate") else []
        _expect_error(capsys, *args, match=match)


def test_user_mistakes(capsys, tmp_path, tiny_run, bad_inputs, scenes_dir):
    image = scenes_dir / "testA" / "0000.png"
    _expect_error(capsys, "train", TINY_CONFIG, "train.max_step=3", "--out", tmp_path / "r",
                  match="unknown config key 'train.max_step' (did you mean 'train.max_steps'?)")  # fmt: skip
    _expect_error(capsys, "train", TINY_CONFIG, f"data.root={scenes_dir}", "--out", tiny_run, match="--overwrite")
    for command in ("translate", "interpolate"):
        _expect_error(capsys, command, "-c", tiny_run, "-i", image, "-d", "x2y", "-o", tmp_path / "o",
                      match="direction must be a2b or b2a")  # fmt: skip
    bad_image = bad_inputs / "not_an_image.png"
    for command in ("translate", "encode", "interpolate"):
        extra = ["-d", "a2b"] if command != "encode" else []
        _expect_error(capsys, command, "-c", tiny_run, "-i", bad_image, *extra, "-o", tmp_path / command,
                      match=f"cannot read image {bad_image}")  # fmt: skip
    _expect_error(capsys, "interpolate", "-c", tiny_run, "-i", image, "-d", "a2b", "-o", tmp_path / "o",
                  "--styles", "only_one.png", match="REF1,REF2")  # fmt: skip
    _expect_error(capsys, "info", tiny_run, "--data", tmp_path / "no_data", match="does not exist")
    tiny_image = tmp_path / "3x3.png"
    Image.new("RGB", (3, 3), (20, 200, 40)).save(tiny_image)
    _expect_error(capsys, "interpolate", "-c", tiny_run, "-i", tiny_image, "-d", "a2b", "-o", tmp_path / "o",
                  match="too small")  # fmt: skip
    _expect_error(capsys, "interpolate", "-c", tiny_run, "-i", image, "-d", "a2b", "-o", tmp_path / "o",
                  "--styles", f"{tiny_image},{image}", match="too small")  # fmt: skip

    # existing outputs are kept unless --overwrite
    for command, extra in (("translate", ["-d", "a2b"]), ("encode", []), ("interpolate", ["-d", "a2b"])):
        args = [command, "-c", tiny_run, "-i", image, *extra, "-o", tmp_path / f"{command}_twice"]
        ok(capsys, *args)
        _expect_error(capsys, *args, match="already exists")
        ok(capsys, *args, "--overwrite")


def test_translate_rejects_too_small_images(capsys, tmp_path, tiny_run):
    tiny_image = tmp_path / "3x3.png"
    Image.new("RGB", (3, 3), (20, 200, 40)).save(tiny_image)
    _expect_error(capsys, "translate", "-c", tiny_run, "-i", tiny_image, "-d", "a2b", "-o", tmp_path / "o",
                  match="too small")  # fmt: skip
