"""Loss terms: GAN losses and the VGG perceptual loss read from a local weights file."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vqi2i.errors import UserError
from vqi2i.losses import VGGPerceptual, d_loss, g_loss


def test_gan_losses_prefer_real_over_fake():
    real = [torch.ones(2, 1, 4, 4), torch.ones(2, 1, 2, 2)]
    fake = [-torch.ones(2, 1, 4, 4), -torch.ones(2, 1, 2, 2)]
    for mode in ("lsgan", "hinge"):
        assert d_loss(real, fake, mode) < d_loss(fake, real, mode)
        assert g_loss(real, mode) < g_loss(fake, mode)
    assert d_loss(real, [torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)], "lsgan") == 0


def test_perceptual_needs_a_local_file(tmp_path):
    with pytest.raises(UserError, match="never downloads"):
        VGGPerceptual(None)
    with pytest.raises(UserError, match="does not exist"):
        VGGPerceptual(tmp_path / "nope.pth")
    bad = tmp_path / "bad.safetensors"
    save_file({"features.0.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(UserError, match="not a torchvision VGG16"):
        VGGPerceptual(bad)


def test_perceptual_loss_from_local_features(tmp_path):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    feats = vgg16(weights=None).features[:23]
    path = tmp_path / "vgg16_features.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in feats.state_dict().items()}, str(path))
    loss = VGGPerceptual(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert loss(x, y).item() > 0
    gray = x[:, :1]
    assert loss(gray, gray).item() == 0  # one-channel images are accepted
    assert all(not p.requires_grad for p in loss.parameters())
