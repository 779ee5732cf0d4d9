"""The glyph benchmark data: coverage from the cmap, a deterministic disjoint split, pairs aligned by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vqi2i.cli import main
from vqi2i.data import glyphs
from vqi2i.errors import UserError

MISSING_IN_KAI = "\u5350"  # 卐: in AR PL UMing's cmap, not in AR PL UKai's
EMPTY_IN_KAI = "\u49b7"    # in both cmaps, but UKai draws it without ink
COMMON = "一永字書法山水天地人風雲"


@pytest.fixture(scope="module")
def fonts():
    """The default pair; CI and the README's set-up install fonts-arphic-uming and fonts-arphic-ukai."""
    return glyphs.find_font(glyphs.DEFAULT_FONT_A), glyphs.find_font(glyphs.DEFAULT_FONT_B)


def build(out, fonts, **kw):
    kw.setdefault("size", 16)
    kw.setdefault("progress", False)
    return glyphs.build_glyph_dataset(out, *fonts, **kw)


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_default_fonts_resolve_to_arphic_collections(fonts):
    a, b = fonts
    assert a.path.endswith("uming.ttc") and a.family.startswith("AR PL UMing")
    assert b.path.endswith("ukai.ttc") and b.family.startswith("AR PL UKai")
    # a face of the collection can be chosen by its full family name or by index
    tw = glyphs.find_font("AR PL UMing TW")
    assert tw.path == a.path and tw.index != a.index
    assert glyphs.find_font(a.path, index=2).index == 2


def test_coverage_rejects_characters_a_font_lacks(fonts, tmp_path):
    cover_a, cover_b = glyphs.font_coverage(fonts[0]), glyphs.font_coverage(fonts[1])
    assert ord(MISSING_IN_KAI) in cover_a and ord(MISSING_IN_KAI) not in cover_b
    chars = MISSING_IN_KAI + EMPTY_IN_KAI + COMMON
    manifest = build(tmp_path / "g", fonts, characters=chars, test_ratio=0.25)
    assert manifest["skipped_missing"] == MISSING_IN_KAI
    assert manifest["skipped_no_ink"] == EMPTY_IN_KAI
    written = {n for sub in ("trainA", "trainB", "testA", "testB") for n in names(tmp_path / "g" / sub)}
    assert glyphs.glyph_filename(ord(MISSING_IN_KAI)) not in written
    assert glyphs.glyph_filename(ord(EMPTY_IN_KAI)) not in written
    assert len(written) == len(COMMON)


def test_no_common_character_is_an_error(fonts, tmp_path):
    with pytest.raises(UserError, match="no CJK character in common"):
        build(tmp_path / "g", fonts, characters=MISSING_IN_KAI)


def test_split_is_deterministic_and_disjoint(fonts, tmp_path):
    m1 = build(tmp_path / "one", fonts, num_chars=20, test_ratio=0.2, seed=3)
    m2 = build(tmp_path / "two", fonts, num_chars=20, test_ratio=0.2, seed=3)
    m3 = build(tmp_path / "three", fonts, num_chars=20, test_ratio=0.2, seed=4)
    assert (m1["train"], m1["test"]) == (m2["train"], m2["test"])
    assert set(m1["test"]) != set(m3["test"])
    assert not set(m1["train"]) & set(m1["test"])
    assert (m1["num_train"], m1["num_test"]) == (16, 4)
    for sub in ("trainA", "trainB", "testA", "testB"):
        assert names(tmp_path / "one" / sub) == names(tmp_path / "two" / sub)
        for n in names(tmp_path / "one" / sub):
            assert (tmp_path / "one" / sub / n).read_bytes() == (tmp_path / "two" / sub / n).read_bytes()
    # the ranking is a pure function of (seed, code point): a larger sample keeps the smaller one's order
    pool = set(range(0x4E00, 0x4E00 + 500))
    small = set(glyphs.rank_characters(pool, 3)[:100])
    assert glyphs.rank_characters(small, 3) == glyphs.rank_characters(pool, 3)[:100]


def test_pairs_align_by_name_and_match_a_fresh_render(fonts, tmp_path):
    manifest = build(tmp_path / "g", fonts, num_chars=10, test_ratio=0.3, size=32)
    root = tmp_path / "g"
    assert names(root / "testA") == names(root / "testB")
    assert set(names(root / "trainA")).isdisjoint(names(root / "trainB"))  # disjoint by default
    assert set(names(root / "testA")).isdisjoint(names(root / "trainA") + names(root / "trainB"))
    assert "".join(chr(glyphs.codepoint_from_filename(n)) for n in names(root / "testA")) == manifest["test"]
    font_a, font_b = glyphs.load_font(fonts[0], 32), glyphs.load_font(fonts[1], 32)
    for n in names(root / "testA"):
        char = chr(glyphs.codepoint_from_filename(n))
        a, b = Image.open(root / "testA" / n), Image.open(root / "testB" / n)
        assert a.mode == b.mode == "L" and a.size == b.size == (32, 32)
        assert np.array_equal(np.asarray(a), np.asarray(glyphs.render_glyph(font_a, char, 32)))
        assert np.array_equal(np.asarray(b), np.asarray(glyphs.render_glyph(font_b, char, 32)))
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # two typefaces
    saved = json.loads((root / glyphs.MANIFEST).read_text())
    assert saved["font_a"]["path"] == fonts[0].path and saved["size"] == 32
    assert glyphs.codepoint_from_filename("uni4E00.png") == 0x4E00
    assert glyphs.codepoint_from_filename("cat.png") is None


