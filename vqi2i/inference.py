"""Opening trained models for use: a content prior and the codec (translator) whose tokens it learnt.

What the apps, evaluation, the web app and the prior trainer share, with no trainer imported: a prior's
checkpoint is told from a translator's by its config (`kind: prior`), and a prior is only ever opened with
the codec whose `checkpoint_id` it recorded. A translator alone opens with `vqi2i.checkpoint.load_model`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from vqi2i.builtin import locate
from vqi2i.checkpoint import MODEL_FILE, checkpoint_id, load_model, load_weights, resolve_checkpoint
from vqi2i.config import PRIOR_DEFAULTS
from vqi2i.errors import UserError
from vqi2i.models.prior import ContentPrior, PriorConfig


def _raw_config(ckpt: Path) -> dict:
    try:
        return yaml.safe_load((ckpt / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        raise UserError(f"checkpoint {ckpt} has no readable config.yaml") from None


def is_prior_checkpoint(path: str | Path) -> bool:
    return _raw_config(resolve_checkpoint(path)).get("kind") == "prior"


def check_codec_path(path: str | Path) -> Path:
    """A codec (translator) checkpoint folder; a prior given in its place is a UserError."""
    ckpt = resolve_checkpoint(path)
    if _raw_config(ckpt).get("kind") == "prior":
        raise UserError(f"{path} is a prior checkpoint; --codec needs a translator run (trained by `vqi2i train`)")
    return ckpt


def prior_config_of(cfg: DictConfig) -> PriorConfig:
    m = cfg.model
    return PriorConfig(vocab_size=int(m.vocab_size), block_rows=int(m.block_rows), block_cols=int(m.block_cols),
                       n_layer=int(m.n_layer), n_head=int(m.n_head), n_embd=int(m.n_embd), dropout=float(m.dropout))


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> tuple[ContentPrior, DictConfig]:
    """A trained prior for sampling -> (prior in eval mode, its config)."""
    ckpt = resolve_checkpoint(path)
    raw = _raw_config(ckpt)
    if raw.get("kind") != "prior":
        raise UserError(f"{path} is not a prior checkpoint (it looks like a translator; train one with "
                        "`vqi2i train-prior`)")
    cfg = OmegaConf.merge(OmegaConf.create(PRIOR_DEFAULTS), OmegaConf.create(raw))
    prior = ContentPrior(prior_config_of(cfg))
    load_weights(prior, ckpt / MODEL_FILE)
    prior.to(device).eval()
    prior.checkpoint_dir = ckpt
    return prior, cfg


def open_prior_with_codec(prior_path: str | Path, codec_path: str | Path | None, device):
    """(prior, prior cfg, codec, codec cfg) after checking the prior was trained on this codec's tokens."""
    prior, cfg = load_prior(prior_path, device)
    recorded = cfg.codec.checkpoint_id
    if codec_path is None:
        if not cfg.codec.path:
            raise UserError(f"prior {prior_path} does not record its codec; pass --codec")
        codec_path = locate(cfg.codec.path)
        if not codec_path.exists():
            raise UserError(f"the prior's codec {codec_path} does not exist any more; pass --codec with it")
    check_codec_path(codec_path)
    found = checkpoint_id(codec_path)
    if recorded and found != recorded:
        raise UserError(
            f"prior {prior_path} belongs to codec {recorded} ({cfg.codec.path}), but {codec_path} is codec "
            f"{found}: its tokens mean something else; use the codec the prior was trained with"
        )
    codec, codec_cfg = load_model(codec_path, device)
    if codec.n_embed != prior.cfg.vocab_size:
        raise UserError(f"the codec has {codec.n_embed} codes, the prior {prior.cfg.vocab_size}")
    codec.requires_grad_(False)
    return prior, cfg, codec, codec_cfg
