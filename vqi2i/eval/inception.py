"""Inception-v3 pool features for FID/KID, from a weights file the user already has (never downloaded).

`--inception-weights PATH` names a torchvision `inception_v3` state dict, as .safetensors or as a
.pt/.pth file read with torch.load(weights_only=True). Images are fed at 299 px in [-1, 1] (what the
network was trained on), gray images as three equal channels; the features are the 2048-d pool.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from torchvision.models import inception_v3

from vqi2i.errors import UserError

INCEPTION_SIZE = 299


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (tensors only); a clear UserError otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"Inception weights file {path} not found (give a local torchvision inception_v3 "
                        "state dict; vqi2i never downloads weights)")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt file, pickled code refused, not a tensor file
        raise UserError(f"cannot read Inception weights {path}: {str(e).splitlines()[0][:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict (a mapping of parameter names to tensors)")
    return state


class InceptionFeatures(nn.Module):
    """torchvision Inception-v3 without its classifier: images [B,C,H,W] in [-1,1] -> [B, 2048]."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        has_aux = any(k.startswith("AuxLogits.") for k in state)
        net = inception_v3(weights=None, aux_logits=has_aux, init_weights=False, transform_input=False)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            lines = [s.strip() for s in str(e).splitlines() if s.strip()]
            raise UserError("the Inception weights do not fit torchvision's inception_v3: "
                            f"{lines[-1][:200]}") from None
        net.fc = nn.Identity()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear")
        return self.net(x.clamp(-1, 1))


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> InceptionFeatures:
    return InceptionFeatures(read_state_dict(path)).to(device).eval()


@torch.no_grad()
def inception_features(model: InceptionFeatures, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    device = next(model.parameters()).device
    chunks = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    return torch.cat([model(chunk.to(device)).cpu() for chunk in chunks])
