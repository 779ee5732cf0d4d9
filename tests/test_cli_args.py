"""The CLI accepts key=value overrides after the options, and rejects unknown options."""

from __future__ import annotations

from pathlib import Path

import pytest

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
