"""The CLI accepts key=value overrides after the options, and rejects unknown options."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vqi2i.cli import main

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")


def test_overrides_after_options_are_config_overrides(capsys, tmp_path):
    code = main(["train", TINY, "--out", str(tmp_path / "run"), "model.n_embedd=3"])
    assert code == 2
    assert "unknown config key 'model.n_embedd' (did you mean 'model.n_embed'?)" in capsys.readouterr().err


def test_unknown_option_is_an_argparse_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", TINY, "--out", str(tmp_path / "run"), "--bogus"])
    assert e.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_threads_must_be_positive(capsys, tmp_path):
    assert main(["train", TINY, "--out", str(tmp_path / "run"), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    assert main(["translate", "-c", str(tmp_path), "-i", str(image), "-d", "a2b", "-o", str(tmp_path / "o"),
                 "--threads", "0"]) == 2  # fmt: skip
    assert "--threads must be >= 1" in capsys.readouterr().err
