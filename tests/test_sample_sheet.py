"""scripts/sample_sheet.py on the tiny run: layout, repeatability per seed, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from PIL import Image


@pytest.fixture(scope="module")
def sheet():
    return load_script("sample_sheet")


def test_sheet_layout_and_seed(sheet, tiny_run, scenes_dir, tmp_path):
    runs = f"one={tiny_run},two={tiny_run}"
    out = tmp_path / "sheet.png"
    assert sheet.main(["--data", str(scenes_dir), "--runs", runs, "--every", "1", "--styles", "3", "-o", str(out)]) == 0
    with Image.open(out) as im:
        first = np.asarray(im.convert("RGB"))
    # 2 runs x 2 directions x 2 test items = 8 lines of 32 px cells; input + 3 styles + ground truth = 5 cells
    assert first.shape[0] == 8 * 32 + 9 * 2
    assert first.shape[1] > 5 * 32 + 6 * 2
    assert sheet.main(["--data", str(scenes_dir), "--runs", runs, "--every", "1", "--styles", "3", "-o", str(out)]) == 2
    assert sheet.main(["--data", str(scenes_dir), "--runs", runs, "--every", "1", "--styles", "3", "-o", str(out),
                       "--overwrite"]) == 0
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), first)  # the same seed, the same sheet


def test_sheet_errors(sheet, tiny_run, scenes_dir, tmp_path, capsys):
    out = str(tmp_path / "s.png")
    assert sheet.main(["--data", str(scenes_dir), "--runs", str(tiny_run), "-o", out]) == 2
    assert "NAME=RUN" in capsys.readouterr().err
    data = tmp_path / "data"
    shutil.copytree(scenes_dir, data)
    for f in (data / "testB").iterdir():
        f.unlink()
    assert sheet.main(["--data", str(data), "--runs", f"x={tiny_run}", "-o", out]) == 2
    assert "no ground truth" in capsys.readouterr().err
    assert not Path(out).exists()


def test_exemplar_sheet_renders_each_input_in_each_exemplars_style(sheet, tiny_run, scenes_dir, tmp_path):
    out = tmp_path / "guided.png"
    assert sheet.main(["--data", str(scenes_dir), "--runs", f"one={tiny_run}", "--every", "1", "--exemplars", "2",
                       "-o", str(out)]) == 0
    with Image.open(out) as im:
        shape = np.asarray(im.convert("RGB")).shape
    # per direction: a header of exemplars + 2 test items = 3 lines; input + 2 exemplar styles = 3 cells
    assert shape[0] == 6 * 32 + 7 * 2 and shape[1] > 3 * 32 + 4 * 2
    rows = sheet.exemplar_rows(sheet.load_model(tiny_run)[0], scenes_dir, "a", 1, 2)
    assert len(rows) == 3 and all(len(r) == 3 for r in rows)
    assert sheet.main(["--data", str(scenes_dir), "--runs", f"one={tiny_run}", "--exemplars", "0", "-o",
                       str(tmp_path / "x.png")]) == 2
