"""Checkpoints: a folder per save, written atomically, that is safe to load.

    RUN/checkpoints/step-000500/
        model.safetensors   translator weights (training)
        model_ema.safetensors  their moving average (train.ema > 0): what inference loads when present
        disc.safetensors    discriminators (training only)
        config.yaml         the resolved config
        trainer.pt          optimizer states + RNG state; tensors and plain containers only,
                            loaded with torch.load(weights_only=True)
        state.json          step, epoch, position in the epoch
    RUN/checkpoints/latest  the name of the newest complete checkpoint folder

A checkpoint folder is built under a temporary name and renamed when complete; `latest` is replaced
atomically afterwards, so an interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vqi2i.builtin import available, locate
from vqi2i.config import from_yaml_text, to_yaml, validate
from vqi2i.errors import UserError
from vqi2i.fileio import atomic_write_text, temp_dir, usual_mode

MODEL_FILE = "model.safetensors"
EMA_FILE = "model_ema.safetensors"


def inference_weights(ckpt: Path) -> Path:
    """The translator weights inference uses: the moving average when the run kept one, else the weights."""
    return ckpt / EMA_FILE if (ckpt / EMA_FILE).is_file() else ckpt / MODEL_FILE


def _state_dict_for_safetensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared/non-contiguous storage; clone makes every tensor its own
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    cfg: DictConfig,
    modules: dict[str, torch.nn.Module],
    trainer_state: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write RUN/checkpoints/step-XXXXXX atomically and point `latest` at it.

    `modules` maps a file stem to a module ({"model": ..., "disc": ...}).
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final = root / name
    tmp = temp_dir(root, prefix=f".{name}.")
    try:
        for stem, module in modules.items():
            save_file(_state_dict_for_safetensors(module), str(tmp / f"{stem}.safetensors"))
            usual_mode(tmp / f"{stem}.safetensors")  # safetensors writes its files private (0600)
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        if trainer_state is not None:
            torch.save(trainer_state, tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **(state or {})}, indent=2))
        if final.exists():  # re-saving the same step (e.g. after an interrupt): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(root / "latest", name + "\n")
    _prune(root, keep, final)
    return final


def _prune(root: Path, keep: int, newest: Path) -> None:
    if keep <= 0:
        return
    ckpts = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in ckpts[:-keep]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder, a checkpoint folder or a built-in model's name -> the checkpoint folder to load."""
    path = locate(path)
    if not path.exists():
        names = ", ".join(available())
        also = f" and is not a built-in model ({names})" if names else ""
        raise UserError(f"checkpoint {path} does not exist{also}")
    if (path / MODEL_FILE).is_file():
        return path
    latest = path / "checkpoints" / "latest"
    if latest.is_file():
        ckpt = path / "checkpoints" / latest.read_text().strip()
        if (ckpt / MODEL_FILE).is_file():
            return ckpt
        raise UserError(f"{latest} points to {ckpt.name}, which is missing or incomplete")
    if path.is_file():
        raise UserError(f"{path} is a file; pass the run folder or a checkpoint folder holding {MODEL_FILE}")
    raise UserError(f"{path} holds no checkpoint (no {MODEL_FILE} and no checkpoints/latest)")


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "checkpoints" / "latest").is_file()


def load_config_of(ckpt: Path) -> DictConfig:
    cfg_file = ckpt / "config.yaml"
    if not cfg_file.is_file():
        raise UserError(f"checkpoint {ckpt} has no config.yaml")
    try:
        return from_yaml_text(cfg_file.read_text())
    except UserError as e:  # a readable config that this version cannot honour
        raise UserError(f"checkpoint {ckpt}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt checkpoint
        raise UserError(f"checkpoint {ckpt}: config.yaml is unreadable ({type(e).__name__})") from None


def load_weights(module: torch.nn.Module, file: Path, device: str | torch.device = "cpu") -> None:
    """Load a safetensors file into a module; a corrupt or mismatched file is a UserError."""
    if not file.is_file():
        raise UserError(f"missing weights file {file}")
    try:
        tensors = load_file(str(file), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({str(e).splitlines()[0]})") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"{file} does not match its config: {first}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Load a translator for inference -> (model in eval mode, config)."""
    from vqi2i.models.build import build_model  # start-up: taming loads only when a model is built

    ckpt = resolve_checkpoint(path)
    cfg = load_config_of(ckpt)
    validate(cfg)
    model = build_model(cfg)
    load_weights(model, inference_weights(ckpt))
    model.to(device).eval()
    model.checkpoint_dir = ckpt
    return model, cfg


def load_trainer_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer.pt contents, state.json contents) of a checkpoint, loaded safely."""
    try:
        trainer = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=True)
        state = json.loads((ckpt / "state.json").read_text())
    except FileNotFoundError as e:
        raise UserError(f"checkpoint {ckpt} cannot be resumed: {Path(e.filename).name} is missing") from None
    except Exception as e:  # noqa: BLE001 - unpickling refusal or corrupt file
        raise UserError(f"checkpoint {ckpt} cannot be resumed: {type(e).__name__}: {str(e)[:120]}") from None
    return trainer, state


def checkpoint_id(path: str | Path) -> str:
    """A stable identifier of a codec checkpoint: the sha256 of the weights inference uses (first 16 hex digits)."""
    ckpt = resolve_checkpoint(path)
    h = hashlib.sha256()
    with open(inference_weights(ckpt), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
