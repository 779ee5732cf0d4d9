"""Config loading: numbers written as text."""

from __future__ import annotations

import pytest


def test_numbers_written_as_text_take_the_defaults_type(tmp_path):
    """YAML reads 8e-4 (no dot) as text: it becomes the number the setting needs, in a file and in an override;
    a word where a number belongs is refused in one line; a whole-number setting keeps its words (data.size)."""
    from vqi2i.config import load_config
    from vqi2i.errors import UserError

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 3e-4\n  max_steps: 2e3\n")
    cfg = load_config(path, ["train.disc_lr=8e-4", "data.size=none"])
    assert cfg.train.lr == 3e-4 and cfg.train.disc_lr == 8e-4 and isinstance(cfg.train.disc_lr, float)
    assert cfg.train.max_steps == 2000 and isinstance(cfg.train.max_steps, int)
    assert cfg.data.size == "none"
    with pytest.raises(UserError, match="train.lr must be a number, got 'fast'"):
        load_config(None, ["train.lr=fast"])
