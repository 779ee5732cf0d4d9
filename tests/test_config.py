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


def test_a_saved_config_with_a_dropped_option_loads_when_off_and_is_refused_when_on(tmp_path):
    """Options taken out of vqi2i (docs/tried_and_dropped.md): a config saved before, which names one at its off
    value, loads as if it were not there (in a checkpoint and as a config file); one turned on is a one-line
    UserError naming it."""
    import yaml

    from vqi2i.checkpoint import load_config_of
    from vqi2i.config import DEFAULTS, DROPPED, from_yaml_text, load_config, to_yaml
    from vqi2i.errors import UserError

    old = yaml.safe_load(to_yaml(load_config(None)))
    for key, off in DROPPED.items():
        section, name = key.split(".")
        assert name not in DEFAULTS[section]
        old[section][name] = off
    text = yaml.safe_dump(old)
    cfg = from_yaml_text(text)
    assert all(key.split(".")[1] not in cfg[key.split(".")[0]] for key in DROPPED)
    assert to_yaml(cfg) == to_yaml(load_config(None))
    (tmp_path / "old.yaml").write_text(text)
    assert to_yaml(load_config(tmp_path / "old.yaml")) == to_yaml(load_config(None))

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for key, on in (("model.shared_decoder", True), ("model.dec_attn", True), ("data.hue", 0.5),
                    ("loss.trans_fm", 1.0)):
        section, name = key.split(".")
        turned_on = yaml.safe_load(text)
        turned_on[section][name] = on
        (ckpt / "config.yaml").write_text(yaml.safe_dump(turned_on))
        with pytest.raises(UserError, match=rf"^checkpoint {ckpt}: the saved config sets {key}={on}, ") as err:
            load_config_of(ckpt)
        assert "\n" not in str(err.value) and "tried_and_dropped" in str(err.value)
        with pytest.raises(UserError, match=f"config.yaml sets {key}={on}, "):
            load_config(ckpt / "config.yaml")
