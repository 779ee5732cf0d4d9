"""`vqi2i demo`, the README's main job, end to end with a couple of training steps."""

from __future__ import annotations

from PIL import Image

from vqi2i.cli import main


def test_demo_writes_the_contact_sheet(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--device", "cpu"]) == 0
    sheet = Image.open(out / "demo.png")
    # 6 held-out scenes per direction, each row: input, 4 random styles, reference, guided output
    assert sheet.height > 12 * 96 and sheet.width > 7 * 96  # enlarged 3x for viewing
    assert (out / "run" / "checkpoints" / "latest").is_file()
    assert "Open" in capsys.readouterr().out
    # a second run refuses to clobber the result unless asked
    assert main(["demo", "--out", str(out), "--steps", "2", "--device", "cpu"]) == 2
    assert "already exists" in capsys.readouterr().err
