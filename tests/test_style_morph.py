"""scripts/style_morph.py on the tiny run: animations, strips, folder and sequence modes, seeds, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image, ImageSequence


@pytest.fixture(scope="module")
def morph():
    return load_script("style_morph")


def frames_of(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def run_ok(morph, capsys, *argv) -> str:
    capsys.readouterr()
    rc = morph.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def run_error(morph, capsys, *argv, match: str) -> None:
    capsys.readouterr()
    rc = morph.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("style_morph: error:") and err.count("\n") == 1, err
    assert match in err, err


def test_style_path_hits_keyframes_and_loops(morph):
    keys = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    path = morph.style_path(keys, 4)
    assert path.shape == (9, 2)
    assert torch.equal(path[0], keys[0]) and torch.equal(path[4], keys[1]) and torch.equal(path[8], keys[2])
    assert torch.allclose(path[2], torch.tensor([0.5, 0.0]))
    looped = morph.style_path(keys, 4, loop=True)
    assert looped.shape == (12, 2) and torch.allclose(looped[-1], 0.25 * keys[2] + 0.75 * keys[0])
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = morph.style_path(torch.stack([a, b]), 2, interp="slerp")[1]
    assert torch.allclose(mid.norm(), torch.tensor(1.0)), "slerp keeps the norm"
    assert torch.allclose(morph.resample_path(path, 3), keys)
    assert morph.strip_indices(9, 3) == [0, 4, 8] and morph.strip_indices(2, 6) == [0, 1]


def test_one_image_gif_webp_strip_seed_and_overwrite(morph, capsys, tmp_path, tiny_run, scenes_dir):
    src = scenes_dir / "testA" / "0000.png"
    args = ["-c", tiny_run, "-i", src, "-d", "a2b", "--frames", "3", "--format", "gif,webp", "--device", "cpu"]
    out = run_ok(morph, capsys, *args, "-o", tmp_path / "one")
    assert "7 frames (3 keyframes, linear)" in out
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "0000_morph.gif", "0000_morph.webp", "0000_morph_strip.png"]
    gif = frames_of(tmp_path / "one" / "0000_morph.gif")
    assert len(gif) == 7 and gif[0].shape == (32, 32, 3)
    assert not np.array_equal(gif[0], gif[-1])
    assert len(frames_of(tmp_path / "one" / "0000_morph.webp")) == 7
    with Image.open(tmp_path / "one" / "0000_morph_strip.png") as strip:
        assert strip.width > 6 * 32

    run_ok(morph, capsys, *args, "-o", tmp_path / "two")
    run_ok(morph, capsys, *args, "-o", tmp_path / "other", "--seed", "1")
    for name in ("0000_morph.gif", "0000_morph_strip.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one" / "0000_morph.gif").read_bytes() != (tmp_path / "other" / "0000_morph.gif").read_bytes()

    before = (tmp_path / "one" / "0000_morph.gif").read_bytes()
    run_error(morph, capsys, *args, "-o", tmp_path / "one", "--seed", "1", match="--overwrite")
    assert (tmp_path / "one" / "0000_morph.gif").read_bytes() == before
    run_ok(morph, capsys, *args, "-o", tmp_path / "one", "--seed", "1", "--overwrite")
    assert (tmp_path / "one" / "0000_morph.gif").read_bytes() == (tmp_path / "other" / "0000_morph.gif").read_bytes()
    assert not [p for p in (tmp_path / "one").iterdir() if p.name.endswith(".tmp")]


def test_exemplars_folder_and_sequence(morph, capsys, tmp_path, tiny_run, scenes_dir):
    refs = ",".join(str(scenes_dir / "testB" / f"000{i}.png") for i in (0, 1))
    base = ["-c", tiny_run, "-d", "a2b", "--device", "cpu"]
    out = run_ok(morph, capsys, *base, "-i", scenes_dir / "testA", "-o", tmp_path / "folder", "--styles", refs,
                 "--frames", "2", "--loop", "--interp", "slerp")
    assert "2 morph(s) of 4 frames (2 keyframes, slerp)" in out
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [
        "0000_morph.gif", "0000_morph_strip.png", "0001_morph.gif", "0001_morph_strip.png", "grid.png"]
    assert len(frames_of(tmp_path / "folder" / "0001_morph.gif")) == 4

    frames = tmp_path / "frames_in"
    frames.mkdir()
    for k in range(4):
        shutil.copy(scenes_dir / "testA" / f"000{k % 2}.png", frames / f"f{k}.png")
    out = run_ok(morph, capsys, *base, "-i", frames, "-o", tmp_path / "seq", "--sequence", "--format", "gif")
    assert "wrote 4 frames" in out
    assert sorted(p.name for p in (tmp_path / "seq" / "frames").iterdir()) == ["f0.png", "f1.png", "f2.png", "f3.png"]
    seq = frames_of(tmp_path / "seq" / "sequence.gif")
    assert len(seq) == 4 and not np.array_equal(seq[0], seq[2])  # same content, another style
    assert (tmp_path / "seq" / "sequence_strip.png").is_file()


def test_errors_are_one_line(morph, capsys, tmp_path, tiny_run, scenes_dir):
    src = scenes_dir / "testA" / "0000.png"
    base = ["-c", tiny_run, "-i", src, "-o", tmp_path / "o", "--device", "cpu"]
    run_error(morph, capsys, *base, "-d", "up", match="direction")
    run_error(morph, capsys, *base, "-d", "a2b", "--styles", str(src), match="at least two")
    run_error(morph, capsys, *base, "-d", "a2b", "--styles", f"{src},{tmp_path / 'nope.png'}", match="not a file")
    run_error(morph, capsys, *base, "-d", "a2b", "--format", "mp4", match="--format")
    run_error(morph, capsys, *base, "-d", "a2b", "--keyframes", "1", match="--keyframes")
    run_error(morph, capsys, *base, "-d", "a2b", "--frames", "0", match="--frames")
    run_error(morph, capsys, *base, "-d", "a2b", "--sequence", match="folder")
    run_error(morph, capsys, "-c", tmp_path / "no_run", "-i", src, "-o", tmp_path / "o", "-d", "a2b", match="no_run")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    run_error(morph, capsys, "-c", tiny_run, "-i", bad, "-o", tmp_path / "o", "-d", "a2b", match="cannot read image")
    assert not (tmp_path / "o").exists()
