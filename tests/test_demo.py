"""`vqi2i demo`, the README's main job: the instant gallery on the built-in models, and `--train` end to end
with a couple of training steps."""

from __future__ import annotations

from PIL import Image

from vqi2i.cli import main


def test_instant_demo_writes_the_gallery(tmp_path, capsys):
    import re

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu", "--threads", "1"]) == 0
    page = (out / "index.html").read_text()
    pictures = re.findall(r'<img src="([^"]+)"', page)
    assert len(pictures) == 13
    for rel in pictures:
        with Image.open(out / rel) as im:
            assert im.width >= 64 and im.height >= 64
    for command in ("vqi2i translate -c scenes", "--style", "--intra", "vqi2i interpolate -c scenes",
                    "vqi2i generate -p scenes-prior", "vqi2i extend -p scenes-prior", "vqi2i complete -p scenes-prior",
                    "vqi2i translate -c glyphs", "vqi2i translate -c emoji"):
        assert command in page
    assert "Open" in capsys.readouterr().out
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_demo_train_writes_the_contact_sheet(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--train", "--out", str(out), "--steps", "2", "--device", "cpu"]) == 0
    sheet = Image.open(out / "demo.png")
    # 6 held-out scenes per direction, each row: input, 4 random styles, reference, guided output
    assert sheet.height > 12 * 96 and sheet.width > 7 * 96  # enlarged 3x for viewing
    assert (out / "run" / "checkpoints" / "latest").is_file()
    assert "Open" in capsys.readouterr().out
    # a second run refuses to clobber the result unless asked
    assert main(["demo", "--train", "--out", str(out), "--steps", "2", "--device", "cpu"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_demo_picks_the_examples_whose_styles_differ_most(tmp_path):
    """The guided and transition shots use the two winter examples farthest apart in style: the pair whose
    translations of one scene differ most in pixels, and a duplicate of one file is never picked with itself."""
    import itertools
    import shutil

    import pytest
    import torch

    from vqi2i.apps.demo import most_different_styles
    from vqi2i.builtin import get
    from vqi2i.checkpoint import load_model
    from vqi2i.errors import UserError
    from vqi2i.images import load_image

    files = get("scenes").examples("b")
    extra = tmp_path / "copy.png"
    shutil.copyfile(files[0], extra)
    first, second = most_different_styles("scenes", "b", [*files, extra])
    assert first != second and {first, second} != {files[0], extra}

    model, _ = load_model(get("scenes").path)
    x = load_image(get("scenes").examples("a")[0], model.in_channels)[None]
    with torch.no_grad():
        _, z_q = model.encode_content(x)
        outs = {f: model.decode(z_q, model.encode_style(load_image(f, model.in_channels)[None], "b"), "b")
                for f in files}
    change = {(f, g): float((outs[f] - outs[g]).abs().mean()) for f, g in itertools.combinations(files, 2)}
    assert change[(first, second)] == max(change.values())
    with pytest.raises(UserError, match="two example images"):
        most_different_styles("scenes", "b", files[:1])
