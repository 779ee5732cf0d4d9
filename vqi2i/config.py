"""Configs: YAML files merged over the defaults below, with `key=value` overrides from the command line.

Every key a config may hold appears in DEFAULTS (a translator) or PRIOR_DEFAULTS (a content prior, at the
end), so a misspelt key is caught and named (with the closest valid one) instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from vqi2i.errors import UserError, did_you_mean

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "model": {
        "variant": "multimodal",  # multimodal | unimodal (uni-VQ-I2I: no style encoders)
        "in_channels": 3,
        "resolution": 64,  # training resolution; only used to place attention blocks
        "ch": 64,  # content encoder base width
        "ch_mult": [1, 2, 2],  # downsampling factor f = 2 ** (len(ch_mult) - 1)
        "num_res_blocks": 1,
        "attn_resolutions": [],  # feature-map sizes (at `resolution`) that get self-attention
        "z_channels": 64,  # encoder output channels, projected to embed_dim by a 1x1 conv
        "n_embed": 128,  # K: codebook size
        "embed_dim": 64,  # D: code dimension
        "beta": 0.25,  # commitment weight
        "codebook": {
            "metric": "l2",  # l2 | cosine (cosine = l2-normalised codes and encodings)
            "restart_dead": True,  # re-initialise unused codes from recent encoder outputs
            "restart_every": 200,  # steps between dead-code checks
            "dead_below": 1.0,  # a code used fewer times than this since the last check is dead
        },
        "style_dim": 8,
        "style_vae": False,  # variational style encoders: sampled styles in training, a KL term (loss.style_kl)
        "style_norm": False,  # style encoders standardize their output by running statistics of real styles
        "style_act": "relu",  # style encoder activation: relu (MUNIT) or lrelu (LeakyReLU 0.2: no unit can die)
        "style_ch": 64,  # style encoder base width
        "style_downs": 4,  # strided convs in the style encoder
        "dec_ch": 128,  # decoder width at the lowest resolution
        "dec_res_blocks": 2,  # AdaIN residual blocks before upsampling
        "mlp_dim": 128,  # hidden width of the style -> AdaIN parameter MLP
        "up_kernel": 5,  # conv kernel of the decoder's upsampling stages (MUNIT: 5)
        "dec_up_ch": 32,  # least width of the decoder's upsampling stages (each halves dec_ch down to this)
    },
    "disc": {
        "ndf": 64,
        "n_layers": 3,
        "num_scales": 2,
        "norm": "batch",  # spectral (spectral norm, no batch norm) | batch (taming's NLayerDiscriminator)
        "content_ch": 64,  # width of the content-domain discriminator (loss.content_adv)
    },
    "data": {
        "kind": "unpaired",  # unpaired | paired
        "root": "data/scenes",
        "layout": "folders",  # paired only: folders | side_by_side
        "size": 64,  # resize the shorter side to this ('none' keeps native size)
        "crop": 64,
        "flip": True,
        "channels": 3,
        "num_workers": 0,
    },
    "loss": {
        "recon": 5.0,
        "vq": 1.0,
        "adv": 0.1,  # adversarial weight on translations
        "adv_recon_ratio": 0.2,  # adversarial on reconstructions = adv * ratio
        "style": 1.0,  # latent style regression: the style encoder recovers the random style a translation got
        "style_encoded": 0.0,  # ... and the encoded style a translation got (a constant encoder meets it for free)
        "look": 0.0,  # look transfer: tokens of x + style of a re-coloured copy of x must give that copy
        "look_strength": 1.0,  # how far the copies are re-coloured (data.transforms.jitter_look)
        "content": 1.0,  # latent content regression
        "content_tokens": 0.0,  # cross-entropy: a translation, encoded again, picks its source's codes
        "style_kl": 0.01,  # KL of the encoded style distribution to N(0, I) (model.style_vae only; DRIT++: 0.01)
        "paired": 10.0,  # L1 to the paired target (paired data only)
        "perceptual": 0.0,  # VGG16 perceptual loss weight; needs vgg_weights
        "vgg_weights": None,  # local path to torchvision VGG16 weights (never downloaded)
        "gan_mode": "lsgan",  # lsgan | hinge
        "recon_ssim": 0.0,  # (1 - SSIM) of reconstructions against their inputs, beside the L1: keeps thin strokes
        "feat_match": 0.0,  # L1 between the discriminators' features of reconstructions and of the real images
        "cycle": 0.0,  # L1 of a -> b -> a (and b -> a -> b) with the source's own style, against the source image
        "content_adv": 0.0,  # content encoder fools a content-domain discriminator: the same tokens for both domains
        "lowpass": 0.0,  # L1 between a translation and its source, both average-pooled: coarse layout and colours kept
        "lowpass_size": 8,  # ... to this many cells a side
        "mode_seek": 0.0,  # mode seeking (multimodal): two styles of one content must give visibly different images
        "mode_seek_target": 0.1,  # ... until their pixel L1 per unit of style L1 reaches this (a hinge)
    },
    "train": {
        "seed": 0,
        "batch_size": 4,
        "max_steps": 1000,
        "lr": 1e-4,
        "disc_lr": 1e-4,
        "betas": [0.5, 0.999],
        "weight_decay": 0.0,
        "lr_schedule": "cosine",  # constant | cosine | step
        "warmup_steps": 0,
        "min_lr_ratio": 0.1,
        "grad_clip": 1.0,  # 0 disables
        "disc_start": 0,  # step at which the adversarial terms start
        "log_every": 50,
        "image_every": 500,
        "ckpt_every": 500,
        "keep_checkpoints": 2,
        "device": "auto",  # auto | cpu | cuda | cuda:N | mps
        "bf16": True,  # bf16 autocast on CUDA
        "num_styles": 3,  # random styles per input in the image grid
        "ema": 0.0,  # decay of an exponential moving average of the translator for inference (0: off)
        "tensorboard": "auto",  # event files beside metrics.jsonl: auto (when installed) | true | false
        # speed (docs/benchmarks.md, "Training speed"); at these defaults a CPU run computes what it always did
        "compile": False,  # torch.compile the translator's and the discriminators' steps
        "channels_last": False,  # channels-last memory format for the convolutions
        "fused_adam": False,  # fused Adam kernels (CUDA; also CPU on recent torch)
        "pin_memory": False,  # page-locked batches for a faster host-to-GPU copy (with data.num_workers)
    },
}

# Options that were tried and dropped (docs/tried_and_dropped.md), with the value that turned them off. A config
# saved before may still carry one: at that value it loads as if the key were not there; turned on, it is refused.
DROPPED: dict[str, Any] = {
    "model.shared_decoder": False, "model.dec_attn": False, "data.hue": 0.0, "loss.trans_fm": 0.0,
    "loss.look_invariance": 0.0, "model.content_input_norm": False, "loss.code_usage": 0.0,
    "loss.content_trains": "both", "loss.regress_noise": 0.0,
}


def _remove_dropped_keys(mapping: dict, where: str) -> None:
    """Remove the DROPPED keys from a config mapping (in place); one set to anything but its off value is an error."""
    for key, off in DROPPED.items():
        section, name = key.split(".")
        node = mapping.get(section)
        if not isinstance(node, dict) or name not in node:
            continue
        value = node.pop(name)
        if value is not None and value != off:
            raise UserError(f"{where} sets {key}={value}, an option vqi2i no longer has (docs/tried_and_dropped.md); "
                            "use the vqi2i version that wrote it")


def _check_keys(cfg: Any, ref: Any, prefix: str = "") -> None:
    if not isinstance(cfg, (dict, DictConfig)):
        return
    for key in cfg:
        if key not in ref:
            where = f"{prefix}{key}"
            choices = [f"{prefix}{k}" for k in ref]
            raise UserError(f"unknown config key '{where}'{did_you_mean(where, choices)}")
        if isinstance(ref[key], dict):
            _check_keys(cfg[key], ref[key], f"{prefix}{key}.")


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise UserError(f"override '{item}' is not of the form key=value (e.g. train.max_steps=200)")
    key, value = item.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _coerce_numbers(cfg: DictConfig, defaults: dict[str, Any], prefix: str = "") -> None:
    """Numbers written as text take their default's type: YAML reads `8e-4` (no dot) as a string, which
    would otherwise reach the optimiser. A value that is no number where a number belongs is refused."""
    for key, ref in defaults.items():
        if isinstance(ref, dict):
            if isinstance(cfg.get(key), DictConfig):
                _coerce_numbers(cfg[key], ref, f"{prefix}{key}.")
            continue
        value = cfg.get(key)
        if isinstance(ref, bool) or not isinstance(ref, (int, float)) or isinstance(value, bool):
            continue
        if isinstance(value, str) or (isinstance(ref, float) and isinstance(value, int)):
            try:
                number = float(value)
            except ValueError:
                if isinstance(ref, int):  # a whole-number setting may also take a word (data.size: none)
                    continue
                raise UserError(f"{prefix}{key} must be a number, got {value!r}") from None
            cfg[key] = number if isinstance(ref, float) else int(number) if number.is_integer() else number


def _lookup(key: str, defaults: dict[str, Any]) -> Any:
    node: Any = defaults
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            prefix = ".".join(parts[:i])
            choices = [f"{prefix}.{k}" if prefix else k for k in (node if isinstance(node, dict) else {})]
            raise UserError(f"unknown config key '{key}'{did_you_mean(key, choices)}")
        node = node[part]
    return node


def merge_config(
    defaults: dict[str, Any],
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    check_file: Callable[[dict, Path], None] | None = None,
) -> DictConfig:
    """`defaults` <- YAML file <- `key=value` overrides, every key checked against `defaults`.
    `check_file(mapping, path)` may refuse a file, or take keys off it, before its keys are checked (e.g. the wrong
    kind of config)."""
    cfg = OmegaConf.create(defaults)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} does not exist")
        try:
            user = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise UserError(f"config file {path} must hold a mapping at the top level")
        if check_file is not None:
            check_file(user, path)
        _check_keys(user, defaults)
        cfg = OmegaConf.merge(cfg, OmegaConf.create(user))
    for item in overrides:
        key, value = _parse_override(item)
        _lookup(key, defaults)
        OmegaConf.update(cfg, key, value, merge=False)
    _coerce_numbers(cfg, defaults)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Defaults <- YAML file <- `key=value` overrides, every key checked against DEFAULTS (a DROPPED key in the file
    is taken off at its off value, refused otherwise)."""
    cfg = merge_config(DEFAULTS, path, overrides, check_file=lambda user, path: _remove_dropped_keys(user, str(path)))
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Catch impossible settings before any work starts."""
    m = cfg.model
    choices = {
        "model.variant": (m.variant, ("multimodal", "unimodal")),
        "model.codebook.metric": (m.codebook.metric, ("l2", "cosine")),
        "model.style_act": (m.style_act, ("relu", "lrelu")),
        "loss.gan_mode": (cfg.loss.gan_mode, ("lsgan", "hinge")),
        "data.kind": (cfg.data.kind, ("unpaired", "paired")),
        "data.layout": (cfg.data.layout, ("folders", "side_by_side")),
        "train.lr_schedule": (cfg.train.lr_schedule, ("constant", "cosine", "step")),
        "disc.norm": (cfg.disc.norm, ("spectral", "batch")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise UserError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    if m.in_channels not in (1, 3):
        raise UserError(f"model.in_channels must be 1 or 3, got {m.in_channels}")
    if cfg.data.channels != m.in_channels:
        raise UserError(f"data.channels ({cfg.data.channels}) must equal model.in_channels ({m.in_channels})")
    if m.up_kernel % 2 == 0:
        raise UserError(f"model.up_kernel must be odd, got {m.up_kernel}")
    if m.ch % 32:
        raise UserError(f"model.ch must be a multiple of 32 (the encoder's group norm), got {m.ch}")
    for key in ("n_embed", "embed_dim", "style_dim", "num_res_blocks", "dec_up_ch"):
        if int(m[key]) < 1:
            raise UserError(f"model.{key} must be >= 1, got {m[key]}")
    if int(cfg.loss.lowpass_size) < 1:
        raise UserError(f"loss.lowpass_size must be >= 1 (cells a side), got {cfg.loss.lowpass_size}")
    if not 0.0 <= float(cfg.train.ema) < 1.0:
        raise UserError(f"train.ema must be in [0, 1) (0 turns the average off), got {cfg.train.ema}")
    if int(cfg.train.batch_size) < 1 or int(cfg.train.max_steps) < 1:
        raise UserError("train.batch_size and train.max_steps must be >= 1")
    f = 2 ** (len(m.ch_mult) - 1)
    if cfg.data.crop % f:
        raise UserError(f"data.crop={cfg.data.crop} must be divisible by the downsampling factor {f}")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def from_yaml_text(text: str) -> DictConfig:
    """A config saved beside a checkpoint; older configs are completed with today's defaults, and lose the DROPPED
    keys they carry at their off values (one turned on is a UserError)."""
    saved = yaml.safe_load(text) or {}
    _remove_dropped_keys(saved, "the saved config")
    return OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.create(saved))


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]


# -- the content prior's config (`vqi2i train-prior`): its own defaults, merged and checked the same way -----

PRIOR_DEFAULTS: dict[str, Any] = {
    "kind": "prior",  # marks a prior's config, so it is never mistaken for a translator's
    "name": "prior",
    "model": {
        "n_layer": 8,
        "n_head": 8,
        "n_embd": 256,
        "dropout": 0.1,
        "block_rows": None,  # the context, in token rows/columns; null = the codec's token grid
        "block_cols": None,
        "vocab_size": None,  # filled in from the codec (its codebook size)
    },
    "data": {
        "root": None,  # null = the codec's data.root (and size, crop, channels below)
        "size": None,
        "crop": None,
        "flip": True,  # also train on mirrored images (left extension samples mirrored grids)
        "window_prob": 0.5,  # fraction of steps trained on random sub-windows instead of whole grids
        "min_window": 4,  # smallest sub-window side, in tokens
        "token_cache": None,  # folder of token caches; null = RUN/tokens
        "val_fraction": 0.05,  # held-out train images when the data set has no test split
        "encode_batch": 32,
    },
    "train": {
        "seed": 0,
        "batch_size": 32,
        "max_steps": 2000,
        "lr": 6e-4,
        "betas": [0.9, 0.95],
        "weight_decay": 0.1,
        "lr_schedule": "cosine",
        "warmup_steps": 100,
        "min_lr_ratio": 0.1,
        "grad_clip": 1.0,
        "log_every": 50,
        "eval_every": 250,  # validation loss and a sheet of sampled grids decoded in both domains
        "ckpt_every": 250,
        "keep_checkpoints": 2,
        "num_samples": 4,
        "device": "auto",
        "bf16": True,
        "tensorboard": "auto",  # event files beside metrics.jsonl: auto (when installed) | true | false
    },
    "codec": {"path": None, "checkpoint_id": None},  # recorded by the trainer
}


def load_prior_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """PRIOR_DEFAULTS <- YAML file <- key=value overrides, every key checked."""
    cfg = merge_config(PRIOR_DEFAULTS, path, overrides, check_file=_check_is_prior_config)
    validate_prior_config(cfg)
    return cfg


def _check_is_prior_config(user: dict, path: Path) -> None:
    if user.get("kind", "prior") != "prior" or "disc" in user or "loss" in user:
        raise UserError(f"{path} is not a prior config (train a translator with `vqi2i train`)")


def validate_prior_config(cfg: DictConfig) -> None:
    m, d, t = cfg.model, cfg.data, cfg.train
    for key in ("n_layer", "n_head", "n_embd"):
        if int(m[key]) < 1:
            raise UserError(f"model.{key} must be >= 1, got {m[key]}")
    if int(m.n_embd) % int(m.n_head):
        raise UserError(f"model.n_embd={m.n_embd} must be divisible by model.n_head={m.n_head}")
    for key in ("block_rows", "block_cols"):
        if m[key] is not None and int(m[key]) < 1:
            raise UserError(f"model.{key} must be >= 1 or null, got {m[key]}")
    if not 0.0 <= float(d.window_prob) <= 1.0 or not 0.0 <= float(d.val_fraction) < 1.0:
        raise UserError("data.window_prob must be in [0, 1] and data.val_fraction in [0, 1)")
    if int(d.min_window) < 1:
        raise UserError(f"data.min_window must be >= 1, got {d.min_window}")
    if int(t.batch_size) < 1 or int(t.max_steps) < 1:
        raise UserError("train.batch_size and train.max_steps must be >= 1")
    if t.lr_schedule not in ("constant", "cosine", "step"):
        raise UserError(f"train.lr_schedule={t.lr_schedule!r} is not one of constant, cosine, step")