def test_train_split_is_disjoint_by_default_and_shared_on_request(fonts, tmp_path):
    disjoint = build(tmp_path / "d", fonts, num_chars=20, test_ratio=0.2, seed=1)
    shared = build(tmp_path / "s", fonts, num_chars=20, test_ratio=0.2, seed=1, shared_train=True)
    assert disjoint["train_split"] == "disjoint" and disjoint["shared_train"] is False
    assert (disjoint["num_train"], disjoint["num_train_a"], disjoint["num_train_b"], disjoint["num_test"]) == (
        16, 8, 8, 4)
    train_a, train_b = names(tmp_path / "d" / "trainA"), names(tmp_path / "d" / "trainB")
    assert not set(train_a) & set(train_b)
    assert sorted(train_a + train_b) == sorted(glyphs.glyph_filename(ord(c)) for c in disjoint["train"])
    assert "".join(chr(glyphs.codepoint_from_filename(n)) for n in train_a) == disjoint["train_a"]
    assert names(tmp_path / "d" / "testA") == names(tmp_path / "d" / "testB")
    # --shared-train: the same characters, each in both domains
    assert shared["train_split"] == "shared" and (shared["train"], shared["test"]) == (disjoint["train"],
                                                                                      disjoint["test"])
    assert names(tmp_path / "s" / "trainA") == names(tmp_path / "s" / "trainB") == sorted(train_a + train_b)
    assert json.loads((tmp_path / "d" / glyphs.MANIFEST).read_text())["shared_train"] is False
    # a disjoint split needs two training characters besides the test one
    with pytest.raises(UserError, match="--shared-train"):
        build(tmp_path / "few", fonts, characters=COMMON[:2], test_ratio=0.5)
    few = build(tmp_path / "few", fonts, characters=COMMON[:2], test_ratio=0.5, shared_train=True)
    assert (few["num_train"], few["num_test"]) == (1, 1)
    assert glyphs.split_domains([1, 2, 3], 0) == glyphs.split_domains([3, 2, 1], 0)


def test_glyphs_are_centred_and_share_one_scale(fonts):
    font = glyphs.load_font(fonts[0], 64)
    for char in "一永國":
        ink = 255 - np.asarray(glyphs.render_glyph(font, char, 64)).astype(int)
        ys, xs = np.nonzero(ink > 0)
        assert abs((xs.min() + xs.max()) / 2 - 31.5) <= 1 and abs((ys.min() + ys.max()) / 2 - 31.5) <= 1
        assert xs.min() > 0 and ys.min() > 0 and xs.max() < 63 and ys.max() < 63  # nothing clipped
    # one font size for all: the one-stroke 一 stays far flatter than the full-height 國
    flat = np.nonzero(255 - np.asarray(glyphs.render_glyph(font, "一", 64)).astype(int))[0]
    assert flat.max() - flat.min() < 16


def test_fonts_not_installed_names_the_debian_packages():
    with pytest.raises(UserError, match="fonts-arphic-uming"):
        glyphs.find_font("AR PL UMing", faces=[])
    with pytest.raises(UserError, match="fonts-arphic-uming and fonts-arphic-ukai"):
        glyphs.find_font("Some Other Font", faces=[])


def test_cli_without_fonts_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(glyphs, "installed_fonts", lambda: [])
    assert main(["data", "glyphs", str(tmp_path / "g"), "--num-chars", "4"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "fonts-arphic-uming" in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()


def test_cli_builds_the_data_set(fonts, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["data", "glyphs", str(out), "--num-chars", "6", "--size", "16", "--test-ratio", "0.5"]) == 0
    assert len(names(out / "testA")) == len(names(out / "trainA")) + len(names(out / "trainB")) == 3
    assert "wrote 3 train characters (2 in trainA, 1 in trainB, disjoint) and 3 test characters" in \
        capsys.readouterr().out
    argv = ["data", "glyphs", str(out), "--num-chars", "6", "--size", "16", "--test-ratio", "0.5", "--overwrite"]
    assert main([*argv, "--shared-train"]) == 0
    assert len(names(out / "trainA")) == len(names(out / "trainB")) == 3
    assert "(3 in trainA, 3 in trainB, shared)" in capsys.readouterr().out


def test_font_path_that_is_not_a_font(tmp_path, fonts):
    fake = tmp_path / "fake.ttf"
    fake.write_bytes(b"this is not a font" * 10)
    with pytest.raises(UserError, match="not a font file"):
        glyphs.font_coverage(glyphs.find_font(str(fake)))
    with pytest.raises(UserError, match="not found"):
        glyphs.find_font(str(tmp_path / "missing.ttf"))
    with pytest.raises(UserError, match="holds 4 faces"):
        glyphs.font_coverage(glyphs.FontFace(fonts[0].path, 7, "x"))


def test_existing_output_is_kept_unless_overwrite(fonts, tmp_path):
    out = tmp_path / "g"
    build(out, fonts, characters=COMMON[:4])
    with pytest.raises(UserError, match="--overwrite"):
        build(out, fonts, characters=COMMON[:4])
    manifest = build(out, fonts, characters=COMMON[4:8], overwrite=True)
    assert sorted(manifest["train"] + manifest["test"]) == sorted(COMMON[4:8])
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="refusing"):
        build(other, fonts, characters=COMMON[:4], overwrite=True)
    assert (other / "keep.jpg").exists()
